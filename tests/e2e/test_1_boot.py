"""The lab boots on docker and every host is reachable through the inventory."""
import re

import pytest

pytestmark = pytest.mark.e2e


def test_status_lists_every_host_running_with_its_ip(lab_cli):
    out = lab_cli.invoke("status").stdout
    for host in lab_cli.lab.hosts:
        row = next(line for line in out.splitlines() if line.startswith(host.name + " "))
        assert host.ip in row and " running " in row and "docker" in row, row
        assert re.search(r"vagrant@[\d.]+:\d+", row), row


def test_run_prints_each_private_ip_prefixed_with_its_host(lab_cli):
    out = lab_cli.run("hostname -I").stdout
    for host in lab_cli.lab.hosts:
        assert re.search(rf"^{host.name}\s*\|.*\b{re.escape(host.ip)}\b", out, re.M), out


def test_run_reports_the_hosts_that_fail(lab_cli):
    result = lab_cli.run("test $(hostname) != web1", check=False)
    assert result.returncode != 0
    assert "web1 (exit 1)" in result.stderr and "lb1" not in result.stderr


def test_every_host_reaches_every_other_on_its_private_ip(lab_cli):
    ips = " ".join(h.ip for h in lab_cli.lab.hosts)
    # One bounded ping per peer: -c 1 -W 1, five peers, from each host.
    lab_cli.run(f"for ip in {ips}; do ping -c 1 -W 1 -q $ip >/dev/null || {{ echo unreachable $ip; exit 1; }}; done")


def test_the_private_network_is_its_own_interface_not_the_default_route(lab_cli):
    out = lab_cli.run("ip -o -4 addr show | awk '{print $2, $4}'; ip route show default").stdout
    for host in lab_cli.lab.hosts:
        lines = [l.split("| ", 1)[1] for l in out.splitlines() if l.startswith(host.name + " ")]
        private_if = next(l.split()[0] for l in lines if l.endswith(f"{host.ip}/24"))
        default = next(l for l in lines if l.startswith("default"))
        assert f"dev {private_if}" not in default


def test_ssh_runs_one_command(lab_cli):
    assert lab_cli.invoke("ssh", "db1", "-c", "hostname").stdout.strip() == "db1"


def test_vagrant_validate_passes(lab_cli):
    import subprocess
    from fabfile.core.config import PROJECT_DIR
    result = subprocess.run(["vagrant", "validate"], cwd=PROJECT_DIR, env=lab_cli.env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "validated successfully" in result.stdout, result.stderr
