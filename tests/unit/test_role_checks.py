"""The roles' checks as data: canned raw fact outputs in, exact Checks out. Also the pair
health the drills and status judge by, and each role's settings, services and listeners."""
import re
from pathlib import Path

import pytest
import yaml

from fabfile.core.errors import LabError
from fabfile.core.lab import load_lab, parse_lab
from fabfile.remote import facts as F
from fabfile.roles import ROLES, Check, all_services, host_plan, role_of
from fabfile.roles import loadbalancer as LB
from fabfile.roles import exporters
from fabfile.roles import web as WEB
from fabfile.roles.db import account_hosts
from tests.unit.fakes import fake_tls

PROJECT_DIR = Path(__file__).resolve().parents[2]
LAB = load_lab(PROJECT_DIR / "lab.yml")
VIP = "192.168.56.10"
SECRETS = {"db_password": "fake-Db_pass", "lab_ssh_key": ("PRIVATE\n", "ssh-ed25519 AAAAFAKE halab-lab"), "tls": fake_tls(), "exporter_db_password": "fake-Exp_pass"}
SCALED_EXTRA = {"web2": {"role": "web", "ip": "192.168.56.22"}, "app2": {"role": "app", "ip": "192.168.56.32"}}


def make_lab(extra_hosts=None, settings=None):
    hosts = {h.name: {"role": h.role, "ip": h.ip} for h in LAB.hosts}
    hosts.update(extra_hosts or {})
    data = {"name": LAB.name, "network": str(LAB.network), "vip": LAB.vip, "hosts": hosts}
    if settings:
        data["settings"] = settings
    return parse_lab(yaml.safe_dump(data))


def ip_addr(ip, vip=False):
    lines = ["1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
             f"3: eth1    inet {ip}/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever"]
    if vip:
        lines.append(f"3: eth1    inet {VIP}/24 scope global secondary eth1\\       valid_lft forever")
    return "\n".join(lines)


def ss(*sockets):
    """`ss -Hltn` lines, sshd included."""
    return "\n".join(f"LISTEN 0      4096     {s}      0.0.0.0:*" for s in ("0.0.0.0:22", "[::]:22", *sockets))


def stats_csv(states):
    header = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight"
    rows = [header, "http_in,FRONTEND," + ",".join(["0"] * 15) + ",OPEN,,"]
    rows += [f"web,{name}," + ",".join(["0"] * 15) + f",{status},1,1" for name, status in states.items()]
    rows += ["web,BACKEND," + ",".join(["0"] * 15) + ",UP,1,1", "stats,FRONTEND," + ",".join(["0"] * 15) + ",OPEN,,"]
    return "\n".join(rows)


def notify_line(host, state):
    return (f"2024-05-01T10:00:00.123+00:00 host={host} type=INSTANCE instance=VI_halab state={state} "
            f"priority={150 if host == 'lb1' else 100}")


def grep_rendered(lab, host, path, pattern):
    """What `grep -E pattern path` prints on a host where the role's file is as rendered."""
    steps, extra = host_plan(lab, host, SECRETS)
    wanted = F.unique([*extra, *(f for s in steps for f in s.facts())])
    facts = F.parse_raw(wanted, {"addresses": ip_addr(host.ip), "container": ""})
    conf = next(s for s in steps if getattr(s, "path", "") == path).wanted(facts)
    return "\n".join(line for line in conf.splitlines() if re.search(pattern, line))


def peer_lines_of_rendered_config(lab, host):
    """What `grep -E` of PEER_LINES prints for the keepalived.conf the role renders."""
    return grep_rendered(lab, host, LB.KEEPALIVED_CONF, r"^\s*(unicast_peer|vrrp_strict)|^\s*([0-9]+\.){3}[0-9]+\s*$")


UPSTREAM_PATTERN = r"^\s*server\s+[0-9.]+:[0-9]+"
HEALTHY_APP = '{"status": "ok", "database": true}\n200'


def health_key(app, port=8000):
    return f"health:http://{app.ip}:{port}/api/health"


ACCOUNTS = "sql:SELECT Host FROM mysql.global_priv WHERE User='notes'"
LISTENING = {"loadbalancer": lambda h: ss("0.0.0.0:80", "0.0.0.0:443", f"{h.ip}:8404"), "web": lambda h: ss("0.0.0.0:80", "[::]:80"),
             "app": lambda h: ss(f"{h.ip}:8000"), "db": lambda h: ss(f"{h.ip}:3306")}


FIREWALL_HEALTHY = {"service:halab-firewall": "enabled active", "firewall:loaded": "ccc\nccc"}


def exporter_sockets(host):
    return [f"{address}:{port}" for address, port in exporters.listeners(host)]


def healthy_raw(lab, host, vip=None, state=None):
    role = role_of(host)
    raw = {f"service:{u}": "enabled active" if u in role.services else "disabled inactive" for u in all_services()}
    raw.update(FIREWALL_HEALTHY)
    raw.update({f"service:{u}": "enabled active" for u in exporters.services(host.role)})
    raw["addresses"] = ip_addr(host.ip, vip if vip is not None else host.name == "lb1")
    raw["listeners"] = LISTENING[host.role](host) + "\n" + ss(*exporter_sockets(host))
    for unit in ("halab-hosts", *role.services, *exporters.services(host.role)):
        raw[f"loaded:{unit}"] = "aaa bbb\naaa\nbbb"  # recorded hashes = the files' hashes now
    if host.role == "loadbalancer":
        raw["haproxy_backends"] = stats_csv({w.name: "UP" for w in lab.with_role("web")})
        raw[LB.PEER_LINES.key] = peer_lines_of_rendered_config(lab, host)
        raw["vrrp_state"] = notify_line(host.name, state or ("MASTER" if host.name == "lb1" else "BACKUP"))
    if host.role == "web":
        raw[WEB.UPSTREAM_LINES.key] = grep_rendered(lab, host, WEB.SITE, UPSTREAM_PATTERN)
        for app in lab.with_role("app"):
            raw[health_key(app)] = HEALTHY_APP
    if host.role == "db":
        raw[ACCOUNTS] = "\n".join(h.ip for h in lab.with_role("app"))
    return raw


def checks_of(lab, name, **changes):
    host = lab.host(name)
    role = role_of(host)
    raw = healthy_raw(lab, host)
    if "listeners" in changes:  # the case is about the role's ports: the exporters' stay as healthy
        changes = dict(changes, listeners=changes["listeners"] + "\n" + ss(*exporter_sockets(host)))
    raw.update(changes)
    return role.checks(lab, host, F.parse_raw(role.check_facts(lab, host), raw))


def failed(checks):
    return [c for c in checks if not c.passed]


# --- one host ---------------------------------------------------------------------------

def current(host, *units):
    return [Check(f"{u} runs its current configuration", host, True, "its files are as it last loaded them")
            for u in ("halab-hosts", *units)]


HEALTHY = {
    "lb1": [Check("haproxy active and enabled", "lb1", True, "active, enabled"),
            Check("keepalived active and enabled", "lb1", True, "active, enabled"),
            *current("lb1", "haproxy", "keepalived"),
            Check("port 80 on all addresses", "lb1", True, "listening on all addresses:80"),
            Check("port 443 on all addresses", "lb1", True, "listening on all addresses:443"),
            Check("port 8404 on 192.168.56.11", "lb1", True, "listening on 192.168.56.11:8404"),
            Check("VRRP unicast to the peer", "lb1", True, "unicast_peer 192.168.56.12"),
            Check("HAProxy sees every web backend UP", "lb1", True, "web1 UP")],
    "lb2": [Check("haproxy active and enabled", "lb2", True, "active, enabled"),
            Check("keepalived active and enabled", "lb2", True, "active, enabled"),
            *current("lb2", "haproxy", "keepalived"),
            Check("port 80 on all addresses", "lb2", True, "listening on all addresses:80"),
            Check("port 443 on all addresses", "lb2", True, "listening on all addresses:443"),
            Check("port 8404 on 192.168.56.12", "lb2", True, "listening on 192.168.56.12:8404"),
            Check("VRRP unicast to the peer", "lb2", True, "unicast_peer 192.168.56.11"),
            Check("HAProxy sees every web backend UP", "lb2", True, "web1 UP")],
    "web1": [Check("nginx active and enabled", "web1", True, "active, enabled"),
             *current("web1", "nginx"),
             Check("port 80 on all addresses", "web1", True, "listening on all addresses:80"),
             Check("Nginx upstream is every app host of lab.yml", "web1", True, "192.168.56.31:8000"),
             Check("/api/health from web1, database included", "app1", True, "HTTP 200, database reached")],
    "app1": [Check("halab-app active and enabled", "app1", True, "active, enabled"),
             *current("app1", "halab-app"),
             Check("port 8000 on 192.168.56.31", "app1", True, "listening on 192.168.56.31:8000")],
    "db1": [Check("mariadb active and enabled", "db1", True, "active, enabled"),
            *current("db1", "mariadb"),
            Check("port 3306 on 192.168.56.41", "db1", True, "listening on 192.168.56.41:3306"),
            Check("notes accounts: one per app host, no other", "db1", True, "192.168.56.31")],
}


def with_exporter_checks(name, checks):
    """A host's healthy checks with its exporters': active, current, on the private IP,
    each after the last check of its kind (the order Role.checks gives)."""
    host = LAB.host(name)
    units = exporters.services(host.role)
    extra = {"active and enabled": [Check(f"{u} active and enabled", name, True, "active, enabled") for u in units],
             "runs its current configuration": [Check(f"{u} runs its current configuration", name, True,
                                                      "its files are as it last loaded them") for u in units],
             "port ": [Check(f"port {port} on {ip}", name, True, f"listening on {ip}:{port}")
                       for ip, port in exporters.listeners(host)]}
    out = list(checks)
    for kind, added in extra.items():
        last = max(i for i, c in enumerate(out) if kind in c.name and (kind != "port " or c.name.startswith(kind)))
        out[last + 1:last + 1] = added
    return out


HEALTHY = {name: with_exporter_checks(name, checks) for name, checks in HEALTHY.items()}


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_host_passes_exactly_its_checks(name):
    assert checks_of(LAB, name) == HEALTHY[name]


def test_rendered_keepalived_conf_names_only_the_peer():
    assert peer_lines_of_rendered_config(LAB, LAB.host("lb1")).split() == ["unicast_peer", "{", "192.168.56.12"]


def test_stopped_service_fails_active_and_enabled():
    checks = checks_of(LAB, "app1", **{"service:halab-app": "enabled inactive", "listeners": ss()})
    assert failed(checks) == [
        Check("halab-app active and enabled", "app1", False, "inactive, enabled"),
        Check("port 8000 on 192.168.56.31", "app1", False, "not on 192.168.56.31:8000; sockets: none")]


def test_running_but_disabled_service_fails():
    checks = checks_of(LAB, "web1", **{"service:nginx": "disabled active"})
    assert failed(checks) == [Check("nginx active and enabled", "web1", False, "active, disabled")]


def test_service_of_another_role_running_here_fails():
    checks = checks_of(LAB, "web1", **{"service:mariadb": "enabled active", "service:haproxy": "disabled active"})
    assert failed(checks) == [Check("haproxy not running here", "web1", False, "haproxy runs on a web host"),
                              Check("mariadb not running here", "web1", False, "mariadb runs on a web host")]


def test_service_of_another_role_installed_but_stopped_is_fine():
    assert failed(checks_of(LAB, "db1", **{"service:nginx": "enabled inactive"})) == []


def test_app_bound_to_every_address_fails_twice():
    checks = checks_of(LAB, "app1", listeners=ss("0.0.0.0:8000"))
    assert failed(checks) == [
        Check("port 8000 on 192.168.56.31", "app1", False, "not on 192.168.56.31:8000; sockets: *:8000"),
        Check("port 8000 not on 0.0.0.0", "app1", False, "bound to every address")]


def test_database_on_its_ip_and_on_every_address_fails_the_wildcard_only():
    checks = checks_of(LAB, "db1", listeners=ss("192.168.56.41:3306", "[::]:3306"))
    assert failed(checks) == [Check("port 3306 not on 0.0.0.0", "db1", False, "bound to every address")]


def test_balancer_stats_on_the_wrong_address_fails():
    checks = checks_of(LAB, "lb1", listeners=ss("0.0.0.0:80", "0.0.0.0:443", "0.0.0.0:8404"))
    assert failed(checks) == [
        Check("port 8404 on 192.168.56.11", "lb1", False, "not on 192.168.56.11:8404; sockets: *:8404"),
        Check("port 8404 not on 0.0.0.0", "lb1", False, "bound to every address")]


def test_balancer_without_port_80_fails():
    checks = checks_of(LAB, "lb2", listeners=ss("0.0.0.0:443", "192.168.56.12:8404"))
    assert failed(checks) == [Check("port 80 on all addresses", "lb2", False,
                                    "not on all addresses:80; sockets: none")]


def test_balancer_without_https_fails():
    checks = checks_of(LAB, "lb1", listeners=ss("0.0.0.0:80", "192.168.56.11:8404"))
    assert failed(checks) == [Check("port 443 on all addresses", "lb1", False,
                                    "not on all addresses:443; sockets: none")]


# --- services running their current files -----------------------------------------------------

@pytest.mark.parametrize("name, unit, loaded, detail", [
    ("lb1", "haproxy", "aaa bbb\nccc\nbbb",
     "/etc/haproxy/haproxy.cfg, /etc/haproxy/tls/site.pem or /etc/haproxy/tls/ca.crt changed since it last "
     "loaded them: `invoke provision` reloads it"),
    ("lb1", "haproxy", "aaa bbb\naaa\nccc",
     "/etc/systemd/system/haproxy.service.d/keepalived.conf changed since it last loaded them: "
     "`invoke provision` restarts it"),
    ("lb2", "keepalived", "aaa bbb\nccc\nbbb", "/etc/keepalived/keepalived.conf or /etc/keepalived/notify.sh changed "
                                                "since it last loaded them: `invoke provision` reloads it"),
    ("app1", "halab-app", "aaa bbb\nccc\nddd", "/opt/halab-app/notes_app.py, /opt/halab-app/notes_metrics.py, /opt/halab-app/app.env "
                                                "or /etc/systemd/system/halab-app.service changed since it last loaded "
                                                "them: `invoke provision` restarts it"),
    ("db1", "halab-hosts", "aaa bbb\naaa\nccc", "/etc/halab/hosts or /etc/systemd/system/halab-hosts.service changed "
                                                 "since it last loaded them: `invoke provision` restarts it"),
    ("web1", "nginx", "none none\naaa\nbbb",
     "no record of what it loaded: `invoke provision` (re)starts it and records it"),
    ("web1", "nginx", "", "no record of what it loaded: `invoke provision` (re)starts it and records it"),
])
def test_a_service_running_on_files_it_did_not_load_fails(name, unit, loaded, detail):
    assert failed(checks_of(LAB, name, **{f"loaded:{unit}": loaded})) == [
        Check(f"{unit} runs its current configuration", name, False, detail)]


# --- the web tier's view of the app tier -------------------------------------------------------

def test_rendered_site_names_every_app_host_of_a_scaled_lab():
    lab = make_lab(SCALED_EXTRA)
    assert checks_of(lab, "web2")[-3:] == [
        Check("Nginx upstream is every app host of lab.yml", "web2", True, "192.168.56.31:8000, 192.168.56.32:8000"),
        Check("/api/health from web2, database included", "app1", True, "HTTP 200, database reached"),
        Check("/api/health from web2, database included", "app2", True, "HTTP 200, database reached")]


@pytest.mark.parametrize("answer, words", [
    ('{"status": "error", "database": false, "error": "(2003, \\"Can\'t connect to MySQL server\\")"}\n503',
     "HTTP 503: (2003, \"Can't connect to MySQL server\")"),
    ("curl: (7) Failed to connect to 192.168.56.31 port 8000 after 0 ms: Couldn't connect to server\n000",
     "(7) Failed to connect to 192.168.56.31 port 8000 after 0 ms: Couldn't connect to server"),
    ("", "no answer"),
    ('<html>502 Bad Gateway</html>\n502', "HTTP 502: <html>502 Bad Gateway</html>"),
    ('{"status": "ok", "database": false}\n200', "HTTP 200: {\"status\": \"ok\", \"database\": false}"),
], ids=["database-down", "app-down", "nothing", "not-json", "200-without-database"])
def test_an_app_host_that_does_not_answer_healthy_fails_by_name(answer, words):
    checks = checks_of(LAB, "web1", **{health_key(LAB.host("app1")): answer})
    assert failed(checks) == [Check("/api/health from web1, database included", "app1", False, words)]


@pytest.mark.parametrize("lines, detail", [
    ("", "missing 192.168.56.31:8000"),
    ("    server 192.168.56.31:8000 max_fails=2 fail_timeout=5s;\n    server 192.168.56.39:8000 max_fails=2;",
     "not an app host: 192.168.56.39:8000"),
    ("    server 192.168.56.31:9000 max_fails=2;", "missing 192.168.56.31:8000; not an app host: 192.168.56.31:9000"),
])
def test_nginx_upstream_that_is_not_the_app_tier_fails(lines, detail):
    checks = checks_of(LAB, "web1", **{WEB.UPSTREAM_LINES.key: lines})
    assert failed(checks) == [Check("Nginx upstream is every app host of lab.yml", "web1", False, detail)]


# --- the database's accounts ------------------------------------------------------------------

@pytest.mark.parametrize("hosts, passed, detail", [
    ("192.168.56.31", True, "192.168.56.31"),
    ("", False, "missing for 192.168.56.31"),
    ("192.168.56.31\n192.168.56.99", False, "not an app host: 192.168.56.99"),
    ("192.168.56.99", False, "missing for 192.168.56.31; not an app host: 192.168.56.99"),
], ids=["one-per-app-host", "none", "stale", "wrong-address"])
def test_database_accounts_check(hosts, passed, detail):
    check = checks_of(LAB, "db1", **{ACCOUNTS: hosts})[-1]
    assert check == Check("notes accounts: one per app host, no other", "db1", passed, detail)


def test_database_accounts_of_a_scaled_lab():
    lab = make_lab(SCALED_EXTRA)
    assert checks_of(lab, "db1", **{ACCOUNTS: "192.168.56.32\n192.168.56.31"})[-1] == \
        Check("notes accounts: one per app host, no other", "db1", True, "192.168.56.31, 192.168.56.32")
    assert checks_of(lab, "db1", **{ACCOUNTS: "192.168.56.31"})[-1] == \
        Check("notes accounts: one per app host, no other", "db1", False, "missing for 192.168.56.32")


# --- VRRP unicast ---------------------------------------------------------------------------

@pytest.mark.parametrize("lines, passed, detail", [
    ("    unicast_peer {\n        192.168.56.12", True, "unicast_peer 192.168.56.12"),
    ("", False, "unicast_peer missing"),
    ("    vrrp_strict\n    unicast_peer {\n        192.168.56.12", False, "unicast_peer 192.168.56.12; vrrp_strict is set"),
    ("    unicast_peer {\n        192.168.56.11", False, "unicast_peer 192.168.56.11"),
    ("    unicast_peer {\n        192.168.56.12\n        192.168.56.13", False, "unicast_peer 192.168.56.12, 192.168.56.13"),
], ids=["peer", "no-peer", "vrrp_strict", "self-as-peer", "extra-peer"])
def test_vrrp_unicast_check(lines, passed, detail):
    check = next(c for c in checks_of(LAB, "lb1", **{LB.PEER_LINES.key: lines}) if c.name == "VRRP unicast to the peer")
    assert check == Check("VRRP unicast to the peer", "lb1", passed, detail)


# --- HAProxy's view of the web tier ---------------------------------------------------------

def backends_check(lab, csv):
    return next(c for c in checks_of(lab, "lb1", haproxy_backends=csv) if c.name == "HAProxy sees every web backend UP")


def test_haproxy_backend_down_fails_and_names_it():
    assert backends_check(LAB, stats_csv({"web1": "DOWN"})) == \
        Check("HAProxy sees every web backend UP", "lb1", False, "web1 DOWN")


def test_haproxy_backends_of_a_scaled_lab():
    lab = make_lab(SCALED_EXTRA)
    assert backends_check(lab, stats_csv({"web1": "UP", "web2": "UP"})).passed is True
    assert backends_check(lab, stats_csv({"web1": "UP", "web2": "MAINT"})) == \
        Check("HAProxy sees every web backend UP", "lb1", False, "web1 UP, web2 MAINT")
    assert backends_check(lab, stats_csv({"web1": "UP"})) == \
        Check("HAProxy sees every web backend UP", "lb1", False, "web1 UP, web2 absent")


def test_haproxy_stats_unreachable_fails():
    assert backends_check(LAB, "") == Check("HAProxy sees every web backend UP", "lb1", False, "web1 absent")


def test_haproxy_backend_health_check_states_count_as_down():
    assert backends_check(LAB, stats_csv({"web1": "UP 1/2"})).passed is False


# --- across the pair ------------------------------------------------------------------------

def pair(lab=LAB, holders=("lb1",), states=("MASTER", "BACKUP"), down=(), unreachable=()):
    """{balancer: check facts} of the pair."""
    out = {}
    for host, state in zip(LB.balancers(lab), states):
        if host.name in unreachable:
            continue
        raw = healthy_raw(lab, host, vip=host.name in holders, state=state)
        for unit in down:
            if unit.startswith(host.name + ":"):
                raw[f"service:{unit.split(':')[1]}"] = "enabled inactive"
        out[host.name] = F.parse_raw(ROLES["loadbalancer"].check_facts(lab, host), raw)
    return out


def lab_checks(lab=LAB, **kw):
    return ROLES["loadbalancer"].lab_checks(lab, pair(lab, **kw))


def test_lab_checks_healthy_pair():
    assert lab_checks() == [
        Check("VIP held by exactly one balancer", "lb1", True, "192.168.56.10 on lb1"),
        Check("keepalived peers agree: one MASTER, one BACKUP", "-", True, "lb1 MASTER, lb2 BACKUP"),
        Check("VIP on the MASTER while both are healthy", "lb1", True, "192.168.56.10 on lb1, MASTER is lb1")]


def test_lab_checks_vip_on_nobody():
    assert lab_checks(holders=(), states=("BACKUP", "BACKUP")) == [
        Check("VIP held by exactly one balancer", "-", False, "192.168.56.10 on no balancer"),
        Check("keepalived peers agree: one MASTER, one BACKUP", "-", False, "lb1 BACKUP, lb2 BACKUP"),
        Check("VIP on the MASTER while both are healthy", "lb1", False, "192.168.56.10 on nobody, MASTER is lb1")]


def test_lab_checks_split_brain():
    assert lab_checks(holders=("lb1", "lb2"), states=("MASTER", "MASTER")) == [
        Check("VIP held by exactly one balancer", "lb1,lb2", False, "192.168.56.10 on lb1, lb2"),
        Check("keepalived peers agree: one MASTER, one BACKUP", "-", False, "lb1 MASTER, lb2 MASTER"),
        Check("VIP on the MASTER while both are healthy", "lb1", False,
              "192.168.56.10 on lb1, lb2, MASTER is lb1")]


def test_lab_checks_vip_on_the_backup_while_both_healthy_fails_preempt():
    checks = lab_checks(holders=("lb2",), states=("BACKUP", "MASTER"))
    assert [c.passed for c in checks] == [True, True, False]
    assert checks[2] == Check("VIP on the MASTER while both are healthy", "lb1", False,
                              "192.168.56.10 on lb2, MASTER is lb1")


def test_lab_checks_without_preempt_do_not_ask_for_the_master():
    lab = make_lab(settings={"loadbalancer": {"preempt": False}})
    checks = lab_checks(lab, holders=("lb2",), states=("BACKUP", "MASTER"))
    assert [(c.name, c.passed) for c in checks] == [("VIP held by exactly one balancer", True),
                                                    ("keepalived peers agree: one MASTER, one BACKUP", True)]


def test_lab_checks_after_a_failover_skip_the_preempt_check():
    checks = lab_checks(holders=("lb2",), states=("FAULT", "MASTER"), down=("lb1:haproxy",))
    assert checks == [
        Check("VIP held by exactly one balancer", "lb2", True, "192.168.56.10 on lb2"),
        Check("keepalived peers agree: one MASTER, one BACKUP", "-", False, "lb1 FAULT, lb2 MASTER")]


def test_lab_checks_with_an_unreachable_balancer():
    checks = lab_checks(holders=("lb1",), unreachable=("lb2",))
    assert checks == [
        Check("VIP held by exactly one balancer", "lb1", True, "192.168.56.10 on lb1"),
        Check("keepalived peers agree: one MASTER, one BACKUP", "-", False, "lb1 MASTER")]


def test_other_roles_have_no_lab_checks():
    facts = pair()
    assert [ROLES[r].lab_checks(LAB, facts) for r in ("web", "app", "db")] == [[], [], []]


# --- pair_health (drills, status) -----------------------------------------------------------

def pair_state(holders=("lb1",), states=("MASTER", "BACKUP"), down=(), unreachable=()):
    out = {}
    for host, state in zip(LB.balancers(LAB), states):
        if host.name in unreachable:
            continue
        raw = {"addresses": ip_addr(host.ip, host.name in holders), "vrrp_state": notify_line(host.name, state),
               "service:haproxy": "enabled active", "service:keepalived": "enabled active"}
        for unit in down:
            if unit.startswith(host.name + ":"):
                raw[f"service:{unit.split(':')[1]}"] = "enabled failed"
        out[host.name] = F.parse_raw(LB.pair_facts(), raw)
    return out


SETTINGS = ROLES["loadbalancer"].settings(LAB)


@pytest.mark.parametrize("kw, expected", [
    ({}, (True, ["lb1"], "one MASTER, one BACKUP, VIP on lb1")),
    ({"holders": ("lb2",), "states": ("BACKUP", "MASTER")},
     (False, ["lb2"], "VIP on lb2, waiting for lb1 to take it back (preempt)")),
    ({"down": ("lb1:haproxy",), "holders": ("lb2",), "states": ("FAULT", "MASTER")},
     (False, ["lb2"], "lb1: haproxy not active")),
    ({"down": ("lb2:haproxy", "lb2:keepalived")}, (False, ["lb1"], "lb2: haproxy and keepalived not active")),
    ({"unreachable": ("lb2",)}, (False, ["lb1"], "lb2: not reachable")),
    ({"unreachable": ("lb1",), "holders": ("lb2",)}, (False, ["lb2"], "lb1: not reachable")),
    ({"holders": ("lb1", "lb2"), "states": ("MASTER", "MASTER")},
     (False, ["lb1", "lb2"], "VIP on ['lb1', 'lb2'], states ['MASTER', 'MASTER']")),
    ({"holders": (), "states": ("BACKUP", "BACKUP")}, (False, [], "VIP on nobody, states ['BACKUP', 'BACKUP']")),
    ({"holders": ("lb1",), "states": ("MASTER", "MASTER")},
     (False, ["lb1"], "VIP on ['lb1'], states ['MASTER', 'MASTER']")),
], ids=["healthy", "preempt-waiting", "haproxy-down", "both-services-down", "lb2-unreachable",
        "lb1-unreachable", "split-brain", "nobody", "two-masters"])
def test_pair_health(kw, expected):
    assert LB.pair_health(LAB, SETTINGS, pair_state(**kw)) == expected


def test_pair_health_without_preempt_accepts_the_backup_holding_the_vip():
    settings = dict(SETTINGS, preempt=False)
    assert LB.pair_health(LAB, settings, pair_state(holders=("lb2",), states=("BACKUP", "MASTER"))) == \
        (True, ["lb2"], "one MASTER, one BACKUP, VIP on lb2")


def test_vip_holders_ignore_non_balancers_and_missing_hosts():
    facts = pair_state(holders=("lb2",), states=("BACKUP", "MASTER"), unreachable=("lb1",))
    facts["web1"] = F.parse_raw([F.addresses()], {"addresses": ip_addr("192.168.56.21", vip=True)})
    assert LB.vip_holders(LAB, facts) == ["lb2"]


def test_preferred_master_and_peers():
    assert LB.preferred_master(LAB).name == "lb1"
    assert LB.peer_of(LAB, LAB.host("lb1")).name == "lb2"
    assert LB.peer_of(LAB, LAB.host("lb2")).name == "lb1"
    assert [f.key for f in LB.pair_facts()] == ["addresses", "service:haproxy", "service:keepalived", "vrrp_state"]


# --- settings, services, listeners -------------------------------------------------------------

def test_services_of_every_role():
    assert {name: role.services for name, role in ROLES.items()} == {
        "loadbalancer": ("haproxy", "keepalived"), "web": ("nginx",), "app": ("halab-app",), "db": ("mariadb",),
        "monitor": ("prometheus", "prometheus-alertmanager")}
    assert all_services() == ["halab-app", "haproxy", "keepalived", "mariadb", "nginx", "prometheus",
                              "prometheus-alertmanager"]


def test_listeners_of_every_role_with_the_defaults():
    got = {h.name: role_of(h).listeners(h, role_of(h).settings(LAB)) for h in LAB.hosts}
    assert got == {"lb1": [("*", 80), ("*", 443), ("192.168.56.11", 8404)],
                   "lb2": [("*", 80), ("*", 443), ("192.168.56.12", 8404)],
                   "web1": [("*", 80)], "app1": [("192.168.56.31", 8000)], "db1": [("192.168.56.41", 3306)]}


OVERRIDES = {"loadbalancer": {"stats_port": 9404, "preempt": False}, "app": {"app_port": 9000, "workers": 5},
             "db": {"db_port": 3307, "db_user": "notes2", "db_name": "notes2"}, "web": {"upstream_keepalive": 8}}


def test_settings_follow_lab_yml_overrides_and_shared_settings():
    lab = make_lab(settings=OVERRIDES)
    web, app, db, lb = (ROLES[r].settings(lab) for r in ("web", "app", "db", "loadbalancer"))
    assert web == {"proxy_connect_timeout_s": 2, "proxy_read_timeout_s": 30, "upstream_max_fails": 2,
                   "upstream_fail_timeout_s": 5, "upstream_keepalive": 8, "app_port": 9000, "tls": "terminate"}
    assert (app["app_port"], app["workers"], app["db_port"], app["db_name"], app["db_user"]) == \
        (9000, 5, 3307, "notes2", "notes2")
    assert (db["db_port"], db["buffer_pool_mb"]) == (3307, 256)
    assert (lb["stats_port"], lb["preempt"], lb["vrid"]) == (9404, False, 51)
    got = {h.name: role_of(h).listeners(h, role_of(h).settings(lab)) for h in lab.hosts}
    assert got["lb1"] == [("*", 80), ("*", 443), ("192.168.56.11", 9404)]
    assert got["app1"] == [("192.168.56.31", 9000)]
    assert got["db1"] == [("192.168.56.41", 3307)]
    assert account_hosts(db).key == "sql:SELECT Host FROM mysql.global_priv WHERE User='notes2'"
    backends = next(f for f in ROLES["loadbalancer"].check_facts(lab, lab.host("lb1")) if f.key == "haproxy_backends")
    assert backends.command == "curl -s --max-time 2 'http://192.168.56.11:9404/stats;csv'"


def test_checks_follow_an_overridden_port():
    lab = make_lab(settings=OVERRIDES)
    host = lab.host("app1")
    role = role_of(host)
    facts = F.parse_raw(role.check_facts(lab, host), dict(healthy_raw(lab, host), listeners=ss("192.168.56.31:8000", *exporter_sockets(host))))
    assert failed(role.checks(lab, host, facts)) == [
        Check("port 9000 on 192.168.56.31", "app1", False, "not on 192.168.56.31:9000; sockets: none")]


def test_settings_are_a_fresh_dict_every_time():
    settings = ROLES["loadbalancer"].settings(LAB)
    settings["stats_port"] = 1
    assert ROLES["loadbalancer"].settings(LAB)["stats_port"] == 8404
    assert LB.DEFAULTS["stats_port"] == 8404


def test_unknown_setting_is_refused_with_the_known_ones():
    lab = make_lab(settings={"web": {"worker_count": 2}})
    with pytest.raises(LabError) as raised:
        ROLES["web"].settings(lab)
    assert raised.value.problem == "lab.yml: settings.web: unknown setting worker_count"
    assert raised.value.fix == ("use one of: proxy_connect_timeout_s, proxy_read_timeout_s, upstream_fail_timeout_s, "
                                "upstream_keepalive, upstream_max_fails")


@pytest.mark.parametrize("role, key", [("web", "app_port"), ("app", "db_port"), ("app", "db_user")])
def test_a_setting_owned_by_another_role_is_refused(role, key):
    lab = make_lab(settings={role: {key: 1}})
    with pytest.raises(LabError) as raised:
        ROLES[role].settings(lab)
    assert raised.value.problem == f"lab.yml: settings.{role}: {key} belongs to another role"
    assert raised.value.fix == "set it under that role (settings.db for db_*, settings.app for app_port)"
