"""HTTPS at the balancers, without a lab: the lab's CA and certificates (made on this
machine, kept 0600, remade only when their names change), lab.yml's `site:` and `tls:`, the
configurations HAProxy and Nginx get in each mode, the HTTPS client against a TLS server in
this process, and the TLS 1.0/1.1 probe, which must catch a server that accepts TLS 1.1."""
import http.server
import ssl
import stat
import threading
import warnings

import pytest
import yaml
from cryptography import x509

from fabfile.checks import tls as T
from fabfile.checks.http import lab_tls, request
from fabfile.converge.steps import Absent, File, Template
from fabfile.converge.templates import environment
from fabfile.core import certs, state
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.remote import facts as F
from fabfile.roles import Inbound, host_plan, role_of
from tests.unit.fakes import fake_tls

HOSTS = {"lb1": {"role": "loadbalancer", "ip": "192.168.56.11"},
         "lb2": {"role": "loadbalancer", "ip": "192.168.56.12"},
         "web1": {"role": "web", "ip": "192.168.56.21"},
         "web2": {"role": "web", "ip": "192.168.56.22"},
         "app1": {"role": "app", "ip": "192.168.56.31"},
         "db1": {"role": "db", "ip": "192.168.56.41"}}


def make_lab(name="halab", vip="192.168.56.10", **extra):
    data = {"name": name, "network": "192.168.56.0/24", "vip": vip, "hosts": HOSTS, **extra}
    return parse_lab(yaml.safe_dump(data))


@pytest.fixture
def state_root(monkeypatch, tmp_path):
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "state")
    return tmp_path / "state"


# --- lab.yml: site and tls ----------------------------------------------------------------

def test_site_defaults_to_the_lab_name_under_test_and_tls_to_terminate():
    lab = make_lab("htls")
    assert (lab.site, lab.tls) == ("htls.test", "terminate")
    assert make_lab(site="notes.lab.test", tls="reencrypt").site == "notes.lab.test"
    assert make_lab(tls="reencrypt").tls == "reencrypt"


@pytest.mark.parametrize("site", ["localhost", "Notes.test", "notes..test", "-x.test", "notes.123", "a_b.test",
                                  "*.halab.test", "x" * 64 + ".test"])
def test_a_bad_site_name_is_refused_with_a_fix(site):
    with pytest.raises(LabError) as caught:
        make_lab(site=site)
    assert "site" in caught.value.problem and caught.value.fix and ".test" in caught.value.fix


def test_an_unknown_tls_mode_is_refused_naming_both_modes():
    with pytest.raises(LabError) as caught:
        make_lab(tls="passthrough")
    assert "tls" in caught.value.problem and "terminate" in caught.value.fix and "reencrypt" in caught.value.fix


# --- the CA and its certificates ----------------------------------------------------------

def mode_of(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_is_made_once_with_its_key_0600(state_root):
    lab = make_lab()
    cert, key = certs.lab_ca(lab)
    folder = state_root / "halab" / "secrets"
    assert mode_of(folder / "ca.key") == 0o600 and mode_of(folder / "ca.crt") == 0o600
    assert mode_of(folder) == 0o700
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    again, _ = certs.lab_ca(lab)
    assert again.fingerprint(certs.hashes.SHA256()) == cert.fingerprint(certs.hashes.SHA256())


def test_the_site_certificate_names_the_site_and_the_vip_and_chains_to_the_ca(state_root):
    lab = make_lab("htls")
    material = certs.tls_material(lab)
    cert = x509.load_pem_x509_certificate(material.site_cert.encode())
    assert certs.names_of(cert) == (["htls.test"], ["192.168.56.10"])
    ca = x509.load_pem_x509_certificate(material.ca_cert.encode())
    cert.verify_directly_issued_by(ca)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= certs.LEAF_DAYS
    assert material.site_pem == material.site_cert + material.site_key
    assert material.web == {}, "terminate mode: no certificate on the web hosts"
    assert mode_of(state_root / "htls" / "secrets" / "site.key") == 0o600


def test_the_site_certificate_stays_until_its_names_change_and_the_ca_stays(state_root):
    lab = make_lab()
    first = certs.tls_material(lab)
    assert certs.tls_material(lab) == first
    renamed = certs.tls_material(make_lab(site="notes.halab.test"))
    assert renamed.ca_cert == first.ca_cert
    assert renamed.site_cert != first.site_cert and renamed.site_key != first.site_key
    moved = certs.tls_material(make_lab(site="notes.halab.test", vip="192.168.56.9"))
    assert certs.names_of(x509.load_pem_x509_certificate(moved.site_cert.encode()))[1] == ["192.168.56.9"]
    assert moved.ca_cert == first.ca_cert


def test_reencrypt_gives_each_web_host_a_certificate_for_its_name_and_address(state_root):
    material = certs.tls_material(make_lab(tls="reencrypt"))
    assert sorted(material.web) == ["web1", "web2"]
    cert = x509.load_pem_x509_certificate(material.web["web2"][0].encode())
    assert certs.names_of(cert) == (["web2"], ["192.168.56.22"])


def test_ca_instructions_name_the_ca_curl_a_browser_and_the_hosts_line_and_never_the_key(state_root, tmp_path):
    lab = make_lab("htls")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    text = certs.trust_instructions(lab, etc_hosts=hosts)
    path = str(certs.ca_path(lab))
    assert f"curl --cacert {path} https://192.168.56.10/" in text
    assert f"--resolve htls.test:443:192.168.56.10 https://htls.test/" in text
    assert "Firefox" in text and "Chromium" in text
    assert "  192.168.56.10 htls.test" in text and "nothing here changes it" in text
    key = (state_root / "htls" / "secrets" / "ca.key").read_text()
    assert key.strip().splitlines()[1] not in text and "PRIVATE KEY" not in text
    assert hosts.read_text() == "127.0.0.1 localhost\n", "invoke ca changes nothing on this machine"
    hosts.write_text("192.168.56.10 htls.test\n")
    assert "already in /etc/hosts" in certs.trust_instructions(lab, etc_hosts=hosts)


# --- what the hosts get ---------------------------------------------------------------------

def rendered(lab, host_name, path):
    host = lab.host(host_name)
    steps, extra = host_plan(lab, host, {"db_password": "pw", "lab_ssh_key": ("K", "P"), "tls": fake_tls()})
    wanted = F.unique([*extra, F.addresses(), *(f for s in steps for f in s.facts())])
    facts = F.parse_raw(wanted, {"addresses": f"2: eth1    inet {host.ip}/24 scope global eth1", "container": ""})
    step = next(s for s in steps if getattr(s, "path", "") == path)
    return step, step.wanted(facts), steps


def lines(text):
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def test_haproxy_terminates_tls_redirects_http_and_keeps_the_health_uri_plain():
    cfg = lines(rendered(make_lab(), "lb1", "/etc/haproxy/haproxy.cfg")[1])
    assert "bind :443 ssl crt /etc/haproxy/tls/site.pem alpn h2,http/1.1" in cfg
    assert "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets" in cfg
    assert "monitor-uri /haproxy-health" in cfg
    assert "http-request redirect scheme https code 301 unless { path /haproxy-health }" in cfg
    assert 'http-response set-header Strict-Transport-Security "max-age=31536000"' in cfg
    assert "http-request set-header X-Forwarded-Proto https" in cfg
    assert [l for l in cfg if l.startswith("server ")] == ["server web1 192.168.56.21:80 check",
                                                            "server web2 192.168.56.22:80 check"]


def test_reencrypt_sends_https_to_each_web_host_checked_against_the_lab_ca():
    cfg = lines(rendered(make_lab(tls="reencrypt"), "lb2", "/etc/haproxy/haproxy.cfg")[1])
    assert [l for l in cfg if l.startswith("server ")] == [
        f"server {w} 192.168.56.2{i}:443 check check-ssl ssl verify required ca-file /etc/haproxy/tls/ca.crt "
        f"verifyhost {w} alpn http/1.1" for i, w in ((1, "web1"), (2, "web2"))]


def test_the_site_key_reaches_the_balancer_as_a_secret_readable_by_root_alone():
    step, content, steps = rendered(make_lab(), "lb1", "/etc/haproxy/tls/site.pem")
    assert isinstance(step, File) and step.secret and (step.mode, step.owner) == ("600", "root")
    assert content == fake_tls().site_pem
    change = step.plan({}, set())
    assert change.secret and all(content not in a.command for a in change.actions), "never on a command line"
    assert change.actions[0].stdin == content.encode()
    names = [s.name for s in steps]
    assert names.index("file /etc/haproxy/tls/site.pem") < names.index("file /etc/haproxy/haproxy.cfg"), \
        "haproxy -c needs the certificate in place"
    haproxy = next(s for s in steps if getattr(s, "unit", "") == "haproxy")
    assert "/etc/haproxy/tls/site.pem" in haproxy.reload_on, "a new certificate is loaded"


def test_nginx_serves_tls_only_in_reencrypt_mode_and_forwards_the_balancers_proto():
    lab = make_lab(tls="reencrypt")
    _, site, steps = rendered(lab, "web2", "/etc/nginx/sites-available/halab")
    site = lines(site)
    assert "listen 443 ssl default_server;" in site and "listen 80 default_server;" not in site
    assert "ssl_certificate /etc/nginx/tls/web.crt;" in site and "ssl_protocols TLSv1.2 TLSv1.3;" in site
    assert "proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;" in site
    key = next(s for s in steps if getattr(s, "path", "") == "/etc/nginx/tls/web.key")
    assert key.secret and key.mode == "600" and key.wanted({}) == fake_tls().web["web2"][1]
    assert role_of(lab.host("web2")).listeners(lab.host("web2"), role_of(lab.host("web2")).settings(lab)) == \
        [("*", 443)]

    plain = make_lab()
    _, site, steps = rendered(plain, "web1", "/etc/nginx/sites-available/halab")
    assert "listen 80 default_server;" in lines(site) and not any("ssl" in l for l in lines(site))
    assert {s.path for s in steps if isinstance(s, Absent)} >= {"/etc/nginx/tls/web.key", "/etc/nginx/tls/web.crt"}


def test_inbound_records_for_https():
    lab = make_lab(tls="reencrypt")
    lb, web = lab.host("lb1"), lab.host("web1")
    assert Inbound("HAProxy (HTTPS)", "tcp", 443) in role_of(lb).inbound(lab, lb, role_of(lb).settings(lab))
    assert role_of(web).inbound(lab, web, role_of(web).settings(lab)) == [
        Inbound("Nginx (HTTPS)", "tcp", 443, ("192.168.56.11", "192.168.56.12", "192.168.56.10"))]
    plain = make_lab()
    assert role_of(web).inbound(plain, web, role_of(web).settings(plain)) == [
        Inbound("Nginx", "tcp", 80, ("192.168.56.11", "192.168.56.12", "192.168.56.10"))]


def test_every_mode_renders_every_template_without_undefined_variables():
    for mode in ("terminate", "reencrypt"):
        lab = make_lab(tls=mode)
        for name in ("lb1", "web1"):
            host = lab.host(name)
            steps, _ = host_plan(lab, host, {"db_password": "pw", "lab_ssh_key": ("K", "P"), "tls": fake_tls()})
            for step in steps:
                if isinstance(step, Template):
                    rendered(lab, name, step.path)


# --- the client, against a TLS server in this process ---------------------------------------

class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"host {self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def tls_server(tmp_path, cert_pem, key_pem, minimum=ssl.TLSVersion.TLSv1_2, seclevel=None):
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "key.pem").write_text(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if seclevel is not None:
        context.set_ciphers(f"ALL:@SECLEVEL={seclevel}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def local_lab(state_root):
    """A lab whose 'VIP' is 127.0.0.1 (the only address a unit test may talk to)."""
    lab = make_lab("local", site="local.test")
    return lab, certs.lab_ca(lab), certs.leaf(lab, "local", ["local.test"], ["127.0.0.1"])


def test_the_client_speaks_https_for_the_site_name_to_any_address(local_lab, tmp_path):
    lab, _, (cert, key) = local_lab
    server = tls_server(tmp_path, cert, key)
    try:
        tls = lab_tls(lab)
        reply = request("127.0.0.1", "GET", "/", port=server.server_port, tls=tls, timeout=2)
        assert reply.status == 200 and reply.body == b"host local.test"
        shake = T.handshake("127.0.0.1", T.TLS(tls.context, tls.server_name, server.server_port))
        assert shake.version in ("TLSv1.2", "TLSv1.3") and certs.names_of(shake.cert)[0] == ["local.test"]
    finally:
        server.shutdown()


def test_the_client_refuses_a_certificate_from_another_ca_or_for_another_name(local_lab, tmp_path, state_root):
    lab, _, _ = local_lab
    stranger = make_lab("stranger", site="local.test")
    cert, key = certs.leaf(stranger, "local", ["local.test"], ["127.0.0.1"])
    server = tls_server(tmp_path, cert, key)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            request("127.0.0.1", "GET", "/", port=server.server_port, tls=lab_tls(lab), timeout=2)
    finally:
        server.shutdown()
    cert, key = certs.leaf(lab, "other", ["other.test"], [])
    server = tls_server(tmp_path, cert, key)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            request("127.0.0.1", "GET", "/", port=server.server_port, tls=lab_tls(lab), timeout=2)
    finally:
        server.shutdown()


def test_the_old_version_probe_refuses_nothing_itself_and_catches_a_server_that_accepts_tls_1_1(local_lab, tmp_path):
    """Debian's OpenSSL client alone would refuse TLS 1.1 at its default security level,
    and the check would pass against any server: this server accepts TLS 1.1, and the
    probe must say so."""
    _, _, (cert, key) = local_lab
    lenient = tls_server(tmp_path, cert, key, minimum=ssl.TLSVersion.TLSv1, seclevel=0)
    try:
        refused, detail = T.old_version_refused("127.0.0.1", lenient.server_address[1], ssl.TLSVersion.TLSv1_1)
        assert refused is False and "TLS 1.1 ACCEPTED" in detail, detail
        refused, detail = T.old_version_refused("127.0.0.1", lenient.server_address[1], ssl.TLSVersion.TLSv1)
        assert refused is False and "TLS 1.0 ACCEPTED" in detail, detail
    finally:
        lenient.shutdown()
    strict = tls_server(tmp_path, cert, key, minimum=ssl.TLSVersion.TLSv1_2)
    try:
        refused, detail = T.old_version_refused("127.0.0.1", strict.server_address[1], ssl.TLSVersion.TLSv1_1)
        assert refused is True and "TLS 1.1 refused" in detail, detail
    finally:
        strict.shutdown()


def test_the_old_version_probe_says_nothing_when_no_server_answers():
    refused, detail = T.old_version_refused("127.0.0.1", 9, ssl.TLSVersion.TLSv1_1, timeout=0.5)
    assert refused is None and "no connection" in detail


def test_the_drill_client_speaks_https_with_a_handshake_per_request(local_lab, tmp_path):
    from fabfile.drills.client import OpenLoopClient
    lab, _, (cert, key) = local_lab
    server = tls_server(tmp_path, cert, key)
    accepted = []
    wrap = server.socket.accept

    def counting_accept():
        connection = wrap()
        accepted.append(connection)
        return connection

    server.socket.accept = counting_accept
    try:
        client = OpenLoopClient("127.0.0.1", rate=50, count=10, write_every=0, timeout=2,
                                port=server.server_port, tls=lab_tls(lab)).start()
        client._thread.join(timeout=10)
        client.stop()
        samples = client.sorted_samples()
        assert len(samples) == 10 and all(s.ok for s in samples), [s.error for s in samples]
        assert len(accepted) == 10, "one connection, so one TLS handshake, per request"
    finally:
        server.shutdown()
