"""checks.http (the small client to the VIP), against a server on 127.0.0.1 in this process,
and checks.netsafety's route check with `ip route` faked."""
import http.server
import ipaddress
import json
import threading
from types import SimpleNamespace

import pytest

import fabfile.checks.netsafety as netsafety
from fabfile.checks.http import Reply, request
from fabfile.core.errors import LabError


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Served-By", "lb1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200 if self.path == "/health" else 404, {"path": self.path})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        received = json.loads(self.rfile.read(length))
        self._reply(201, {"received": received, "type": self.headers.get("Content-Type")})


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_get_returns_status_lower_case_headers_and_body(server):
    reply = request("127.0.0.1", "GET", "/health", port=server)
    assert isinstance(reply, Reply) and reply.status == 200
    assert reply.headers["x-served-by"] == "lb1" and reply.json() == {"path": "/health"}
    assert request("127.0.0.1", "GET", "/missing", port=server).status == 404


def test_post_sends_json(server):
    reply = request("127.0.0.1", "POST", "/notes", {"text": "hello"}, timeout=1.0, port=server)
    assert reply.status == 201
    assert reply.json() == {"received": {"text": "hello"}, "type": "application/json"}


def test_a_closed_port_raises(server):
    import socket
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        request("127.0.0.1", "GET", "/", timeout=0.5, port=port)


# --- the route check ----------------------------------------------------------------------------------------

LAB_NETWORK = ipaddress.ip_network("192.168.56.0/24")


def fake_ip(monkeypatch, route, default="default via 192.0.2.1 dev eth0\n"):
    asked = []

    def run(argv, **kwargs):
        asked.append(argv)
        return SimpleNamespace(stdout=route if argv[2] == "get" else default)

    monkeypatch.setattr(netsafety.subprocess, "run", run)
    return asked


def test_ensure_local_route_returns_the_labs_bridge(monkeypatch):
    asked = fake_ip(monkeypatch, "192.168.56.10 dev br-halab src 192.168.56.1 uid 0\n")
    assert netsafety.ensure_local_route("192.168.56.10", LAB_NETWORK) == "br-halab"
    assert asked == [["ip", "route", "get", "192.168.56.10"], ["ip", "route", "show", "default"]]


def test_ensure_local_route_refuses_a_route_through_a_gateway(monkeypatch):
    fake_ip(monkeypatch, "192.168.56.10 via 192.0.2.1 dev eth0 src 192.0.2.2\n")
    with pytest.raises(LabError) as caught:
        netsafety.ensure_local_route("192.168.56.10", LAB_NETWORK)
    assert "gateway 192.0.2.1" in str(caught.value) and "invoke up" in caught.value.fix


def test_no_route_at_all(monkeypatch):
    assert netsafety.route_verdict("192.168.56.10", "", "") == "no route to 192.168.56.10"


def test_is_local_bridge_by_sysfs_or_name(tmp_path):
    (tmp_path / "lab0" / "bridge").mkdir(parents=True)
    (tmp_path / "eth0").mkdir()
    assert netsafety.is_local_bridge("lab0", str(tmp_path)) is True
    assert netsafety.is_local_bridge("eth0", str(tmp_path)) is False
    for device in ("br-halab", "docker0", "vboxnet0", "virbr1"):
        assert netsafety.is_local_bridge(device, str(tmp_path)) is True
