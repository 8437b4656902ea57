"""Monitoring as data: the exporters every host gets, the monitoring server's files rendered
from lab.yml, its checks from canned Prometheus answers, the firewall paths it needs, the
drill's alert timings and `invoke monitor`'s refusal without a monitoring server."""
import json
from pathlib import Path

import pytest
import yaml

from fabfile.checks import monitor as M
from fabfile.converge.steps import Packages, Service, Template
from fabfile.core.errors import LabError
from fabfile.core.lab import load_lab, parse_lab
from fabfile.drills.alerts import firing_spans
from fabfile.remote import facts as F
from fabfile.roles import Inbound, exporters, host_plan, role_of
from fabfile.roles import monitor as MON
from fabfile.views.monitor import render_text

PROJECT_DIR = Path(__file__).resolve().parents[2]
MONITORED = load_lab(PROJECT_DIR / "labs" / "monitored.yml")
DEFAULT = load_lab(PROJECT_DIR / "lab.yml")
SECRETS = {"db_password": "fake-Db_pass", "exporter_db_password": "fake-Exp_pass",
           "lab_ssh_key": ("PRIVATE\n", "ssh-ed25519 AAAAFAKE halab-lab")}


def scaled(lab):
    """The monitored lab with a web2 and an app2 added to lab.yml."""
    data = yaml.safe_load(lab.path.read_text())
    data["hosts"]["web2"] = {"role": "web", "ip": "192.168.58.22"}
    data["hosts"]["app2"] = {"role": "app", "ip": "192.168.58.32"}
    return parse_lab(yaml.safe_dump(data))


def rendered(lab, host_name, path):
    host = lab.host(host_name)
    steps, _ = host_plan(lab, host, SECRETS)
    step = next(s for s in steps if isinstance(s, Template) and s.path == path)
    return step.wanted({})


# --- exporters ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, packages", [
    ("lb1", "packages haproxy keepalived curl prometheus-node-exporter"),
    ("web1", "packages nginx curl prometheus-node-exporter prometheus-nginx-exporter"),
    ("app1", "packages gunicorn python3-pymysql default-mysql-client prometheus-node-exporter "
             "python3-prometheus-client"),
    ("db1", "packages default-mysql-server prometheus-node-exporter prometheus-mysqld-exporter"),
    ("mon1", "packages prometheus prometheus-alertmanager curl prometheus-node-exporter")])
def test_exporters_and_the_firewall_join_the_hosts_one_package_step(name, packages):
    steps, _ = host_plan(MONITORED, MONITORED.host(name), SECRETS)
    assert [s.name for s in steps if isinstance(s, Packages)] == [packages + " nftables"]


def test_every_exporter_listens_on_the_private_ip_only():
    for host in MONITORED.hosts:
        steps, _ = host_plan(MONITORED, host, SECRETS)
        defaults = [s for s in steps if getattr(s, "path", "").startswith("/etc/default/prometheus-")
                    and "exporter" in s.path]
        assert defaults, host.name
        for step in defaults:
            assert f"listen-address={host.ip}:" in step.content, (host.name, step.path)
            assert "0.0.0.0" not in step.content


def test_exporter_services_restart_when_their_arguments_change():
    steps, _ = host_plan(MONITORED, MONITORED.host("db1"), SECRETS)
    services = {s.unit: s for s in steps if isinstance(s, Service)}
    assert services["prometheus-mysqld-exporter"].restart_on == ("/etc/default/prometheus-mysqld-exporter",)
    assert services["prometheus-node-exporter"].restart_on == ("/etc/default/prometheus-node-exporter",)


def test_mysqld_exporter_account_is_local_least_privilege_and_its_password_secret():
    steps, _ = host_plan(MONITORED, MONITORED.host("db1"), SECRETS)
    grants = next(s for s in steps if getattr(s, "path", "") == exporters.MYSQLD_GRANTS)
    my_cnf = next(s for s in steps if getattr(s, "path", "") == exporters.MYSQLD_MY_CNF)
    assert grants.secret and grants.mode == "600" and my_cnf.secret and my_cnf.mode == "600"
    assert my_cnf.owner == "prometheus" and "password=fake-Exp_pass" in my_cnf.content
    grant_lines = [line for line in grants.content.splitlines() if line.startswith("GRANT")]
    assert grant_lines == ["GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'halab_exporter'@'localhost';",
                           "GRANT SELECT ON performance_schema.* TO 'halab_exporter'@'localhost';"]


def test_exporter_account_runs_only_when_missing_or_changed():
    steps, _ = host_plan(MONITORED, MONITORED.host("db1"), SECRETS)
    account = next(s for s in steps if s.name == "exporter account")
    fact = exporters.exporter_account_hosts()
    present = F.parse_raw([fact], {fact.key: "localhost"})
    assert account.plan(present, set()) is None
    assert account.plan(F.parse_raw([fact], {fact.key: ""}), set()) is not None
    assert account.plan(present, {exporters.MYSQLD_GRANTS}) is not None


def test_inbound_opens_exporters_to_the_monitoring_server_only():
    settings_of = MON.settings_of(MONITORED)
    assert exporters.inbound(MONITORED, MONITORED.host("lb1"), settings_of) == [
        Inbound("node exporter", "tcp", 9100, ("192.168.58.51",)),
        Inbound("HAProxy metrics", "tcp", 8404, ("192.168.58.51",))]
    assert exporters.inbound(MONITORED, MONITORED.host("db1"), settings_of) == [
        Inbound("node exporter", "tcp", 9100, ("192.168.58.51",)),
        Inbound("MySQL exporter", "tcp", 9104, ("192.168.58.51",))]
    assert exporters.inbound(DEFAULT, DEFAULT.host("lb1"), MON.settings_of(DEFAULT)) == []  # nobody scrapes


def test_monitor_role_opens_its_pages_to_the_lab_machine_only():
    mon = MONITORED.host("mon1")
    role = role_of(mon)
    assert role.inbound(MONITORED, mon, role.settings(MONITORED)) == [
        Inbound("Prometheus", "tcp", 9090, ("192.168.58.1",)), Inbound("Alertmanager", "tcp", 9093, ("192.168.58.1",))]


# --- the monitoring server's files --------------------------------------------------------

def test_targets_follow_lab_yml():
    lab = scaled(MONITORED)
    config = yaml.safe_load(rendered(lab, "mon1", MON.PROMETHEUS_YML))
    jobs = {job["job_name"]: [(c["labels"]["host"], c["targets"][0]) for c in job["static_configs"]]
            for job in config["scrape_configs"]}
    assert sorted(jobs) == ["app", "haproxy", "mysqld", "nginx", "node"]
    assert sorted(h for h, _ in jobs["node"]) == ["app1", "app2", "db1", "lb1", "lb2", "mon1", "web1", "web2"]
    assert sorted(jobs["nginx"]) == [("web1", "192.168.58.21:9113"), ("web2", "192.168.58.22:9113")]
    assert sorted(jobs["app"]) == [("app1", "192.168.58.31:8000"), ("app2", "192.168.58.32:8000")]
    assert sorted(jobs["haproxy"]) == [("lb1", "192.168.58.11:8404"), ("lb2", "192.168.58.12:8404")]
    assert config["global"]["scrape_interval"] == "1s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["192.168.58.51:9093"]


def test_rules_name_every_alert_and_the_preferred_master():
    rules = yaml.safe_load(rendered(MONITORED, "mon1", MON.RULES))
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert sorted(by_name) == sorted(MON.ALERT_NAMES)
    assert by_name["VipMoved"]["expr"] == 'halab_vrrp_master{host!="lb1"} == 1'
    assert "{{ $labels.host }}" in by_name["HostDown"]["annotations"]["summary"]


def test_configs_are_checked_by_promtool_and_amtool_before_going_live():
    steps, _ = host_plan(MONITORED, MONITORED.host("mon1"), SECRETS)
    validators = {s.path: s.validate for s in steps if isinstance(s, Template) and s.validate}
    assert validators == {MON.RULES: "promtool check rules {path}",
                          MON.PROMETHEUS_YML: "promtool check config {path}",
                          MON.ALERTMANAGER_YML: "amtool check-config {path}"}
    names = [s.name for s in steps]
    assert names.index(f"file {MON.RULES}") < names.index(f"file {MON.PROMETHEUS_YML}")


def test_a_broken_rule_file_is_checked_then_removed_never_moved_into_place():
    steps, _ = host_plan(MONITORED, MONITORED.host("mon1"), SECRETS)
    rules = next(s for s in steps if getattr(s, "path", "") == MON.RULES)
    change = rules.plan(F.parse_raw(rules.facts(), {}), set())
    check, move = change.actions[1], change.actions[2]
    assert check.command == f"promtool check rules {MON.RULES}.halab-new"
    assert check.cleanup == f"rm -f {MON.RULES}.halab-new" and "left as it was" in check.failure
    assert move.command == f"mv -f {MON.RULES}.halab-new {MON.RULES}"


def test_daemons_listen_on_the_private_ip_without_a_cluster_port():
    prometheus = rendered(MONITORED, "mon1", MON.PROMETHEUS_DEFAULTS)
    alertmanager = rendered(MONITORED, "mon1", MON.ALERTMANAGER_DEFAULTS)
    assert "--web.listen-address=192.168.58.51:9090" in prometheus
    assert "--web.listen-address=192.168.58.51:9093" in alertmanager
    assert '--cluster.listen-address="' in alertmanager


def test_console_page_asks_every_saved_query():
    page = rendered(MONITORED, "mon1", MON.CONSOLE)
    for query in MON.SAVED_QUERIES:
        assert f"range query {json.dumps(query.expr)}" in page.replace("\\u003c", "<").replace("\\u003e", ">")
        assert f'id="{query.name}"' in page


def test_one_monitoring_server_at_most():
    data = yaml.safe_load(MONITORED.path.read_text())
    data["hosts"]["mon2"] = {"role": "monitor", "ip": "192.168.58.52"}
    with pytest.raises(LabError, match="at most one"):
        parse_lab(yaml.safe_dump(data))


# --- verify's checks from Prometheus' answers ---------------------------------------------

def targets_json(health_of):
    active = [{"labels": {"job": job, "host": host.name, "instance": address},
               "health": health_of.get((job, host.name), "up"), "lastError": ""}
              for job, host, address in exporters.scrape_targets(MONITORED, MON.settings_of(MONITORED))]
    return json.dumps({"status": "success", "data": {"activeTargets": active}})


RULES_JSON = json.dumps({"status": "success", "data": {"groups": [
    {"name": "halab", "rules": [{"name": n} for n in MON.ALERT_NAMES]}]}})


def monitor_checks(targets, rules=RULES_JSON):
    mon = MONITORED.host("mon1")
    role = role_of(mon)
    raw = {MON.targets_fact(mon, 9090).key: targets, MON.rules_fact(mon, 9090).key: rules}
    checks = role.checks(MONITORED, mon, F.parse_raw(role.check_facts(MONITORED, mon), raw))
    return {c.name: c for c in checks if c.name in ("every scrape target up", "the lab's alert rules loaded")}


def test_verify_passes_when_every_target_is_up_and_the_rules_loaded():
    checks = monitor_checks(targets_json({}))
    assert checks["every scrape target up"].passed
    assert checks["every scrape target up"].detail == "11 targets up"  # 6 node, 2 HAProxy, Nginx, MySQL, the app
    assert checks["the lab's alert rules loaded"].passed


def test_verify_names_the_target_down_and_the_missing_rule():
    rules = json.dumps({"status": "success", "data": {"groups": [{"name": "halab", "rules": [{"name": "HostDown"}]}]}})
    checks = monitor_checks(targets_json({("mysqld", "db1"): "down"}), rules)
    assert not checks["every scrape target up"].passed
    assert checks["every scrape target up"].detail == "db1 mysqld: down"
    assert "VipMoved" in checks["the lab's alert rules loaded"].detail


def test_verify_says_when_prometheus_does_not_answer():
    checks = monitor_checks("curl: (7) Failed to connect", "curl: (7) Failed to connect")
    assert checks["every scrape target up"].detail == "Prometheus did not answer"
    assert not checks["the lab's alert rules loaded"].passed


# --- invoke monitor and the drill's alerts ------------------------------------------------

def test_monitor_refuses_a_lab_without_a_monitoring_server():
    with pytest.raises(LabError) as exc:
        M.Prometheus.of(DEFAULT)
    assert "add mon1: {role: monitor, ip: ...} to lab.yml; see labs/monitored.yml" in exc.value.fix


def test_alert_spans_are_timed_from_the_fault():
    fault = 1000.0
    series = [({"alertname": "VipMoved", "host": "lb2"}, [(1001.0, 1), (1001.25, 1), (1004.5, 1)]),
              ({"alertname": "HostDown", "host": "web1"}, [(990.0, 1)])]  # before the fault: not this drill's
    assert firing_spans(series, fault) == [
        {"alertname": "VipMoved", "host": "lb2", "job": None, "state": "resolved", "fired_s": 1.0,
         "resolved_s": 4.75}]


def test_text_report_lists_targets_alerts_and_queries():
    report = {"prometheus": "http://192.168.58.51:9090/", "alertmanager": "http://192.168.58.51:9093/",
              "console": "http://192.168.58.51:9090/consoles/halab.html",
              "targets": [{"job": "node", "host": "lb1", "instance": "192.168.58.11:9100", "health": "up",
                           "last_error": ""}],
              "alerts": [{"alertname": "VipMoved", "state": "firing", "host": "lb2", "active_at": "t",
                          "summary": "the VIP moved to lb2"}],
              "queries": [{"name": "rps_per_balancer", "title": "Requests per second through each balancer",
                           "expr": "x", "unit": "per second", "values": {"lb1": 40.0, "lb2": 0.0}}]}
    text = render_text(report)
    assert "scrape targets: 1 of 1 up" in text and "alerts: 1 firing, 0 pending" in text
    assert "lb1 40  lb2 0" in text
