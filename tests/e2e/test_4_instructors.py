"""Reset in seconds, labs side by side, a lab a student can find their way around."""
import os
import re

import pytest

from tests.e2e.conftest import LabCLI

pytestmark = pytest.mark.e2e
SECOND_LAB = os.environ.get("HALAB_E2E_SECOND_LAB", "halabci2")


def test_hosts_know_each_other_by_name(lab_cli, provisioned):
    resolved = lab_cli.invoke("ssh", "lb1", "-c", "getent hosts web1").stdout
    assert resolved.split() == [lab_cli.lab.host("web1").ip, "web1"]
    assert lab_cli.invoke("ssh", "lb1", "-c", "ssh -o BatchMode=yes web1 hostname").stdout.strip() == "web1"
    query = ('sudo sh -c \'. /opt/halab-app/app.env; mysql -h db1 -u "$DB_USER" -p"$DB_PASSWORD" '
             '"$DB_NAME" -N -e "SELECT 1"\'')
    assert lab_cli.invoke("ssh", "app1", "-c", query).stdout.strip() == "1"


def test_the_message_of_the_day_tells_each_host_its_role(lab_cli, provisioned):
    motd = lab_cli.invoke("ssh", "db1", "-c", "cat /etc/motd").stdout
    assert "db1" in motd and "MariaDB" in motd and "journalctl -u mariadb" in motd


def test_status_shows_services_and_who_holds_the_vip(lab_cli, provisioned):
    out = lab_cli.invoke("status").stdout
    assert re.search(r"^lb1 .*haproxy up, keepalived up\s+VIP$", out, re.M), out
    assert f"virtual IP {lab_cli.lab.vip} on lb1" in out


def test_logs_show_the_roles_journal(lab_cli, provisioned):
    out = lab_cli.invoke("logs", "app1", "--lines", "5").stdout
    assert "halab-app" in out or "gunicorn" in out.lower(), out


def test_snapshots_on_docker_fail_with_a_clear_message(lab_cli, provisioned):
    result = lab_cli.invoke("snapshot.save", "exercise1", check=False)
    assert result.returncode != 0
    assert "docker provider has no snapshots" in result.stderr and "invoke reset" in result.stderr


def test_a_broken_web_host_and_database_are_back_after_one_reset(lab_cli, provisioned):
    lab_cli.run("sudo rm /etc/nginx/sites-available/halab && sudo systemctl stop nginx", "--hosts", "web1")
    lab_cli.run("sudo mariadb -e 'DROP TABLE notes.notes'", "--hosts", "db1")
    broken = lab_cli.invoke("verify", check=False)
    assert broken.returncode != 0 and "web1" in broken.stderr
    out = lab_cli.invoke("reset", "--hosts", "web1,db1").stdout
    seconds = float(re.search(r"reset to provisioned in ([\d.]+)s", out).group(1))
    print(f"reset of web1 and db1: {seconds}s")
    lab_cli.invoke("verify")


def test_a_second_lab_runs_beside_the_first_and_goes_without_touching_it(lab_cli, provisioned):
    second = LabCLI()
    second.env.pop("LAB_FILE")
    second.env["LAB"] = SECOND_LAB
    try:
        second.invoke("up", "--provider", "docker")
        second.invoke("provision")
        out = second.invoke("verify").stdout
        assert "192.168.5" in out
        lab_cli.invoke("verify")
    finally:
        second.invoke("destroy", "--yes", check=False)
    assert not [c for c in second.docker_names("container") if c.startswith(f"{SECOND_LAB}-")]
    lab_cli.invoke("verify")
