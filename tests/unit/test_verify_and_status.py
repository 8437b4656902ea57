"""`invoke verify` and `invoke status` without a lab: fake connections that answer the
facts script in its own format (`key<TAB>base64(output)` per fact), a fake HTTP client,
a fake machines object."""
import base64
import errno
import json
from types import SimpleNamespace

import pytest

from fabfile.checks import status as S
from fabfile.checks import verify as V
from fabfile.checks.http import Reply
from fabfile.remote import facts as F
from fabfile.roles import Check, role_of
from tests.unit.test_role_checks import HEALTHY, LAB, healthy_raw, ip_addr


def facts_output(facts, raw):
    """What the facts script prints on a host whose commands print `raw`."""
    return "".join(f"{fact.key}\t{base64.b64encode(raw.get(fact.key, '').encode()).decode()}\n"
                   for fact in F.unique(facts))


class FakeConnection:
    """Answers the one facts round trip from canned raw outputs."""

    def __init__(self, raw=None, error=None, exited=0, stderr=""):
        self.raw, self.error, self.exited, self.stderr = raw or {}, error, exited, stderr
        self.calls = []

    def run(self, command, **kw):
        self.calls.append((command, kw))
        if self.error:
            raise self.error
        facts = self.facts_of(command)
        stdout = facts_output(facts, self.raw) if self.exited == 0 else ""
        return SimpleNamespace(stdout=stdout, stderr=self.stderr, exited=self.exited)

    facts_of = None  # set per test: the facts the command asks


def connection_for(host, raw=None, **kw):
    connection = FakeConnection(raw, **kw)
    connection.facts_of = lambda command: V.host_facts(LAB, host)
    return connection


def without_seconds(checks):
    return [(c.name, c.host, c.passed, c.detail) for c in checks]


# --- host_checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lb1", "web1", "app1", "db1"])
def test_host_checks_of_a_healthy_host(name):
    host = LAB.host(name)
    connection = connection_for(host, healthy_raw(LAB, host))
    checks, facts = V.host_checks(LAB, host, connection)
    assert without_seconds(checks) == [("host reachable", name, True, "SSH answered")] + \
        without_seconds(HEALTHY[name]) + [
        ("halab-firewall active and enabled", name, True, "active, enabled"),
        ("firewall loaded as provisioned", name, True, "table inet halab as provision loaded it")]
    assert set(facts) == {f.key for f in V.host_facts(LAB, host)}
    [(command, kw)] = connection.calls
    assert command.startswith("sudo -n sh -c ")
    assert kw == {"hide": True, "warn": True, "in_stream": False, "timeout": V.INSIDE_TIMEOUT_S}


def test_host_checks_really_decode_the_script_output():
    """A check fails on the host's answer, not on the harness: haproxy stopped on lb1."""
    host = LAB.host("lb1")
    raw = dict(healthy_raw(LAB, host), **{"service:haproxy": "enabled failed"})
    checks, facts = V.host_checks(LAB, host, connection_for(host, raw))
    assert [c for c in without_seconds(checks) if not c[2]] == [
        ("haproxy active and enabled", "lb1", False, "failed, enabled")]
    assert facts["service:haproxy"] == F.ServiceState("enabled", "failed")


def test_unreachable_host_gives_one_failed_check():
    host = LAB.host("web1")
    checks, facts = V.host_checks(LAB, host, connection_for(host, error=OSError(errno.EHOSTUNREACH, "No route to host")))
    assert facts is None
    assert without_seconds(checks) == [("host reachable", "web1", False, "OSError: [Errno 113] No route to host")]


def test_host_whose_sudo_fails_gives_one_failed_check():
    host = LAB.host("db1")
    connection = connection_for(host, exited=1, stderr="sudo: a password is required\n")
    checks, facts = V.host_checks(LAB, host, connection)
    assert facts is None
    assert without_seconds(checks) == [
        ("host reachable", "db1", False, "RuntimeError: gathering facts failed (exit 1): sudo: a password is required")]


# --- outside_checks ------------------------------------------------------------------------

class FakeHTTP:
    """The VIP as seen from the host machine: a page, POST /api/notes, GET /api/notes/<id>."""

    def __init__(self, page_status=200, post_status=201, lb="lb1", page_error=None, read_text=None):
        self.page_status, self.post_status, self.lb = page_status, post_status, lb
        self.page_error, self.read_text = page_error, read_text
        self.calls = []
        self.text = None

    def __call__(self, ip, method, path, payload=None, timeout=2.0, port=None, tls=None):
        assert tls == TLS_STANDIN, "every request to the VIP goes over HTTPS"
        self.calls.append((ip, method, path, timeout))
        headers = {"x-lb": self.lb, "x-served-by": "web1"}
        if path == "/":
            if self.page_error:
                raise self.page_error
            return Reply(self.page_status, headers, b"<html>halab</html>")
        if method == "POST":
            self.text = payload["text"]
            if self.post_status != 201:
                return Reply(self.post_status, headers, b"<html>502 Bad Gateway</html>")
            return Reply(201, dict(headers, **{"x-app": "app1"}),
                         json.dumps({"id": 7, "app": "app1", "text": self.text}).encode())
        assert (method, path) == ("GET", "/api/notes/7")
        text = self.read_text if self.read_text is not None else self.text
        return Reply(200, dict(headers, **{"x-app": "app1"}), json.dumps({"id": 7, "text": text}).encode())


def run_outside(monkeypatch, http, find):
    monkeypatch.setattr(V, "request", http)
    asked = []

    def find_note(note_id):
        asked.append(note_id)
        return find(http.text)

    return without_seconds(V.outside_checks(LAB, find_note, TLS_STANDIN)), asked


NOTE = "note written via HTTPS to the VIP -> HAProxy -> Nginx -> Gunicorn -> MySQL"
TLS_STANDIN = "the lab's TLS"  # what lab_tls would give; the fake VIP only checks it is passed


def test_outside_checks_pass_when_the_note_is_in_the_table(monkeypatch):
    http = FakeHTTP()
    checks, asked = run_outside(monkeypatch, http, lambda text: text)
    assert checks == [("page through the VIP over HTTPS", "lb1", True, "HTTP 200, X-LB lb1, X-Served-By web1"),
                      (NOTE, "app1", True, "id 7 by app1, read back 200, in the table on the database host"),
                      ("X-LB, X-Served-By and X-App name lab hosts", "-", True, "app1, lb1, web1")]
    assert asked == [7]
    assert [c[:3] for c in http.calls] == [("192.168.56.10", "GET", "/"), ("192.168.56.10", "POST", "/api/notes"),
                                           ("192.168.56.10", "GET", "/api/notes/7")]
    assert http.text.startswith("verify ")


def test_outside_checks_fail_when_the_note_is_not_in_the_table(monkeypatch):
    checks, _ = run_outside(monkeypatch, FakeHTTP(), lambda text: None)
    assert checks[1] == (NOTE, "app1", False, "id 7 by app1, read back 200, NOT in the table on the database host")
    assert [c[2] for c in checks] == [True, False, True]


def test_outside_checks_fail_when_the_read_back_differs(monkeypatch):
    checks, _ = run_outside(monkeypatch, FakeHTTP(read_text="someone else's"), lambda text: text)
    assert checks[1] == (NOTE, "app1", False, "id 7 by app1, read back 200, in the table on the database host")


def test_outside_checks_stop_at_an_unreachable_vip(monkeypatch):
    http = FakeHTTP(page_error=ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    checks, asked = run_outside(monkeypatch, http, lambda text: text)
    assert checks == [("page through the VIP over HTTPS", "-", False, "192.168.56.10: [Errno 111] Connection refused")]
    assert asked == [] and len(http.calls) == 1


def test_outside_checks_with_a_failed_write(monkeypatch):
    checks, asked = run_outside(monkeypatch, FakeHTTP(post_status=502), lambda text: text)
    assert checks == [("page through the VIP over HTTPS", "lb1", True, "HTTP 200, X-LB lb1, X-Served-By web1"),
                      (NOTE, "-", False, "POST answered 502: b'<html>502 Bad Gateway</html>'")]
    assert asked == []


def test_outside_checks_refuse_a_page_from_a_stranger(monkeypatch):
    checks, _ = run_outside(monkeypatch, FakeHTTP(lb="lb9", page_status=200), lambda text: text)
    assert checks[0] == ("page through the VIP over HTTPS", "lb9", False, "HTTP 200, X-LB lb9, X-Served-By web1")
    assert checks[2] == ("X-LB, X-Served-By and X-App name lab hosts", "-", False, "app1, lb9, web1")


# --- Verdict -------------------------------------------------------------------------------

CHECKS = [Check("host reachable", "lb1", True, "SSH answered", 0.12345),
          Check("haproxy active and enabled", "lb1", False, "inactive, enabled", 0.0004),
          Check("page through the VIP", "-", True, "HTTP 200, X-LB lb2, X-Served-By web1", 0.0456)]


def test_verdict_of_failed_checks():
    verdict = V.Verdict(CHECKS, 2.345)
    assert verdict.passed is False
    assert verdict.summary() == "verify: 1 of 3 checks FAILED in 2.3s: lb1: haproxy active and enabled"
    assert verdict.table() == "\n".join([
        "      host  check                       detail",
        "----  ----  --------------------------  ------------------------------------",
        "PASS  lb1   host reachable              SSH answered",
        "FAIL  lb1   haproxy active and enabled  inactive, enabled",
        "PASS  -     page through the VIP        HTTP 200, X-LB lb2, X-Served-By web1"])
    assert verdict.as_json() == {"passed": False, "seconds": 2.35, "checks": [
        {"name": "host reachable", "host": "lb1", "passed": True, "detail": "SSH answered", "seconds": 0.123},
        {"name": "haproxy active and enabled", "host": "lb1", "passed": False, "detail": "inactive, enabled",
         "seconds": 0.0},
        {"name": "page through the VIP", "host": "-", "passed": True,
         "detail": "HTTP 200, X-LB lb2, X-Served-By web1", "seconds": 0.046}], "matrix": []}
    json.dumps(verdict.as_json())


def test_verdict_of_passed_checks():
    verdict = V.Verdict([CHECKS[0], CHECKS[2]], 0.96)
    assert verdict.passed is True
    assert verdict.summary() == "verify: all 2 checks passed in 1.0s"
    assert verdict.as_json()["passed"] is True


# --- status --------------------------------------------------------------------------------

class FakeConnectionName(str):
    """A connection the fake gather knows by its text; status closes it when done."""

    def close(self):
        pass


class FakeInventory:
    def __init__(self):
        self.asked_endpoints = []

    def endpoints(self, names):
        self.asked_endpoints.append(list(names))
        ports = {"lb1": 2222, "lb2": 2200, "web1": 2201, "app1": 2202, "db1": 2203}
        return {n: SimpleNamespace(user="vagrant", hostname="127.0.0.1", port=ports[n]) for n in names}

    def connections(self, hosts):
        return {h.name: FakeConnectionName(f"connection to {h.name}") for h in hosts}, []


class FakeMachines:
    def __init__(self, states):
        self.lab = LAB
        self._states = states
        self.inventory = FakeInventory()

    def states(self):
        return self._states


def fake_gather(answers, asked):
    """F.gather: each host's raw outputs, or an exception for a host that does not answer."""
    def gather(connection, facts, timeout=None):
        name = connection.split()[-1]
        asked.append((name, [f.key for f in facts], timeout))
        answer = answers[name]
        if isinstance(answer, Exception):
            raise answer
        return F.parse_raw(facts, answer)
    return gather


def up(name, vip=False, **services):
    host = LAB.host(name)
    raw = {"addresses": ip_addr(host.ip, vip)}
    raw.update({f"service:{u}": services.get(u.replace("-", "_"), "enabled active") for u in role_of(host).services})
    return raw


RUNNING = {n: ("running", "docker") for n in LAB.host_names}


def test_status_of_a_healthy_lab(monkeypatch):
    asked = []
    monkeypatch.setattr(S.F, "gather", fake_gather(
        {"lb1": up("lb1", vip=True), "lb2": up("lb2"), "web1": up("web1"), "app1": up("app1"), "db1": up("db1")},
        asked))
    machines = FakeMachines(RUNNING)
    rows = S.statuses(machines)
    assert rows[0] == S.HostStatus("lb1", "loadbalancer", "192.168.56.11", "running", "docker",
                                   "vagrant@127.0.0.1:2222", "haproxy up, keepalived up", True)
    assert [(r.name, r.services, r.vip) for r in rows] == [
        ("lb1", "haproxy up, keepalived up", True), ("lb2", "haproxy up, keepalived up", False),
        ("web1", "nginx up", False), ("app1", "halab-app up", False), ("db1", "mariadb up", False)]
    assert sorted(asked) == [("app1", ["addresses", "service:halab-app"], S.STATUS_TIMEOUT_S),
                             ("db1", ["addresses", "service:mariadb"], S.STATUS_TIMEOUT_S),
                             ("lb1", ["addresses", "service:haproxy", "service:keepalived"], S.STATUS_TIMEOUT_S),
                             ("lb2", ["addresses", "service:haproxy", "service:keepalived"], S.STATUS_TIMEOUT_S),
                             ("web1", ["addresses", "service:nginx"], S.STATUS_TIMEOUT_S)]
    assert S.render(LAB, rows) == "\n".join([
        "host  role          ip             state    provider  ssh                     services                   vip",
        "----  ------------  -------------  -------  --------  ----------------------  -------------------------  ---",
        "lb1   loadbalancer  192.168.56.11  running  docker    vagrant@127.0.0.1:2222  haproxy up, keepalived up  VIP",
        "lb2   loadbalancer  192.168.56.12  running  docker    vagrant@127.0.0.1:2200  haproxy up, keepalived up",
        "web1  web           192.168.56.21  running  docker    vagrant@127.0.0.1:2201  nginx up",
        "app1  app           192.168.56.31  running  docker    vagrant@127.0.0.1:2202  halab-app up",
        "db1   db            192.168.56.41  running  docker    vagrant@127.0.0.1:2203  mariadb up",
        "virtual IP 192.168.56.10 on lb1"])


def test_status_shows_split_brain(monkeypatch):
    monkeypatch.setattr(S.F, "gather", fake_gather(
        {"lb1": up("lb1", vip=True), "lb2": up("lb2", vip=True), "web1": up("web1"), "app1": up("app1"),
         "db1": up("db1")}, []))
    rows = S.statuses(FakeMachines(RUNNING))
    assert [r.name for r in rows if r.vip] == ["lb1", "lb2"]
    assert S.render(LAB, rows).splitlines()[-1] == "virtual IP 192.168.56.10 on lb1, lb2: SPLIT BRAIN"


def test_status_of_unreachable_and_stopped_hosts(monkeypatch):
    asked = []
    monkeypatch.setattr(S.F, "gather", fake_gather(
        {"lb1": up("lb1", haproxy="enabled failed"), "lb2": up("lb2", vip=True, keepalived="enabled activating"),
         "web1": TimeoutError("timed out"), "app1": up("app1", halab_app="missing inactive")}, asked))
    machines = FakeMachines(dict(RUNNING, db1=("poweroff", "virtualbox")))
    rows = S.statuses(machines)
    assert [(r.name, r.state, r.provider, r.ssh, r.services, r.vip) for r in rows] == [
        ("lb1", "running", "docker", "vagrant@127.0.0.1:2222", "haproxy failed, keepalived up", False),
        ("lb2", "running", "docker", "vagrant@127.0.0.1:2200", "haproxy up, keepalived activating", True),
        ("web1", "running", "docker", "vagrant@127.0.0.1:2201", "unreachable", False),
        ("app1", "running", "docker", "vagrant@127.0.0.1:2202", "halab-app inactive", False),
        ("db1", "poweroff", "virtualbox", "-", "-", False)]
    assert machines.inventory.asked_endpoints == [["lb1", "lb2", "web1", "app1"]]
    assert "db1" not in [name for name, _, _ in asked]
    assert S.render(LAB, rows).splitlines()[-1] == "virtual IP 192.168.56.10 on lb2"


def test_status_of_a_lab_not_created(monkeypatch):
    monkeypatch.setattr(S.F, "gather", lambda *a, **k: pytest.fail("nothing runs: no facts to gather"))
    machines = FakeMachines({})
    rows = S.statuses(machines)
    assert [(r.name, r.state, r.provider, r.ssh, r.services, r.vip) for r in rows] == [
        (n, "unknown", "-", "-", "-", False) for n in LAB.host_names]
    assert machines.inventory.asked_endpoints == []
    assert S.render(LAB, rows).splitlines()[-1] == "virtual IP 192.168.56.10 on no balancer"
