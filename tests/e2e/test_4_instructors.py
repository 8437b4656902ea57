"""Reset in seconds, labs side by side, a lab a student can find their way around."""
import os
import re
import subprocess

import pytest

from tests.e2e.conftest import LabCLI

pytestmark = pytest.mark.e2e


def snapshot_images(lab_name):
    return subprocess.run(["docker", "images", "-q", "--filter", f"label=halab.lab={lab_name}",
                           "--filter", "label=halab.snapshot"], capture_output=True, text=True,
                          check=True).stdout.split()
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


def reset_seconds(out):
    return float(re.search(r"reset to provisioned in ([\d.]+)s", out).group(1))


def host_state(lab_cli, host):
    """What must survive a restore: the SSH host key, the private address, the container's name."""
    key = lab_cli.invoke("ssh", host, "-c", "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    address = lab_cli.invoke("ssh", host, "-c", "hostname -I").stdout.split()
    return key, lab_cli.lab.host(host).ip in address, lab_cli.invoke("ssh", host, "-c", "hostname").stdout.strip()


def test_a_file_changed_after_a_snapshot_is_gone_after_its_restore(lab_cli, provisioned):
    before = host_state(lab_cli, "app1")
    lab_cli.invoke("snapshot.save", "exercise1", "--hosts", "app1")
    try:
        assert re.search(r"^app1\s+.*exercise1", lab_cli.invoke("snapshot.list").stdout, re.M)
        lab_cli.run("echo changed | sudo tee /etc/halab-exercise && sudo rm /etc/motd", "--hosts", "app1")
        out = lab_cli.invoke("snapshot.restore", "exercise1", "--hosts", "app1").stdout
        assert "app1  | restored to snapshot exercise1" in out
        files = lab_cli.invoke("ssh", "app1", "-c", "ls /etc/halab-exercise /etc/motd 2>&1; true").stdout
        assert "No such file" in files and "/etc/motd" in files.splitlines()[-1], files
        assert host_state(lab_cli, "app1") == before, "same host key, address and hostname"
    finally:
        lab_cli.invoke("snapshot.delete", "exercise1", "--hosts", "app1", check=False)
    assert "exercise1" not in lab_cli.invoke("snapshot.list").stdout
    lab_cli.invoke("verify")


def test_a_snapshot_that_does_not_exist_is_refused_before_anything_changes(lab_cli, provisioned):
    result = lab_cli.invoke("snapshot.restore", "nosuch", "--hosts", "web1", check=False)
    assert result.returncode == 1 and "no snapshot 'nosuch' on web1" in result.stderr
    assert "snapshot.list" in result.stderr


def test_one_broken_host_is_back_in_under_ten_seconds(lab_cli, provisioned):
    lab_cli.run("sudo rm /etc/nginx/sites-available/halab && sudo systemctl stop nginx", "--hosts", "web1")
    assert lab_cli.invoke("verify", check=False).returncode != 0
    out = lab_cli.invoke("reset", "--hosts", "web1", "--yes").stdout
    assert "provisioning" not in out, "a restore, not a provision"
    seconds = reset_seconds(out)
    print(f"reset of web1: {seconds}s")
    assert seconds < 10
    lab_cli.invoke("verify")


def test_a_broken_web_host_and_database_are_back_after_one_reset(lab_cli, provisioned):
    lab_cli.run("sudo rm /etc/nginx/sites-available/halab && sudo systemctl stop nginx", "--hosts", "web1")
    lab_cli.run("sudo systemctl stop mariadb && sudo rm -rf /var/lib/mysql/notes", "--hosts", "db1")
    broken = lab_cli.invoke("verify", check=False)
    assert broken.returncode != 0 and "web1" in broken.stderr
    out = lab_cli.invoke("reset", "--hosts", "web1,db1").stdout
    print(f"reset of web1 and db1: {reset_seconds(out)}s")
    assert reset_seconds(out) < 20
    lab_cli.invoke("verify")
    assert "nothing changed" in lab_cli.invoke("provision").stdout, "restored as provision left them"


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
        assert snapshot_images(SECOND_LAB), "provision saved the second lab's 'provisioned'"
    finally:
        second.invoke("destroy", "--yes", check=False)
    assert not [c for c in second.docker_names("container") if c.startswith(f"{SECOND_LAB}-")]
    assert snapshot_images(SECOND_LAB) == [], "destroy removes the lab's snapshot images"
    assert snapshot_images(lab_cli.lab.name), "and leaves the first lab's alone"
    lab_cli.invoke("verify")
