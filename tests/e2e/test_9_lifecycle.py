"""Halting a host shows in status; destroying the lab leaves nothing of it behind."""
import pytest

pytestmark = pytest.mark.e2e


def test_halted_host_shows_as_stopped_and_boots_again(lab_cli):
    lab_cli.invoke("halt", "--hosts", "web1")
    row = next(l for l in lab_cli.invoke("status").stdout.splitlines() if l.startswith("web1 "))
    assert " stopped " in row, row
    result = lab_cli.run("true", check=False)
    assert result.returncode != 0 and "web1 (not running)" in result.stderr
    lab_cli.invoke("up", "--hosts", "web1")
    lab_cli.run("true", "--hosts", "web1")
    # Docker writes its own /etc/hosts at every start; the lab's names come back at boot.
    resolved = lab_cli.invoke("ssh", "web1", "-c", "getent hosts db1").stdout.split()
    assert resolved == [lab_cli.lab.host("db1").ip, "db1"]


def test_destroy_leaves_no_container_and_no_network(lab_cli):
    lab_cli.invoke("destroy", "--yes")
    name = lab_cli.lab.name
    assert not [c for c in lab_cli.docker_names("container") if c.startswith(f"{name}-")]
    assert name not in lab_cli.docker_names("network")
    out = lab_cli.invoke("status").stdout
    assert out.count("not created") == len(lab_cli.lab.hosts), out
