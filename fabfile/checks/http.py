"""A small HTTP(S) client for requests from this machine to the lab's VIP and balancers;
every call has a short timeout, and callers check the route first
(checks.netsafety.ensure_local_route). HTTPS is verified against the lab's own CA, for the
lab's site name, whatever address the connection goes to; each request opens its own
connection, so its time includes the TCP and TLS handshakes."""
import http.client
import json
import ssl
from dataclasses import dataclass

from ..core.certs import ca_path, lab_ca


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class TLS:
    """How to speak HTTPS to the lab: a context that trusts the lab's CA alone, and the
    name the certificate must carry (sent as SNI and as the Host header)."""
    context: ssl.SSLContext
    server_name: str
    port: int = 443


def lab_tls(lab, port=443):
    """HTTPS to the lab's site: the lab's CA (made if missing), TLS 1.2 or newer, the site's name."""
    lab_ca(lab)
    context = ssl.create_default_context(cafile=str(ca_path(lab)))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return TLS(context, lab.site, port)


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to an address that verifies another name: a balancer's own IP
    must present the site's certificate, like the VIP."""

    def __init__(self, address, port, timeout, tls):
        super().__init__(address, port, timeout=timeout, context=tls.context)
        self._server_name = tls.server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


def request(ip, method, path, payload=None, timeout=2.0, port=None, tls=None):
    """One request on a connection of its own. With `tls` (see `lab_tls`), HTTPS on its
    port; without, plain HTTP on `port` (80)."""
    if tls is not None:
        connection = _NamedHTTPSConnection(ip, port or tls.port, timeout, tls)
    else:
        connection = http.client.HTTPConnection(ip, port or 80, timeout=timeout)
    try:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if tls is not None:
            headers["Host"] = tls.server_name
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
