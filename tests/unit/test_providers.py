"""Provider choice, Vagrant machine patterns, Vagrant output lines, Docker network conflicts."""
import pytest

from fabfile.machines.providers.docker import network_conflicts
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.machines.facade import VAGRANT_LINE
from fabfile.machines.providers import choose_provider
from fabfile.machines.vagrant import Vagrant
from tests.unit.test_lab import GOOD


def usable_only(*names):
    return lambda name: (name in names, "ok" if name in names else "not installed")


def test_virtualbox_when_usable_else_docker(monkeypatch):
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    assert choose_provider(None, set(), usable_only("virtualbox", "docker")) == "virtualbox"
    assert choose_provider(None, set(), usable_only("docker", "libvirt")) == "docker"


def test_libvirt_only_when_asked(monkeypatch):
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    assert choose_provider("libvirt", set(), usable_only("libvirt", "docker")) == "libvirt"


def test_the_provider_already_in_use_wins(monkeypatch):
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    assert choose_provider(None, {"docker"}, usable_only("virtualbox", "docker")) == "docker"
    with pytest.raises(LabError, match="already runs on docker"):
        choose_provider("virtualbox", {"docker"}, usable_only("virtualbox", "docker"))


def test_unusable_or_unknown_provider_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    with pytest.raises(LabError) as caught:
        choose_provider(None, set(), usable_only())
    assert "docker is not usable" in str(caught.value) and "setup.sh" in caught.value.fix
    with pytest.raises(LabError, match="unknown provider 'vmware'"):
        choose_provider("vmware", set(), usable_only("docker"))


def test_machine_pattern_names_several_hosts_in_one_argument():
    assert Vagrant.machine_pattern([]) is None
    assert Vagrant.machine_pattern(["lb1"]) == "lb1"
    assert Vagrant.machine_pattern(["lb1", "web1"]) == "/^(lb1|web1)$/"


def test_vagrant_lines_are_attributed_to_their_host():
    assert VAGRANT_LINE.match("==> lb1: Creating the container...").groups() == \
        ("==>", "lb1", "Creating the container...")
    assert VAGRANT_LINE.match("    web1: Key inserted!").group(2) == "web1"
    assert VAGRANT_LINE.match("Bringing machine 'lb1' up") is None


def test_docker_network_conflicts():
    lab = parse_lab(GOOD)
    ours = {"name": "halab", "subnets": ["192.168.56.0/24"], "labels": {"halab.lab": "halab"}}
    assert network_conflicts(lab, [ours]) == []
    stale = dict(ours, subnets=["192.168.60.0/24"])
    assert "lab.yml says 192.168.56.0/24" in str(network_conflicts(lab, [stale])[0])
    foreign = {"name": "vagrant_network_192.168.56.0/24", "subnets": ["192.168.56.0/24"], "labels": {}}
    problem = network_conflicts(lab, [foreign])[0]
    assert "overlaps" in str(problem) and "docker network rm" in problem.fix
    other_lab = {"name": "student2", "subnets": ["192.168.56.0/21"], "labels": {"halab.lab": "student2"}}
    assert "lab 'student2'" in str(network_conflicts(lab, [other_lab])[0])


def test_virtualbox_leftovers_are_the_lab_named_vms_vagrant_does_not_know():
    from fabfile.machines.providers.virtualbox import lab_vm_orphans, parse_vm_list
    listing = ('"halab-lb1" {0a1b2c3d-0000-4000-8000-000000000001}\n'
               '"halab-web1" {0a1b2c3d-0000-4000-8000-000000000002}\n'
               '"my-own-vm" {0a1b2c3d-0000-4000-8000-000000000003}\n')
    vms = parse_vm_list(listing)
    assert vms["my-own-vm"] == "0a1b2c3d-0000-4000-8000-000000000003"
    lab = parse_lab(GOOD)
    known = {"0a1b2c3d-0000-4000-8000-000000000001"}
    assert lab_vm_orphans(lab, vms, known) == {"halab-web1": "0a1b2c3d-0000-4000-8000-000000000002"}
