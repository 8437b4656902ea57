"""Issue "A lab that always converges", items 5 and 6, as data.

Item 5: a host removed from lab.yml has its database account dropped by the next run, and
the run after changes nothing (the grants file depends on lab.yml alone; the accounts are
compared with lab.yml's app hosts through a fact).

Item 6: verify checks every app host from every web host (Nginx's upstream, /api/health
with the database), names the one that fails, and proves each service runs the files it
has, all in one facts round trip per host."""
import base64
import hashlib
import json
from types import SimpleNamespace

import pytest
import yaml

from fabfile.checks import verify as V
from fabfile.checks.http import Reply
from fabfile.converge.steps import Service, loaded_files
from fabfile.roles import exporters
from fabfile.core.lab import parse_lab
from fabfile.remote import facts as F
from fabfile.roles import host_plan, role_of
from fabfile.roles.db import GRANTS, account_hosts, wanted_account_hosts
from fabfile.roles.web import UPSTREAM_LINES, app_health
from tests.unit.fakes import fake_tls

SECRETS = {"db_password": "fake-Db_pass", "lab_ssh_key": ("PRIVATE\n", "ssh-ed25519 AAAAFAKE halab-lab"), "tls": fake_tls(), "exporter_db_password": "fake-Exp_pass"}
BASE = {"lb1": ("loadbalancer", "192.168.56.11"), "lb2": ("loadbalancer", "192.168.56.12"),
        "web1": ("web", "192.168.56.21"), "app1": ("app", "192.168.56.31"), "db1": ("db", "192.168.56.41")}
SCALED = dict(BASE, web2=("web", "192.168.56.22"), app2=("app", "192.168.56.32"))


def make_lab(hosts):
    return parse_lab(yaml.safe_dump({"name": "halab", "network": "192.168.56.0/24", "vip": "192.168.56.10",
                                     "hosts": {n: {"role": r, "ip": ip} for n, (r, ip) in hosts.items()}}))


LAB, SCALED_LAB = make_lab(BASE), make_lab(SCALED)
ACCOUNTS = account_hosts({"db_user": "notes"})


# --- item 5: the database's accounts follow lab.yml ---------------------------------------------

def grants_steps(lab):
    """db1's grants file and the command that runs it, as provision builds them."""
    steps, _ = host_plan(lab, lab.host("db1"), SECRETS)
    return [s for s in steps if s.name in (f"file {GRANTS}", "database and grants")]


def written_by(lab):
    """The raw `file:` fact of a grants file that `lab`'s provision wrote."""
    template = grants_steps(lab)[0]
    return f"{hashlib.sha256(template.wanted({}).encode()).hexdigest()}\n600 root root"


def planned(lab, grants_file, accounts):
    steps = grants_steps(lab)
    facts = F.parse_raw(F.unique(f for s in steps for f in s.facts()),
                        {F.file(GRANTS).key: grants_file, ACCOUNTS.key: accounts})
    names, changed = [], set()
    for step in steps:
        change = step.plan(facts, changed)
        if change:
            names.append(step.name)
            changed.add(change.path)
    return names


def test_the_accounts_fact_lists_the_hosts_of_the_app_users_accounts():
    assert ACCOUNTS.key == "sql:SELECT Host FROM mysql.global_priv WHERE User='notes'"
    assert ACCOUNTS.command == "mariadb -N -e 'SELECT Host FROM mysql.global_priv WHERE User='\"'\"'notes'\"'\"''"
    assert ACCOUNTS.parse("192.168.56.32\n192.168.56.31\n") == ("192.168.56.32", "192.168.56.31")
    assert wanted_account_hosts(SCALED_LAB) == ["192.168.56.31", "192.168.56.32"]


def test_removing_an_app_host_drops_its_account_and_the_second_run_changes_nothing():
    two = "192.168.56.31\n192.168.56.32"
    assert planned(SCALED_LAB, written_by(SCALED_LAB), two) == []  # converged with app2
    # app2 leaves lab.yml: its CREATE lines go, the file changes and runs once...
    assert planned(LAB, written_by(SCALED_LAB), two) == [f"file {GRANTS}", "database and grants"]
    # ...and drops app2's account; then the file and the accounts agree with lab.yml.
    assert planned(LAB, written_by(LAB), "192.168.56.31") == []


def test_a_stale_account_alone_runs_the_grants_without_rewriting_them():
    assert planned(LAB, written_by(LAB), "192.168.56.31\n192.168.56.32") == ["database and grants"]
    assert planned(LAB, written_by(LAB), "192.168.56.32\n192.168.56.31\n") == ["database and grants"]
    assert planned(LAB, written_by(LAB), "") == ["database and grants"]  # MariaDB down or no account


def test_the_grants_file_drops_what_lab_yml_no_longer_has_whatever_the_facts_say():
    """Rendered from lab.yml alone: the same text before and after the drop, so the run
    after the drop finds nothing to write."""
    sql = grants_steps(LAB)[0].wanted({})
    assert "Host NOT IN ('192.168.56.31')) DO" in sql
    assert "EXECUTE IMMEDIATE CONCAT('DROP USER ', QUOTE('notes'), '@', QUOTE(account.Host));" in sql
    assert "DROP DATABASE" not in sql and "Db = 'test'" not in sql and "User = 'root'" not in sql
    assert "DELETE FROM mysql.global_priv WHERE User = '';" in sql  # anonymous accounts: still removed


# --- item 6: verify checks every app host from every web host -----------------------------------

def test_every_service_step_of_a_host_is_checked_on_the_facts_provision_plans_from():
    """The checks build the host's steps without its secrets; the loaded:<unit> facts they
    ask must be the very ones the Service steps plan from."""
    for host in SCALED_LAB.hosts:
        steps, _ = host_plan(SCALED_LAB, host, SECRETS)
        # The firewall's unit is proven by verify's firewall checks (its table as loaded).
        planned_from = [loaded_files(s.unit, s.reload_on, s.restart_on)[0] for s in steps
                        if isinstance(s, Service) and s.unit != "halab-firewall"]
        asked = [f for f in role_of(host).check_facts(SCALED_LAB, host) if f.key.startswith("loaded:")]
        assert asked == planned_from and "loaded:halab-hosts" in [f.key for f in asked]


def test_a_web_host_asks_every_app_host_on_its_private_ip_with_short_timeouts():
    web1 = SCALED_LAB.host("web1")
    keys = [f.key for f in role_of(web1).check_facts(SCALED_LAB, web1)]
    assert UPSTREAM_LINES.key in keys
    assert [k for k in keys if k.startswith("health:")] == [
        "health:http://192.168.56.31:8000/api/health", "health:http://192.168.56.32:8000/api/health"]
    command = app_health(SCALED_LAB.host("app2"), 8000).command
    assert "--connect-timeout 1 --max-time 3" in command and command.endswith("/api/health 2>&1")


HEALTHY = '{"app": "%s", "database": true}\n200'
DENIED = ('{"app": "app2", "database": false, "error": "cannot connect to 192.168.56.41:3306: MySQL error 1045: '
          'Access denied for user \'notes\'@\'192.168.56.32\' (using password: YES)"}\n503')


class FakeConnection:
    """One host answering the facts script in its format, from canned raw outputs."""

    def __init__(self, facts, raw):
        self.facts, self.raw, self.calls = facts, raw, 0

    def run(self, command, **kw):
        self.calls += 1
        out = "".join(f"{f.key}\t{base64.b64encode(self.raw.get(f.key, '').encode()).decode()}\n"
                      for f in F.unique(self.facts))
        return SimpleNamespace(stdout=out, stderr="", exited=0)


def web_raw(lab, web, app2_answer):
    raw = {f"service:{u}": "enabled active" if u == "nginx" else "disabled inactive"
           for u in ("haproxy", "keepalived", "nginx", "halab-app", "mariadb")}
    raw.update({f"service:{u}": "enabled active" for u in exporters.services("web")})
    raw.update({f"loaded:{u}": "a b\na\nb" for u in exporters.services("web")})
    raw.update({"listeners": "\n".join(f"LISTEN 0 511 {s} 0.0.0.0:*" for s in
                                       ["0.0.0.0:80", *(f"{a}:{p}" for a, p in exporters.listeners(web))]),
                "loaded:halab-hosts": "a b\na\nb",
                "service:halab-firewall": "enabled active", "firewall:loaded": "c\nc",
                "loaded:nginx": "a b\na\nb",
                UPSTREAM_LINES.key: "\n".join(f"    server {a.ip}:8000 max_fails=2 fail_timeout=5s;"
                                              for a in lab.with_role("app"))})
    raw[app_health(lab.host("app1"), 8000).key] = HEALTHY % "app1"
    raw[app_health(lab.host("app2"), 8000).key] = app2_answer
    return raw


def test_an_app_host_with_a_wrong_database_password_is_named_from_every_web_host():
    checks = []
    for name in ("web1", "web2"):
        web = SCALED_LAB.host(name)
        connection = FakeConnection(V.host_facts(SCALED_LAB, web), web_raw(SCALED_LAB, web, DENIED))
        produced, _ = V.host_checks(SCALED_LAB, web, connection)
        assert connection.calls == 1  # every fact of the host in one round trip
        checks += produced
    failed = [(c.host, c.name) for c in checks if not c.passed]
    assert failed == [("app2", "/api/health from web1, database included"),
                      ("app2", "/api/health from web2, database included")]
    assert all("Access denied for user 'notes'@'192.168.56.32'" in c.detail for c in checks if not c.passed)
    assert V.Verdict(checks, 0.4).summary().endswith(
        "app2: /api/health from web1, database included; app2: /api/health from web2, database included")


def test_a_healthy_app_tier_passes_from_every_web_host():
    web = SCALED_LAB.host("web2")
    connection = FakeConnection(V.host_facts(SCALED_LAB, web), web_raw(SCALED_LAB, web, HEALTHY % "app2"))
    checks, _ = V.host_checks(SCALED_LAB, web, connection)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]


def test_the_note_check_blames_the_app_host_that_answered_the_failed_read(monkeypatch):
    def request(ip, method, path, payload=None, timeout=2.0, port=None, tls=None):
        headers = {"x-lb": "lb1", "x-served-by": "web1"}
        if path == "/":
            return Reply(200, headers, b"<html></html>")
        if method == "POST":
            return Reply(201, dict(headers, **{"x-app": "app1"}),
                         json.dumps({"id": 7, "app": "app1", "text": payload["text"]}).encode())
        return Reply(503, dict(headers, **{"x-app": "app2"}), b'{"error": "database unavailable"}')

    monkeypatch.setattr(V, "request", request)
    note = V.outside_checks(LAB, lambda note_id: None, "tls")[1]
    assert (note.host, note.passed) == ("app2", False)
    assert note.detail == "id 7 by app1, read back 503 by app2, NOT in the table on the database host"


def test_a_failed_write_names_the_app_host_that_answered_it(monkeypatch):
    def request(ip, method, path, payload=None, timeout=2.0, port=None, tls=None):
        headers = {"x-lb": "lb1", "x-served-by": "web1"}
        if path == "/":
            return Reply(200, headers, b"<html></html>")
        return Reply(503, dict(headers, **{"x-app": "app2"}), b'{"error": "database unavailable"}')

    monkeypatch.setattr(V, "request", request)
    note = V.outside_checks(LAB, lambda note_id: None, "tls")[1]
    assert (note.host, note.passed) == ("app2", False) and note.detail.startswith("POST answered 503")
