"""A lab that always converges (issue items 5 and 6), on the docker provider.

Item 5: accounts of app hosts that left lab.yml are dropped, the next run changes nothing,
and the grants never touch data the lab did not create (a `test` database survives).
Item 6: verify checks every app host from every web host, database included, and names
the one that fails; each service runs the files it has.

Some tests need a scaled lab (web2 and app2). It is a lab of its own, derived from the
active lab file (HALAB_E2E_LAB_FILE, else tests/e2e/lab.yml): its name is that lab's name
plus "s" and its network that lab's network moved up by 100 /24s (halabci on
192.168.59.0/24 -> halabcis on 192.168.159.0/24; h5lab on 192.168.61.0/24 -> h5labs on
192.168.161.0/24), so that two e2e runs with different lab files never share a lab or a
network (labs side by side usually take neighbouring /24s: a shift of one would land on
one of them). It is booted once for this module and destroyed at its end."""
import ipaddress
import json

import pytest
import yaml

from fabfile.core.lab import load_lab
from tests.e2e.conftest import LAB_FILE, LabCLI, read_json

pytestmark = pytest.mark.e2e

ACCOUNTS_SQL = "SELECT Host FROM mysql.global_priv WHERE User='notes' ORDER BY Host"


def cli_for(path):
    """The project's commands against the lab of `path`."""
    cli = LabCLI()
    cli.lab = load_lab(path)
    cli.env["LAB_FILE"] = str(path)
    return cli


def sql(cli, statement):
    out = cli.invoke("ssh", "db1", "-c", f'sudo mariadb -N -e "{statement}"').stdout
    return out.split()


def failed_checks(verdict):
    return [(c["host"], c["name"], c["detail"]) for c in verdict["checks"] if not c["passed"]]


def verify(cli, path):
    result = cli.invoke("verify", "--json", str(path), check=False)
    return result, read_json(path)


# --- the default lab --------------------------------------------------------------------

def test_verify_checks_every_service_and_the_app_tier_in_under_two_seconds(lab_cli, provisioned, tmp_path):
    result, verdict = verify(lab_cli, tmp_path / "verify.json")
    assert result.returncode == 0 and verdict["passed"], result.stdout
    checks = {(c["host"], c["name"]) for c in verdict["checks"]}
    for host, unit in [("lb1", "haproxy"), ("lb2", "keepalived"), ("web1", "nginx"), ("app1", "halab-app"),
                       ("db1", "mariadb"), ("db1", "halab-hosts")]:
        assert (host, f"{unit} runs its current configuration") in checks
    assert ("web1", "Nginx upstream is every app host of lab.yml") in checks
    assert ("app1", "/api/health from web1, database included") in checks
    assert ("db1", "notes accounts: one per app host, no other") in checks
    print(f"verify: {len(checks)} checks in {verdict['seconds']} s")
    assert verdict["seconds"] < 2


def test_a_file_changed_behind_the_service_fails_verify_until_provision(lab_cli, provisioned, tmp_path):
    lab_cli.run("echo '# edited by hand' | sudo tee -a /etc/haproxy/haproxy.cfg >/dev/null", "--hosts", "lb2")
    try:
        result, verdict = verify(lab_cli, tmp_path / "edited.json")
        assert result.returncode != 0
        assert failed_checks(verdict) == [
            ("lb2", "haproxy runs its current configuration",
             "/etc/haproxy/haproxy.cfg, /etc/haproxy/tls/site.pem or /etc/haproxy/tls/ca.crt changed since it "
             "last loaded them: `invoke provision` reloads it")]
    finally:
        lab_cli.invoke("provision", "--hosts", "lb2")
    lab_cli.invoke("verify")


def test_grants_drop_an_account_of_no_app_host_keep_the_test_database_and_converge(lab_cli, provisioned):
    app1 = lab_cli.lab.host("app1").ip
    stranger = str(ipaddress.ip_address(lab_cli.lab.host("db1").ip) + 58)  # .99: no lab host
    sql(lab_cli, f"CREATE USER 'notes'@'{stranger}' IDENTIFIED BY 'x'; CREATE DATABASE test; "
                 "CREATE TABLE test.kept (v INT); INSERT INTO test.kept VALUES (42);")
    try:
        assert sql(lab_cli, ACCOUNTS_SQL) == sorted([app1, stranger])
        first = lab_cli.invoke("provision").stdout
        assert "database and grants: ran" in first, first
        assert sql(lab_cli, ACCOUNTS_SQL) == [app1]
        assert sql(lab_cli, "SELECT v FROM test.kept") == ["42"]   # not the lab's: left alone
        second = lab_cli.invoke("provision").stdout
        assert "nothing changed" in second, second
    finally:
        sql(lab_cli, f"DROP DATABASE IF EXISTS test; DROP USER IF EXISTS 'notes'@'{stranger}'")


# --- a scaled lab: web2 and app2 ----------------------------------------------------------

def derived_lab(base_file, drop=()):
    """The active lab file's topology plus web2 and app2, named base + "s", 100 /24s up."""
    data = yaml.safe_load(base_file.read_text())
    up = 100 * 256

    def moved(ip):
        return str(ipaddress.ip_address(ip) + up)

    hosts = {name: dict(spec, ip=moved(spec["ip"])) for name, spec in data["hosts"].items()}
    hosts["web2"] = dict(hosts["web1"], ip=str(ipaddress.ip_address(hosts["web1"]["ip"]) + 1))
    hosts["app2"] = dict(hosts["app1"], ip=str(ipaddress.ip_address(hosts["app1"]["ip"]) + 1))
    network = ipaddress.ip_network(data["network"])
    assert (network.network_address + up).is_private, f"{network} moved up by 100 /24s leaves the private ranges"
    return {"name": data["name"] + "s",
            "network": str(ipaddress.ip_network(f"{network.network_address + up}/{network.prefixlen}")),
            "vip": moved(data["vip"]),
            "hosts": {name: spec for name, spec in hosts.items() if name not in drop}}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scaled")
    path = folder / "lab.yml"
    path.write_text(yaml.safe_dump(derived_lab(LAB_FILE), sort_keys=False))
    cli = cli_for(path)
    cli.folder = folder
    try:
        cli.invoke("up", "--provider", "docker")
        cli.invoke("provision")
        yield cli
    finally:
        cli.invoke("destroy", "--yes", check=False)


def test_verify_names_the_app_host_whose_database_login_fails_every_time(scaled, tmp_path):
    """app2's service runs with a wrong database password: each of four runs fails and names
    app2 from both web hosts; none blames app1 (round robin used to pick one app host)."""
    app2 = scaled.lab.host("app2").ip
    scaled.run("sudo sed -i 's/^DB_PASSWORD=.*/DB_PASSWORD=wrong/' /opt/halab-app/app.env && "
               "sudo systemctl restart halab-app", "--hosts", "app2")
    scaled.run(f"for i in $(seq 40); do curl -s -o /dev/null http://{app2}:8000/api/health && break; "
               f"sleep 0.25; done", "--hosts", "web1")
    try:
        for attempt in range(4):
            result, verdict = verify(scaled, tmp_path / f"verify{attempt}.json")
            assert result.returncode != 0, result.stdout
            failed = failed_checks(verdict)
            for web in ("web1", "web2"):
                [(_, _, detail)] = [f for f in failed if f[:2] == ("app2", f"/api/health from {web}, database included")]
                assert "Access denied for user 'notes'" in detail, detail
            assert not [f for f in failed if f[0] == "app1"], failed
    finally:
        scaled.invoke("provision", "--hosts", "app2")
    scaled.invoke("verify")


def test_verify_names_the_web_host_whose_upstream_lacks_an_app_host(scaled, tmp_path):
    app2 = scaled.lab.host("app2").ip
    scaled.run(f"sudo sed -i '/server {app2}:8000/d' /etc/nginx/sites-available/halab && sudo systemctl reload nginx",
               "--hosts", "web2")
    try:
        result, verdict = verify(scaled, tmp_path / "upstream.json")
        assert result.returncode != 0
        failed = failed_checks(verdict)
        assert ("web2", "Nginx upstream is every app host of lab.yml", f"missing {app2}:8000") in failed, failed
        assert {f[0] for f in failed} == {"web2"}, failed
    finally:
        scaled.invoke("provision", "--hosts", "web2")
    scaled.invoke("verify")


def test_scaling_a_tier_updates_every_ruleset_that_depends_on_it(scaled, tmp_path):
    """web2 and app2 are let in where their tier is, and nowhere else: verify's port matrix
    from every host, and db1's table in the kernel."""
    result, verdict = verify(scaled, tmp_path / "matrix.json")
    assert result.returncode == 0, json.dumps(failed_checks(verdict))
    observed = {(p["from"], p["to"], p["port"]): p["observed"] for p in verdict["matrix"]}
    assert all(p["passed"] for p in verdict["matrix"])
    for path, state in [(("web2", "app1", 8000), "open"), (("web2", "app2", 8000), "open"),
                        (("web1", "app2", 8000), "open"), (("app2", "db1", 3306), "open"),
                        (("lb2", "web2", 80), "open"), (("web2", "db1", 3306), "closed"),
                        (("app2", "web2", 80), "closed"), (("host", "app2", 8000), "closed")]:
        assert observed[path] == state, path
    app1, app2 = scaled.lab.host("app1").ip, scaled.lab.host("app2").ip
    table = scaled.run("sudo nft list table inet halab", "--hosts", "db1").stdout
    assert f"ip saddr {{ {app1}, {app2} }} tcp dport 3306 accept" in table, table


def test_removing_app2_from_lab_yml_drops_its_account_and_the_second_run_changes_nothing(scaled, tmp_path):
    app1, app2 = scaled.lab.host("app1").ip, scaled.lab.host("app2").ip
    assert sql(scaled, ACCOUNTS_SQL) == sorted([app1, app2])
    path = scaled.folder / "without-app2.yml"
    path.write_text(yaml.safe_dump(derived_lab(LAB_FILE, drop=("app2",)), sort_keys=False))
    smaller = cli_for(path)
    try:
        first = smaller.invoke("provision").stdout
        assert "database and grants: ran" in first, first
        assert sql(smaller, ACCOUNTS_SQL) == [app1]
        report = tmp_path / "second.json"
        second = smaller.invoke("provision", "--json", str(report)).stdout
        assert read_json(report)["changed"] == 0, second
        assert "nothing changed" in second
        result, verdict = verify(smaller, tmp_path / "verify.json")
        assert result.returncode == 0, json.dumps(failed_checks(verdict))
    finally:
        scaled.invoke("provision")  # app2 back in lab.yml: its account and upstream return
    assert sql(scaled, ACCOUNTS_SQL) == sorted([app1, app2])
