"""The firewall on the docker provider: every host denies by default what its role does
not serve; verify's port matrix proves each path open or closed from each host and from
this machine; a student who firewalled SSH out gets back in with `invoke console`, and
provision restores the lab's rules; a ruleset that cuts SSH rolls itself back."""
import subprocess
import time

import pytest

from tests.e2e.conftest import read_json

pytestmark = pytest.mark.e2e

# SSH is cut from every source: only replies to what the host itself asked for get in.
CUTS_SSH = """# A student's ruleset that forgets SSH.
table inet halab {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif lo accept
		tcp dport 80 accept
		meta l4proto tcp reject with tcp reset
	}
}
"""

# The shipped template with the SSH rule left out: provision renders it from the roles.
TEMPLATE_WITHOUT_SSH = ("common/firewall.nft.j2", lambda text: text.replace(
    "{% for rule in rules %}", "{% for rule in rules if rule.service != 'SSH' %}"))


def path(verdict, source, to, port):
    return next(p for p in verdict["matrix"] if (p["from"], p["to"], p["port"]) == (source, to, port))


def ssh_gets_in(cli, host):
    """Whether a new SSH connection to `host` runs a command (bounded: 20 s)."""
    try:
        return cli.invoke("ssh", host, "-c", "true", check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def test_verify_proves_every_expected_path_open_and_every_forbidden_one_closed(lab_cli, provisioned, tmp_path):
    report = tmp_path / "verify.json"
    out = lab_cli.invoke("verify", "--json", str(report)).stdout
    verdict = read_json(report)
    assert verdict["passed"], out
    assert "port matrix" in out and "to \\ from" in out
    hosts = lab_cli.lab.host_names
    for name in hosts:
        checks = {c["name"]: c["passed"] for c in verdict["checks"] if c["host"] == name}
        assert checks["halab-firewall active and enabled"] and checks["firewall loaded as provisioned"]
    matrix = verdict["matrix"]
    assert all(p["passed"] for p in matrix)
    assert {p["from"] for p in matrix} == set(hosts) | {"host"}
    assert path(verdict, "lb1", "db1", 3306)["observed"] == "closed"
    assert path(verdict, "app1", "db1", 3306)["observed"] == "open"
    assert path(verdict, "host", "app1", 8000)["observed"] == "closed"
    assert path(verdict, "web1", "app1", 8000)["observed"] == "open"
    assert path(verdict, "host", "web1", 80)["observed"] == "closed"
    assert path(verdict, "lb2", "web1", 80)["observed"] == "open"
    assert path(verdict, "host", "lb1", 8404)["observed"] == "open"
    assert path(verdict, "web1", "lb1", 8404)["observed"] == "closed"
    print(f"verify with the port matrix ({len(matrix)} paths): {verdict['seconds']} s")


def test_each_host_runs_its_rules_from_lab_yml_and_keeps_them_across_a_restart(lab_cli, provisioned):
    out = lab_cli.run("sudo nft list table inet halab", "--hosts", "db1").stdout
    app1 = lab_cli.lab.host("app1").ip
    assert "policy drop;" in out and f"ip saddr {app1} tcp dport 3306 accept" in out
    assert lab_cli.run("systemctl is-enabled halab-firewall", "--hosts", "db1").stdout.split()[-1] == "enabled"


def test_ssh_cut_by_hand_console_gets_back_in_and_provision_restores_the_rules(lab_cli, provisioned, tmp_path):
    # The student's mistake: SSH refused before anything else, over the session that types it.
    lab_cli.run("sudo nft insert rule inet halab input tcp dport 22 reject with tcp reset",
                "--hosts", "web1", "--timeout", "10", check=False)
    assert not ssh_gets_in(lab_cli, "web1")
    report = tmp_path / "cut.json"
    assert lab_cli.invoke("verify", "--json", str(report), check=False).returncode == 1
    failed = [(c["host"], c["name"]) for c in read_json(report)["checks"] if not c["passed"]]
    assert ("web1", "host reachable") in failed

    console = lab_cli.invoke("console", "web1", "-c", "hostname; nft list table inet halab | grep -c 'dport 22 reject'; "
                                                      "nft delete table inet halab")
    assert console.stdout.split()[:2] == ["web1", "1"]
    assert ssh_gets_in(lab_cli, "web1")

    out = lab_cli.invoke("provision").stdout
    assert "web1  | changed      firewall ruleset: the loaded table differs from the lab's" in out
    assert lab_cli.invoke("provision").stdout.strip().splitlines()[-1].startswith("provision: nothing changed")
    lab_cli.invoke("verify")


def test_a_ruleset_of_ones_own_that_cuts_ssh_rolls_back_by_itself(lab_cli, provisioned, tmp_path):
    ruleset = tmp_path / "cuts-ssh.nft"
    ruleset.write_text(CUTS_SSH)
    started = time.monotonic()
    result = lab_cli.invoke("firewall", "web1", "--ruleset", str(ruleset), check=False, timeout=120)
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout
    assert "web1  | the new ruleset cut SSH" in result.stdout
    assert "web1  | rolled back to the previous one by itself" in result.stdout
    assert "your ruleset was not kept" in result.stderr
    assert ssh_gets_in(lab_cli, "web1")
    lab_cli.invoke("verify")  # the lab's table is back, exactly as provision loaded it
    print(f"rolled back and reported in {seconds:.1f} s")


def test_a_provision_whose_ruleset_cuts_ssh_fails_loudly_and_rolls_back(lab_cli, provisioned, tmp_path):
    from fabfile.converge.templates import TEMPLATES_DIR
    name, edit = TEMPLATE_WITHOUT_SSH
    override = tmp_path / "templates"
    (override / name).parent.mkdir(parents=True)
    (override / name).write_text(edit((TEMPLATES_DIR / name).read_text()))
    lab_cli.env["HALAB_TEMPLATES"] = str(override)
    try:
        result = lab_cli.invoke("provision", "--hosts", "web1", check=False, timeout=300)
    finally:
        del lab_cli.env["HALAB_TEMPLATES"]
    assert result.returncode == 1, result.stdout
    assert "web1  | FAILED       firewall ruleset" in result.stdout
    assert "web1  | the new ruleset cut SSH" in result.stdout
    assert "web1  | rolled back to the previous one by itself" in result.stdout
    assert ssh_gets_in(lab_cli, "web1")
    out = lab_cli.invoke("provision").stdout
    assert out.strip().splitlines()[-1].startswith("provision: nothing changed"), out
    lab_cli.invoke("verify")
