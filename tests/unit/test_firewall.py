"""The firewall as data: the Inbound records of every role, the ruleset rendered from
them, the safe load's plan, the port matrix's expectations and verdicts, a student's own
ruleset refused before anything changes, the console of each provider, and the engine's
confirmation over a new SSH connection."""
import hashlib
import subprocess

import pytest
import yaml

from fabfile.checks import portmatrix as PM
from fabfile.converge.engine import HostRun
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.lifecycle.firewall import own_ruleset
from fabfile.machines.providers.base import route_source
from fabfile.roles import exporters
from fabfile.machines.providers.docker import DOCKER
from fabfile.machines.providers.libvirt import LIBVIRT
from fabfile.machines.providers.virtualbox import VIRTUALBOX
from fabfile.remote import facts as F
from fabfile.remote.connection import Endpoint
from fabfile.roles import firewall as FW
from fabfile.roles import host_context, role_of
from tests.unit.test_engine import FakeConnection

SSH_SOURCE = "172.17.0.1"


def make_lab(extra=None):
    hosts = {"lb1": {"role": "loadbalancer", "ip": "192.168.64.11"},
             "lb2": {"role": "loadbalancer", "ip": "192.168.64.12"},
             "web1": {"role": "web", "ip": "192.168.64.21"},
             "app1": {"role": "app", "ip": "192.168.64.31"},
             "db1": {"role": "db", "ip": "192.168.64.41"}, **(extra or {})}
    return parse_lab(yaml.safe_dump({"name": "hfw", "network": "192.168.64.0/24", "vip": "192.168.64.10",
                                     "hosts": hosts}, sort_keys=False))


LAB = make_lab()
SCALED = make_lab({"web2": {"role": "web", "ip": "192.168.64.22"}, "app2": {"role": "app", "ip": "192.168.64.32"}})


def ruleset(lab, name):
    return FW.render_ruleset(host_context(lab, lab.host(name), {}, SSH_SOURCE), SSH_SOURCE)


def accept_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip().endswith('"') and " accept " in line]


# --- what each role lets in ----------------------------------------------------------------

def test_each_role_accepts_only_what_it_serves_and_only_from_the_tier_that_calls_it():
    assert accept_lines(ruleset(LAB, "lb1")) == [
        'ip saddr { 192.168.64.1, 172.17.0.1, 192.168.64.12, 192.168.64.21, 192.168.64.31, 192.168.64.41 } '
        'tcp dport 22 accept comment "SSH"',
        'tcp dport 80 accept comment "HTTP"',
        'tcp dport 443 accept comment "HAProxy (HTTPS)"',
        'ip saddr 192.168.64.12 ip protocol vrrp accept comment "VRRP adverts of the peer"',
        'ip saddr 192.168.64.1 tcp dport 8404 accept comment "HAProxy stats"']
    assert accept_lines(ruleset(LAB, "web1"))[1:] == [
        'ip saddr { 192.168.64.11, 192.168.64.12, 192.168.64.10 } tcp dport 80 accept comment "Nginx"']
    assert accept_lines(ruleset(LAB, "app1"))[1:] == [
        'ip saddr 192.168.64.21 tcp dport 8000 accept comment "Gunicorn"']
    assert accept_lines(ruleset(LAB, "db1"))[1:] == [
        'ip saddr 192.168.64.31 tcp dport 3306 accept comment "MariaDB"']


def test_the_ruleset_denies_by_default_replaces_only_its_own_table_and_explains_each_rule():
    text = ruleset(LAB, "db1")
    assert text.startswith("#!/usr/sbin/nft -f\n")
    assert "policy drop;" in text and "flush ruleset" not in text
    assert "table inet halab\ndelete table inet halab\n\ntable inet halab {" in text
    assert "# MariaDB (3306/tcp) from app1" in text
    assert "# SSH (22/tcp) from the lab's host, the lab's host via Vagrant's SSH (172.17.0.1), lb1, lb2, web1, app1" in text
    assert text.rstrip().endswith("reject with icmpx admin-prohibited\n\t}\n}")


def test_scaling_a_tier_updates_every_ruleset_that_depends_on_it():
    assert 'ip saddr { 192.168.64.21, 192.168.64.22 } tcp dport 8000' in ruleset(SCALED, "app1")
    assert 'ip saddr { 192.168.64.21, 192.168.64.22 } tcp dport 8000' in ruleset(SCALED, "app2")
    assert 'ip saddr { 192.168.64.31, 192.168.64.32 } tcp dport 3306' in ruleset(SCALED, "db1")
    assert "192.168.64.22" in accept_lines(ruleset(SCALED, "lb1"))[0]  # SSH from the new hosts too


def test_settings_move_the_ports_in_the_ruleset():
    lab = parse_lab(yaml.safe_dump({"name": "hfw", "network": "192.168.64.0/24", "vip": "192.168.64.10",
                                    "hosts": {h.name: {"role": h.role, "ip": h.ip} for h in LAB.hosts},
                                    "settings": {"db": {"db_port": 3307}, "app": {"app_port": 8080}}},
                                   sort_keys=False))
    assert "tcp dport 3307 accept" in ruleset(lab, "db1")
    assert "tcp dport 8080 accept" in ruleset(lab, "app1")


def test_an_ssh_source_on_the_private_network_is_not_listed_twice():
    assert FW.inbound_ssh(LAB, LAB.host("web1"), LAB.gateway).sources[:2] == ("192.168.64.1", "192.168.64.11")


def test_an_unknown_protocol_is_refused_by_name():
    with pytest.raises(LabError, match="unknown protocol 'sctp'"):
        FW.rules(LAB, [FW.Inbound("odd", "sctp", 9)])


def test_ipv6_sources_get_a_rule_of_their_own():
    found = FW.rules(LAB, [FW.Inbound("x", "tcp", 9, ("192.168.64.1", "fd00::/64"))])
    assert [r.match for r in found] == ["ip saddr 192.168.64.1 tcp dport 9", "ip6 saddr fd00::/64 tcp dport 9"]


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v nft"], capture_output=True).returncode != 0,
                    reason="nft is not installed here")
def test_nft_parses_every_rendered_ruleset(tmp_path):
    for lab in (LAB, SCALED):
        for host in lab.hosts:
            path = tmp_path / f"{host.name}.nft"
            path.write_text(ruleset(lab, host.name))
            result = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
            assert result.returncode == 0 or "Operation not permitted" in result.stderr, result.stderr


# --- the step: load only what differs, always through the safe load ------------------------------

def plan(raw, content="table inet halab {}\n"):
    step = FW.Ruleset(FW.RULESET, content)
    facts = F.parse_raw(step.facts(), raw)
    return step.plan(facts, set())


def converged_raw(content="table inet halab {}\n"):
    digest = hashlib.sha256(content.encode()).hexdigest()
    return {f"file:{FW.RULESET}": f"{digest}\n644 root root", "firewall:loaded": "abc\nabc"}


def test_a_converged_firewall_plans_nothing():
    assert plan(converged_raw()) is None


@pytest.mark.parametrize("change, detail", [
    ({f"file:{FW.RULESET}": ""}, "loaded"),
    ({f"file:{FW.RULESET}": "0" * 64 + "\n644 root root"}, "changed, loaded"),
    ({"firewall:loaded": "abc\ndef"}, "the loaded table differs from the lab's (changed by hand?): loaded again"),
    ({"firewall:loaded": "none\ndef"}, "the loaded table differs from the lab's (changed by hand?): loaded again"),
])
def test_a_new_file_or_a_table_changed_by_hand_is_loaded_again(change, detail):
    change_ = plan({**converged_raw(), **change})
    assert change_.detail == detail and change_.path == FW.RULESET
    shown = [a.shown or a.command for a in change_.actions]
    assert shown == [f"write {FW.CANDIDATE}", f"nft -c -f {FW.CANDIDATE}",
                     f"arm the rollback ({FW.ROLLBACK_AFTER_S} s), nft -f {FW.CANDIDATE}",
                     "confirm over a new SSH connection"]


def test_the_load_arms_the_rollback_before_it_loads_and_only_a_new_connection_keeps_it():
    write, check, arm, confirm = FW.load_actions("table inet halab {}\n")
    assert write.stdin == b"table inet halab {}\n" and not write.fresh_connection
    assert check.cleanup == f"rm -f {FW.CANDIDATE}"
    assert arm.command.index("systemd-run") < arm.command.index(f"nft -f {FW.CANDIDATE}")
    assert f"--on-active={FW.ROLLBACK_AFTER_S}" in arm.command and not arm.fresh_connection
    assert confirm.fresh_connection and confirm.settle > FW.ROLLBACK_AFTER_S
    assert f"mv -f {FW.CANDIDATE} {FW.RULESET}" in confirm.command and FW.LOADED in confirm.command
    assert "rolled back to the previous one" in confirm.diagnose
    assert "cut SSH" in confirm.failure


def test_the_rollback_waits_longer_on_slow_guests(monkeypatch):
    from fabfile.remote import connection
    monkeypatch.setattr(connection, "_slowness", 8.0)   # libvirt under TCG
    arm, confirm = FW.load_actions("x")[2:]
    assert f"--on-active={FW.ROLLBACK_AFTER_S * 8}" in arm.command
    assert confirm.settle > FW.ROLLBACK_AFTER_S * 8


def test_a_students_ruleset_is_not_kept_for_boot_nor_recorded_as_the_labs():
    confirm = FW.load_actions("x", persist=False)[-1]
    assert f"mv -f {FW.CANDIDATE} {FW.RULESET}" not in confirm.command and FW.LOADED not in confirm.command


def test_firewall_checks_read_the_unit_and_the_kernel_table():
    def checks(raw):
        facts = F.parse_raw(FW.check_facts(), raw)
        return [(c.name, c.passed) for c in FW.checks(LAB.host("web1"), facts)]
    good = {"service:halab-firewall": "enabled active", "firewall:loaded": "a\na"}
    assert checks(good) == [("halab-firewall active and enabled", True), ("firewall loaded as provisioned", True)]
    assert checks(dict(good, **{"firewall:loaded": "a\nb"}))[1] == ("firewall loaded as provisioned", False)
    assert checks(dict(good, **{"firewall:loaded": "none\nb"}))[1] == ("firewall loaded as provisioned", False)
    assert checks(dict(good, **{"service:halab-firewall": "disabled inactive"}))[0][1] is False


# --- the engine confirms over a new connection ----------------------------------------------------

class Refusing(FakeConnection):
    """A host whose new SSH connections are refused `refusals` times, then accepted."""

    def __init__(self, refusals, **kw):
        super().__init__(**kw)
        self.refusals = refusals
        self.opened = 0

    def fresh(self, connect_timeout):
        self.opened += 1
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        fresh = FakeConnection(script=self.script, log=self.log)
        fresh.close = lambda: None
        return fresh


def test_a_ruleset_that_cuts_ssh_fails_loudly_after_the_rollback_fired(monkeypatch):
    slept = []
    monkeypatch.setattr("fabfile.converge.engine.time.sleep", slept.append)
    connection = Refusing(1, script=[("if [ -e /run/halab-firewall.rolled-back ]; then echo 'rolled",
                                      "rolled back to the previous one by itself", 0)])
    run = HostRun("web1", "web", connection)
    confirm = FW.load_actions("x")[-1]
    with pytest.raises(LabError) as caught:
        run.act(confirm, "firewall ruleset")
    assert slept == [confirm.settle] and connection.opened == 2  # the diagnosis on a second new one
    assert "the new ruleset cut SSH" in caught.value.problem
    assert "no new SSH connection: ConnectionRefusedError" in caught.value.problem
    assert caught.value.problem.endswith("rolled back to the previous one by itself")


def test_a_confirmed_ruleset_runs_its_confirmation_on_a_new_connection_only():
    connection = Refusing(0)
    HostRun("web1", "web", connection).act(FW.load_actions("x")[-1], "firewall ruleset")
    assert connection.opened == 1 and "systemctl stop halab-firewall-rollback.timer" in connection.commands[0]


# --- a student's own ruleset ------------------------------------------------------------------------

def test_a_students_ruleset_replaces_the_labs_table_atomically():
    text = "table inet halab {\n\tchain input {\n\t}\n}\n"
    assert own_ruleset(text) == "table inet halab\ndelete table inet halab\n" + text


@pytest.mark.parametrize("text, problem", [
    ("table ip nat {\n}\n", "must define the table inet halab and no other"),
    ("table inet halab {\n}\ntable inet other {\n}\n", "found: inet halab, inet other"),
    ("", "found: none"),
    ("flush ruleset\ntable inet halab {\n}\n", "says `flush ruleset`"),
])
def test_a_students_ruleset_that_touches_more_is_refused_before_anything_changes(text, problem):
    with pytest.raises(LabError, match=problem.replace("`", ".")):
        own_ruleset(text)


# --- the port matrix -------------------------------------------------------------------------------

def test_the_matrix_targets_come_from_inbound_records_and_listeners():
    found = {(t.host, t.port): t for t in PM.targets(LAB)}
    exporter_ports = [(h.name, port) for h in LAB.hosts for _, port in exporters.listeners(h)]
    assert sorted(found) == sorted( [("app1", 22), ("app1", 8000), ("db1", 22), ("db1", 3306), ("lb1", 22), ("lb1", 80),
                             ("lb1", 443), ("lb1", 8404), ("lb2", 22), ("lb2", 80), ("lb2", 443), ("lb2", 8404),
                             ("web1", 22), ("web1", 80)] + exporter_ports)
    assert found[("db1", 9104)].sources is None  # no monitoring server: no one may scrape
    assert found[("lb1", 443)].listening is True  # HAProxy terminates TLS there
    assert found[("db1", 3306)].service == "MariaDB"


def expected(lab, source, to, port):
    ip = lab.gateway if source == PM.LAB_HOST else lab.host(source).ip
    target = next(t for t in PM.targets(lab) if (t.host, t.port) == (to, port))
    return target.allows(ip)


@pytest.mark.parametrize("source, to, port, open_", [
    ("lb1", "db1", 3306, False), ("app1", "db1", 3306, True), ("host", "app1", 8000, False),
    ("web1", "app1", 8000, True), ("host", "lb1", 8404, True), ("web1", "lb1", 8404, False),
    ("host", "web1", 80, False), ("lb2", "web1", 80, True), ("db1", "lb1", 80, True),
    ("host", "db1", 22, True), ("app1", "web1", 22, True), ("host", "lb1", 443, True),
])
def test_expected_paths(source, to, port, open_):
    assert expected(LAB, source, to, port) is open_


def test_a_scaled_tier_opens_its_paths():
    assert expected(SCALED, "web2", "app1", 8000) and expected(SCALED, "app2", "db1", 3306)
    assert not expected(SCALED, "web2", "db1", 3306)


def test_probes_run_at_once_and_bounded_from_each_host():
    fact = PM.probe_fact(LAB, LAB.host("lb1"))
    assert fact.command.startswith(f"timeout {PM.PROBE_TIMEOUT_S} bash -c ") and PM.PROBE_TIMEOUT_S <= 5
    assert "192.168.64.41:3306" in fact.command and "& done; wait" in fact.command
    assert "192.168.64.11:" not in fact.command  # not itself
    assert fact.command.count("192.168.64.") == len([t for t in PM.targets(LAB) if t.host != "lb1"])
    assert PM.parse_probes("192.168.64.41:3306 1\n192.168.64.21:80 0\nnoise\n") == {
        "192.168.64.41:3306": 1, "192.168.64.21:80": 0}


def test_the_probe_script_really_connects_and_reports_refusals():
    """The script itself, run here against this machine's loopback only: a listening port
    answers 0, a closed one 1, each on its own line."""
    import socket
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        command = PM.probe_command([f"127.0.0.1:{port}", "127.0.0.1:1"])
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10).stdout
    found = PM.parse_probes(out)
    assert found[f"127.0.0.1:{port}"] == 0 and found["127.0.0.1:1"] == 1


def test_a_probe_without_an_answer_reads_closed_and_says_so():
    paths = PM.judge(LAB, "lb1", LAB.host("lb1").ip, {})
    assert all(p.observed == "closed" and p.how == "no answer" for p in paths)


def test_the_matrix_judges_each_path_and_names_what_differs():
    statuses = {t.address: (0 if t.allows(LAB.host("lb1").ip) else 1) for t in PM.targets(LAB)}
    statuses["192.168.64.41:3306"] = 0  # lb1 reaches the database: a hole
    paths = PM.matrix(LAB, {"lb1": statuses}, {})
    wrong = [p.as_json() for p in paths if not p.passed and p.source == "lb1"]
    assert wrong == [{"from": "lb1", "to": "db1", "port": 3306, "service": "MariaDB", "expected": "closed",
                      "observed": "open", "passed": False, "how": "open"}]
    unreachable = [p for p in paths if p.source == "lb2"]
    assert unreachable and all(p.how == "not probed (source unreachable)" for p in unreachable)
    columns, rows = PM.rows(LAB, paths)
    assert columns == ["to \\ from", "lb1", "lb2", "web1", "app1", "db1", "host"]
    assert ["db1:3306 MariaDB", "OPEN! want closed"] in [row[:2] for row in rows]
    assert rows[0][0] == "lb1:22 SSH" and rows[0][1] == "-"


def test_probes_from_here_check_the_route_of_every_host_first(monkeypatch):
    checked = []
    monkeypatch.setattr(PM, "ensure_local_route", lambda ip, net: checked.append(ip))
    monkeypatch.setattr(PM, "connect_status", lambda ip, port, timeout=1: 0 if port == 22 else 1)
    statuses = PM.probe_from_here(LAB)
    assert checked == sorted(h.ip for h in LAB.hosts)
    assert statuses["192.168.64.21:22"] == 0 and statuses["192.168.64.21:80"] == 1


def test_a_refused_route_stops_the_probes_from_here(monkeypatch):
    def refuse(ip, net):
        raise LabError("refusing to send traffic")
    monkeypatch.setattr(PM, "ensure_local_route", refuse)
    monkeypatch.setattr(PM, "connect_status", lambda *a, **k: pytest.fail("probed"))
    with pytest.raises(LabError):
        PM.probe_from_here(LAB)


# --- where SSH comes from, and the console ------------------------------------------------------------

def endpoint(hostname, port=22):
    return Endpoint("web1", hostname, port, "vagrant", ("/k",))


def test_the_ssh_source_is_this_machines_address_on_the_way_to_the_guest():
    assert route_source("172.17.0.4 dev docker0 src 172.17.0.1 uid 0 \n    cache \n") == "172.17.0.1"
    assert route_source("") == ""
    assert VIRTUALBOX.ssh_source(endpoint("127.0.0.1", 2222)) == "10.0.2.2"


def test_the_console_on_docker_is_docker_exec():
    assert DOCKER.console_argv(LAB, "web1") == ["docker", "exec", "-it", "hfw-web1", "bash", "-l"]
    assert DOCKER.console_argv(LAB, "web1", "nft list ruleset") == [
        "docker", "exec", "hfw-web1", "bash", "-c", "nft list ruleset"]


def test_the_console_on_libvirt_is_the_serial_console():
    assert LIBVIRT.console_argv(LAB, "web1") == ["virsh", "-c", "qemu:///system", "console", "hfw-web1"]
    with pytest.raises(LabError, match="interactive shell"):
        LIBVIRT.console_argv(LAB, "web1", "true")


def test_virtualbox_says_plainly_what_it_offers():
    with pytest.raises(LabError) as caught:
        VIRTUALBOX.console_argv(LAB, "web1")
    assert "no serial port" in caught.value.problem and "Show" in caught.value.fix
    assert "hfw-web1" in caught.value.fix


def test_a_monitoring_server_alone_may_scrape_and_the_stats_port_keeps_the_lab_host():
    monitored = make_lab({"mon1": {"role": "monitor", "ip": "192.168.64.51"}})
    found = {(t.host, t.port): t for t in PM.targets(monitored)}
    mon1, lab_host, web1 = "192.168.64.51", monitored.gateway, "192.168.64.21"
    for host in ("lb1", "web1", "app1", "db1", "mon1"):
        assert found[(host, exporters.NODE_PORT)].allows(mon1)
        assert not found[(host, exporters.NODE_PORT)].allows(web1)
    assert found[("db1", exporters.MYSQLD_PORT)].allows(mon1) and not found[("db1", exporters.MYSQLD_PORT)].allows(lab_host)
    stats = found[("lb1", 8404)]
    assert stats.allows(lab_host) and stats.allows(mon1) and not stats.allows(web1)
    assert 'ip saddr 192.168.64.51 tcp dport 9100 accept' in ruleset(monitored, "db1")


def test_provision_refuses_before_anything_when_a_hosts_ssh_source_is_unknown(monkeypatch):
    from fabfile.lifecycle import provision as P

    class Machines:
        lab = LAB
        inventory = type("I", (), {"cached_endpoints": staticmethod(lambda: {h: 1 for h in LAB.host_names})})()

        def connections(self, hosts):
            return {h.name: object() for h in hosts}

        def ssh_sources(self, hosts):
            return {h.name: SSH_SOURCE for h in hosts if h.name != "web1"}

    monkeypatch.setattr(P, "Provisioner", lambda *a, **k: pytest.fail("provisioned"))
    with pytest.raises(LabError, match="cannot tell where web1 see"):
        P.provision(Machines(), list(LAB.hosts))
