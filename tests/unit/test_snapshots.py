"""Snapshot tasks through python-vagrant, on canned Vagrant output; docker says it has none."""
import subprocess

import pytest
import vagrant as python_vagrant

from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.machines.snapshots import Snapshots, parse_snapshot_list
from fabfile.machines.vagrant import Vagrant
from tests.unit.test_lab import GOOD

LIST_OUTPUT = """==> lb1: \nbare\nprovisioned\n==> lb2: \nbare\nprovisioned
==> web1: No snapshots have been taken yet!
    web1: Snapshot saving is not supported for this provider or this machine.
==> app1: \nprovisioned
==> db1: \nbare
"""


class FakeInventory:
    def __init__(self):
        self.events = []

    def invalidate(self, hosts=None):
        self.events.append(("invalidate", hosts))

    def refresh(self, running=None, only=None):
        self.events.append(("refresh", only))


class FakeMachines:
    def __init__(self, provider, monkeypatch, outputs):
        self.lab = parse_lab(GOOD)
        self._provider = provider
        self.inventory = FakeInventory()
        self.commands = []

        def check_output(command, **kwargs):
            self.commands.append(command[1:])
            return outputs.get(command[2], "").encode()

        def check_call(command, **kwargs):
            self.commands.append(command[1:])
            return 0

        monkeypatch.setattr(python_vagrant, "get_vagrant_executable", lambda: "/usr/bin/vagrant")
        monkeypatch.setattr(python_vagrant.subprocess, "check_output", check_output)
        monkeypatch.setattr(python_vagrant.subprocess, "check_call", check_call)
        self.vagrant = Vagrant(self.lab)

    def provider(self, requested=None):
        return self._provider


def test_list_parses_each_hosts_snapshots():
    assert parse_snapshot_list(LIST_OUTPUT) == {
        "lb1": ["bare", "provisioned"], "lb2": ["bare", "provisioned"], "web1": [],
        "app1": ["provisioned"], "db1": ["bare"]}


def test_list_calls_vagrant_once(monkeypatch):
    machines = FakeMachines("virtualbox", monkeypatch, {"list": LIST_OUTPUT})
    assert Snapshots(machines).list()["app1"] == ["provisioned"]
    assert machines.commands == [["snapshot", "list"]]


def test_save_names_the_hosts_in_one_call(monkeypatch):
    machines = FakeMachines("virtualbox", monkeypatch, {})
    Snapshots(machines).save("exercise1", ["web1", "db1"])
    Snapshots(machines).save("everything")
    assert machines.commands == [["snapshot", "save", "--force", "/^(web1|db1)$/", "exercise1"],
                                 ["snapshot", "save", "--force", "everything"]]


def test_restore_checks_the_snapshot_exists_then_restores_without_provisioning(monkeypatch):
    machines = FakeMachines("libvirt", monkeypatch, {"list": LIST_OUTPUT})
    Snapshots(machines).restore("provisioned", ["lb1", "app1"])
    assert machines.commands[-1] == ["snapshot", "restore", "/^(lb1|app1)$/", "provisioned", "--no-provision"]
    assert machines.inventory.events == [("invalidate", ["lb1", "app1"]), ("refresh", ["lb1", "app1"])]
    with pytest.raises(LabError, match="no snapshot 'provisioned' on web1, db1"):
        Snapshots(machines).restore("provisioned", ["web1", "db1"])


def test_vagrant_failure_names_the_hosts_and_what_vagrant_said(monkeypatch):
    machines = FakeMachines("virtualbox", monkeypatch, {})

    def failing(command, **kwargs):
        kwargs["stderr"].write(b"The snapshot name 'x' is already in use.\n")
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(python_vagrant.subprocess, "check_call", failing)
    with pytest.raises(LabError) as caught:
        Snapshots(machines).save("x", ["web1"])
    assert "vagrant snapshot save` failed for web1" in str(caught.value)
    assert "already in use" in str(caught.value)


@pytest.mark.parametrize("action", ["save", "restore", "delete", "list"])
def test_a_provider_without_snapshots_says_so_and_points_to_reset(monkeypatch, action):
    import fabfile.machines.providers as providers
    from fabfile.machines.providers.base import Provider
    plain = Provider()
    plain.name = "plain"
    monkeypatch.setitem(providers.PROVIDERS, "plain", plain)
    machines = FakeMachines("plain", monkeypatch, {})
    snapshots = Snapshots(machines)
    with pytest.raises(LabError) as caught:
        getattr(snapshots, action)(*(() if action == "list" else ("provisioned",)))
    assert "plain provider has no snapshots" in str(caught.value)
    assert "invoke reset --recreate" in caught.value.fix
    assert machines.commands == [], "no Vagrant call at all"
