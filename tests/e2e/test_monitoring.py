"""Monitoring on a real lab: a monitoring server scrapes every exporter, verify proves the targets up
and the rules loaded, `invoke monitor --json` reports them, a failover drill records the
VIP-moved alert firing and resolving, and a broken rule never replaces the running ones.

The lab is the active e2e lab when it has a monitoring server; otherwise one of its own:
labs/monitored.yml's topology named after the active lab plus "m", on the active lab's
network moved up by 50 /24s (halabci on 192.168.59.0/24 -> halabcim on 192.168.109.0/24),
booted for this module and destroyed at its end."""
import ipaddress
import json
import shutil
import time

import pytest
import yaml

from fabfile.checks.http import request
from fabfile.checks.netsafety import ensure_local_route
from fabfile.converge.templates import TEMPLATES_DIR
from fabfile.roles.base import registered
from tests import browser
from fabfile.core.config import PROJECT_DIR
from tests.e2e.conftest import LAB_FILE, LabCLI, read_json

pytestmark = pytest.mark.e2e
EXPECTED_JOBS = {"loadbalancer": {"node", "haproxy"}, "web": {"node", "nginx"}, "app": {"node", "app"},
                 "db": {"node", "mysqld"}, "monitor": {"node"}}


def monitored_lab(base_file):
    """labs/monitored.yml's hosts on the active lab's network moved up by 50 /24s."""
    base = yaml.safe_load(base_file.read_text())
    topology = yaml.safe_load((PROJECT_DIR / "labs" / "monitored.yml").read_text())
    network = ipaddress.ip_network(base["network"])
    moved = ipaddress.ip_network(f"{network.network_address + 50 * 256}/{network.prefixlen}")
    assert moved.is_private, f"{network} moved up by 50 /24s leaves the private ranges"
    origin = ipaddress.ip_network(topology["network"]).network_address

    def at(ip):
        return str(moved.network_address + (int(ipaddress.ip_address(ip)) - int(origin)))

    return {"name": base["name"] + "m", "network": str(moved), "vip": at(topology["vip"]),
            "hosts": {name: dict(spec, ip=at(spec["ip"])) for name, spec in topology["hosts"].items()}}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    active = LabCLI()
    if active.lab.with_role("monitor"):
        active.invoke("up", "--provider", "docker")
        active.invoke("provision")
        yield active
        return
    path = tmp_path_factory.mktemp("monitored") / "lab.yml"
    path.write_text(yaml.safe_dump(monitored_lab(LAB_FILE), sort_keys=False))
    cli = LabCLI(path)
    try:
        cli.invoke("up", "--provider", "docker")
        cli.invoke("provision")
        yield cli
    finally:
        cli.invoke("destroy", "--yes", check=False)


def monitor_json(cli):
    return json.loads(cli.invoke("monitor", "--json", timeout=60).stdout)


def test_verify_proves_every_target_up_and_the_rules_loaded(monitored, tmp_path):
    report = tmp_path / "verify.json"
    monitored.invoke("verify", "--json", str(report))
    checks = {c["name"]: c for c in read_json(report)["checks"]}
    assert checks["every scrape target up"]["passed"], checks["every scrape target up"]
    assert checks["the lab's alert rules loaded"]["passed"]
    assert checks["prometheus-node-exporter active and enabled"]["passed"]


def test_monitor_json_lists_every_exporter_of_every_host_up(monitored):
    report = monitor_json(monitored)
    seen = {(t["job"], t["host"]) for t in report["targets"]}
    wanted = {(job, h.name) for h in monitored.lab.hosts for job in EXPECTED_JOBS[h.role]}
    assert seen == wanted
    assert all(t["health"] == "up" for t in report["targets"]), report["targets"]
    assert all(set(t) >= {"job", "instance", "health"} for t in report["targets"])
    assert all(set(a) >= {"alertname", "state"} for a in report["alerts"])
    mon = monitored.lab.with_role("monitor")[0]
    assert report["prometheus"] == f"http://{mon.ip}:9090/"


def test_no_new_port_on_every_address(monitored):
    """Exporters, Prometheus and Alertmanager listen on the private IP: on every address
    a host listens only on SSH, a balancer or web host on HTTP, and a balancer on HTTPS
    too (the VIP moves between balancers); no cluster port 9094."""
    https = str(registered("loadbalancer").settings(monitored.lab)["https_port"])
    balancers = {h.name for h in monitored.lab.with_role("loadbalancer")}
    out = monitored.run("ss -Hltn | awk '{print $4}' | sort -u | tr '\\n' ' '").stdout
    for line in out.splitlines():
        if "|" not in line:
            continue
        host, sockets = line.split("|", 1)
        wildcard = {s.rsplit(":", 1)[1] for s in sockets.split()
                    if s.startswith(("0.0.0.0:", "*:", "[::]:"))}
        allowed = {"22", "80"} | ({https} if host.strip() in balancers else set())
        assert wildcard <= allowed, (host, sockets)


def test_requests_per_second_per_balancer_is_a_query_result(monitored):
    lab = monitored.lab
    ensure_local_route(lab.vip, lab.network)
    deadline = time.monotonic() + 5
    for _ in range(100):  # 20 requests/s for 5 s at most
        if time.monotonic() > deadline:
            break
        request(lab.vip, "GET", "/", timeout=1)
        time.sleep(0.05)
    time.sleep(2)  # a scrape and an evaluation
    queries = {q["name"]: q for q in monitor_json(monitored)["queries"]}
    rps = queries["rps_per_balancer"]["values"]
    assert set(rps) == {"lb1", "lb2"} and rps["lb1"] > 1, rps
    assert set(queries["disk_io_per_host"]["values"]) == set(lab.host_names)


def test_haproxy_drill_records_the_vip_moved_alert_firing_and_resolving(monitored, tmp_path):
    report = tmp_path / "drill.json"
    monitored.invoke("failover", "--scenario", "haproxy", "--json", str(report), timeout=300)
    drill = read_json(report)["drills"][0]
    vip = [a for a in drill["alerts"] if a["alertname"] == "VipMoved"]
    assert len(vip) == 1 and vip[0]["host"] == "lb2", drill["alerts"]
    assert vip[0]["state"] == "resolved", vip
    assert 0 <= vip[0]["fired_s"] < 5 and vip[0]["fired_s"] < vip[0]["resolved_s"] < 60, vip
    assert drill["monitored_rps"].get("lb1", 0) > 1 and drill["monitored_rps"].get("lb2", 0) > 1, drill
    assert drill["passed"]


def test_a_broken_rule_is_refused_and_prometheus_keeps_its_rules(monitored, tmp_path):
    overlay = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "monitor", overlay / "monitor")
    rules = overlay / "monitor" / "halab-rules.yml.j2"
    original = rules.read_text()
    assert 'expr: up{job="node"} == 0' in original
    rules.write_text(original.replace('expr: up{job="node"} == 0', 'expr: up{job="node"} == == 0'))
    before = monitored.invoke("ssh", "mon1", "-c", "sha256sum /etc/prometheus/halab-rules.yml").stdout
    monitored.env["HALAB_TEMPLATES"] = str(overlay)
    try:
        result = monitored.invoke("provision", "--hosts", "mon1", check=False)
    finally:
        del monitored.env["HALAB_TEMPLATES"]
    assert result.returncode != 0
    assert "promtool check rules" in result.stdout and "left as it was" in result.stdout, result.stdout
    assert monitored.invoke("ssh", "mon1", "-c", "sha256sum /etc/prometheus/halab-rules.yml").stdout == before
    assert "nothing changed" in monitored.invoke("provision", "--hosts", "mon1").stdout
    assert all(t["health"] == "up" for t in monitor_json(monitored)["targets"])


def test_second_provision_changes_nothing(monitored, tmp_path):
    report = tmp_path / "noop.json"
    monitored.invoke("provision", "--json", str(report))
    assert read_json(report)["changed"] == 0


@pytest.mark.skipif(not browser.available(), reason="chromium is not installed")
def test_saved_queries_page_in_chromium(monitored):
    mon = monitored.lab.with_role("monitor")[0]
    ensure_local_route(mon.ip, monitored.lab.network)
    dom = browser.dump_url(f"http://{mon.ip}:9090/consoles/halab.html", {mon.ip: mon.ip})
    assert 'id="rps_per_balancer"' in dom and 'id="disk_io_per_host"' in dom
    assert "<td>lb1</td>" in dom and "<td>lb2</td>" in dom
    assert "no data yet" not in dom.split('id="disk_io_per_host"')[1].split("</table>")[0]
