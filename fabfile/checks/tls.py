"""HTTPS at the balancers, checked from this machine as a client would: the certificate
chains to the lab's CA and names the site and the VIP, both balancers present the same
one, HTTP/2 is offered, plain HTTP answers 301 to HTTPS (the health URI excepted), HSTS is
sent, and TLS 1.0 and 1.1 are refused by the server itself."""
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
import time
import warnings
from dataclasses import dataclass

from cryptography import x509

from ..core.certs import names_of
from ..roles import Check
from ..roles.loadbalancer import HEALTH_URI, balancers
from .http import TLS, request
from .netsafety import ensure_local_route

OLD_VERSIONS = {ssl.TLSVersion.TLSv1: "TLS 1.0", ssl.TLSVersion.TLSv1_1: "TLS 1.1"}
TIMEOUT_S = 3


@dataclass(frozen=True)
class Handshake:
    version: str      # "TLSv1.3"
    alpn: str         # the protocol the server chose ("h2"), "" for none
    cert_der: bytes   # the server's certificate, verified against the lab's CA

    @property
    def cert(self):
        return x509.load_der_x509_certificate(self.cert_der)


def handshake(ip, tls, timeout=TIMEOUT_S):
    """A verified TLS handshake with `ip` for the lab's site name, offering h2 and http/1.1."""
    context = tls.context
    with socket.create_connection((ip, tls.port), timeout=timeout) as raw:
        alpn_context = _with_alpn(context)
        with alpn_context.wrap_socket(raw, server_hostname=tls.server_name) as conn:
            return Handshake(conn.version() or "", conn.selected_alpn_protocol() or "",
                             conn.getpeercert(binary_form=True))


def _with_alpn(context):
    """A copy of the lab's context that offers ALPN (the shared one stays HTTP/1.1 only)."""
    copy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    copy.minimum_version = context.minimum_version
    copy.load_verify_locations(cadata=_ca_pem(context))
    copy.set_alpn_protocols(["h2", "http/1.1"])
    return copy


def _ca_pem(context):
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in context.get_ca_certs(binary_form=True))


def old_version_client(version):
    """A client that offers `version` alone, at OpenSSL security level 0: Debian's OpenSSL
    refuses TLS 1.0 and 1.1 by itself at its default level, and a refusal must come from
    the server to prove anything. It checks no certificate: it only asks for a handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # the ssl module rightly deprecates these versions
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    return context


def old_version_refused(ip, port, version, timeout=TIMEOUT_S):
    """(refused, detail): True when the server refused a handshake offering `version` alone;
    False when it accepted it; None when nothing can be said (no answer, or this machine's
    OpenSSL could not offer the version)."""
    name = OLD_VERSIONS.get(version, version.name)
    try:
        raw = socket.create_connection((ip, port), timeout=timeout)
    except OSError as exc:
        return None, f"{name}: no connection to {ip}:{port} ({exc})"
    try:
        with old_version_client(version).wrap_socket(raw) as conn:
            return False, f"{name} ACCEPTED ({conn.version()}, {conn.cipher()[0]})"
    except ssl.SSLError as exc:
        if exc.reason == "NO_PROTOCOLS_AVAILABLE":
            return None, f"{name}: this machine's OpenSSL cannot offer it, so the server was not asked"
        return True, f"{name} refused ({(exc.reason or str(exc)).lower().replace('_', ' ')})"
    except OSError as exc:  # the server closed the connection on the hello
        return True, f"{name} refused (connection closed: {type(exc).__name__})"
    finally:
        raw.close()


def _timed(name, host, func):
    started = time.monotonic()
    try:
        passed, detail = func()
    except (OSError, ValueError) as exc:
        passed, detail = False, f"{type(exc).__name__}: {exc}"
    return Check(name, host, passed, detail, time.monotonic() - started)


def https_checks(lab, tls):
    """The HTTPS checks of verify, from this machine (the caller checked the route to the
    VIP), all at once: each opens its own connections, so none waits for another."""
    vip = lab.vip

    def chain_and_names():
        shake = handshake(vip, tls)
        dns, ips = names_of(shake.cert)
        ok = lab.site in dns and vip in ips
        until = shake.cert.not_valid_after_utc.date().isoformat()
        return ok, (f"{shake.version}, signed by the lab's CA, names {', '.join(dns + ips)}, until {until}"
                    + ("" if ok else f"; wanted {lab.site} and {vip}"))

    def http2():
        shake = handshake(vip, tls)
        return shake.alpn == "h2", f"ALPN chose {shake.alpn or 'nothing'}"

    def same_everywhere():
        wanted = handshake(vip, tls)
        found = []
        for host in balancers(lab):
            ensure_local_route(host.ip, lab.network)
            found.append((host.name, handshake(host.ip, tls).cert_der == wanted.cert_der))
        return all(same for _, same in found), ", ".join(f"{n} {'same' if s else 'DIFFERENT'}" for n, s in found)

    def redirect():
        reply = request(vip, "GET", "/", timeout=TIMEOUT_S)
        wanted = f"https://{vip}/"
        location = reply.headers.get("location", "")
        health = request(vip, "GET", HEALTH_URI, timeout=TIMEOUT_S).status
        ok = reply.status == 301 and location == wanted and health == 200
        return ok, f"HTTP {reply.status} to {location or 'nowhere'}; {HEALTH_URI} on plain HTTP: {health}"

    def hsts():
        reply = request(vip, "GET", "/", timeout=TIMEOUT_S, tls=tls)
        value = reply.headers.get("strict-transport-security", "")
        return value.startswith("max-age=") and int(value.split("=")[1].split(";")[0]) > 0, \
            f"Strict-Transport-Security: {value or 'missing'}"

    def old_refused():
        results = [old_version_refused(vip, tls.port, v) for v in OLD_VERSIONS]
        return all(r is True for r, _ in results), "; ".join(d for _, d in results)

    probes = [("HTTPS certificate chains to the lab's CA and names the site and the VIP", chain_and_names),
              ("HTTP/2 offered through ALPN", http2),
              ("both balancers present the same certificate", same_everywhere),
              ("plain HTTP answers 301 to HTTPS", redirect),
              ("HSTS on HTTPS answers", hsts),
              ("TLS 1.0 and 1.1 refused by the server", old_refused)]
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        return list(pool.map(lambda probe: _timed(probe[0], "-", probe[1]), probes))
