"""machines: the SSH inventory, the providers (choice, docker, VirtualBox, libvirt), the Machines
facade and snapshots, all against fakes: no Docker, Vagrant, VirtualBox or SSH is run."""
import base64
import io
import subprocess
from pathlib import Path
from collections import namedtuple
from types import SimpleNamespace

import pytest

import fabfile.core.lab as lab_module
import fabfile.core.state as state
import fabfile.machines.facade as facade
import fabfile.machines.inventory as inventory_module
import fabfile.machines.providers as providers
import fabfile.machines.providers.docker as docker
import fabfile.machines.providers.libvirt as libvirt
import fabfile.machines.providers.virtualbox as virtualbox
from fabfile.core import config
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.machines.facade import Machines, echo_vagrant_line
from fabfile.machines.inventory import Inventory
from fabfile.machines.providers.base import Provider
from fabfile.machines.snapshots import Snapshots, check_name, take_stage_snapshot
from fabfile.remote.parallel import HostResult
from tests.unit import fakes
from tests.unit.test_lab import GOOD

Status = namedtuple("Status", "name state provider")  # what python-vagrant's status() returns


@pytest.fixture
def lab():
    return parse_lab(GOOD)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """The lab's state in tmp_path; no provider from this process's environment; and no real
    /etc/vbox/networks.conf."""
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "state")
    monkeypatch.setattr(lab_module, "VBOX_NETWORKS_CONF", tmp_path / "no-networks.conf")
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    monkeypatch.delenv("HALAB_DEBUG", raising=False)


def block(host, port=2200):
    return (f"Host {host}\n  HostName 127.0.0.1\n  User vagrant\n  Port {port}\n"
            f"  IdentityFile /keys/{host}\n\n")


class FakeVagrant:
    """The Vagrant verbs the lab uses, answered from `states`; every call recorded."""

    def __init__(self, lab=None, provider=None, states=None):
        self.lab, self.provider = lab, provider
        self.states = dict(states or {})
        self.calls = []
        self.up_lines = ["Bringing machine 'x' up\n", "==> web1: Creating the container...\n"]

    def status(self):
        self.calls.append(("status",))
        return [Status(n, s.replace(" ", "_"), p) for n, (s, p) in self.states.items()]

    def ssh_config(self, hosts=None):
        self.calls.append(("ssh-config", list(hosts or [])))
        return "".join(block(h, 2200 + i) for i, h in enumerate(hosts or []))

    def up(self, hosts, provider):
        self.calls.append(("up", list(hosts), provider))
        yield from self.up_lines

    def halt(self, hosts, force=False):
        self.calls.append(("halt", list(hosts), force))

    def destroy(self, hosts=None):
        self.calls.append(("destroy", list(hosts or [])))

    def snapshot(self, action, hosts, name=None, force=False):
        self.calls.append(("snapshot", action, hosts, name, force))
        return ""


# --- inventory ----------------------------------------------------------------------------------------

class InventoryFixture:
    def __init__(self, lab, states):
        self.vagrant = FakeVagrant(lab, states=states)
        self.state_calls = 0
        self.inventory = Inventory(lab, lambda: self.vagrant, self.states)

    def states(self):
        self.state_calls += 1
        return {n: s for n, s in self.vagrant.states.items()}


RUNNING = {"lb1": ("running", "docker"), "lb2": ("running", "docker"), "web1": ("stopped", "docker"),
           "app1": ("running", "docker"), "db1": ("not created", "docker")}


@pytest.fixture
def inv(lab, monkeypatch):
    monkeypatch.setattr(inventory_module, "connect", lambda endpoint: ("connection", endpoint.host, endpoint.port))
    return InventoryFixture(lab, RUNNING)


def test_inventory_caches_in_the_labs_state_folder(inv, tmp_path):
    assert inv.inventory.cache_path == tmp_path / "state" / "halab" / "ssh_config"
    assert inv.inventory.cached_endpoints() == {}


def test_refresh_asks_the_running_hosts_in_lab_order(inv):
    text = inv.inventory.refresh()
    assert inv.state_calls == 1
    assert inv.vagrant.calls == [("ssh-config", ["lb1", "lb2", "app1"])]
    assert inv.inventory.cache_path.read_text() == text
    assert set(inv.inventory.cached_endpoints()) == {"lb1", "lb2", "app1"}
    assert not inv.inventory.cache_path.with_suffix(".tmp").exists()


def test_refresh_with_running_spares_the_status_call(inv):
    inv.inventory.refresh(running=["app1", "lb1", "nonsense"])
    assert inv.state_calls == 0
    assert inv.vagrant.calls == [("ssh-config", ["lb1", "app1"])]


def test_refresh_with_nothing_running_asks_vagrant_nothing(inv):
    assert inv.inventory.refresh(running=[]) == ""
    assert inv.vagrant.calls == [] and inv.inventory.cache_path.read_text() == ""


def test_refresh_only_merges_fresh_blocks_into_the_cache(inv):
    inv.inventory.refresh(running=["lb1", "lb2"])
    inv.inventory.refresh(only=["lb2", "web1"])
    assert inv.vagrant.calls[-1] == ("ssh-config", ["lb2", "web1"])
    endpoints = inv.inventory.cached_endpoints()
    assert list(endpoints) == ["lb1", "lb2", "web1"], "in lab order"
    assert (endpoints["lb1"].port, endpoints["lb2"].port, endpoints["web1"].port) == (2200, 2200, 2201)


def test_refresh_only_without_a_cache_asks_every_running_host(inv):
    inv.inventory.refresh(only=["web1"])
    assert inv.state_calls == 1 and inv.vagrant.calls == [("ssh-config", ["lb1", "lb2", "app1"])]


def test_invalidate_some_hosts_or_all(inv):
    inv.inventory.invalidate(["lb1"])  # no cache yet: nothing to do
    inv.inventory.refresh(running=["lb1", "lb2", "app1"])
    inv.inventory.invalidate(["lb2"])
    assert list(inv.inventory.cached_endpoints()) == ["lb1", "app1"]
    inv.inventory.invalidate()
    assert not inv.inventory.cache_path.exists()
    inv.inventory.invalidate()  # twice is fine


def test_ssh_config_text_reads_the_cache_before_asking(inv):
    first = inv.inventory.ssh_config_text()
    assert inv.inventory.ssh_config_text() == first
    assert len(inv.vagrant.calls) == 1
    assert set(inv.inventory.endpoints()) == {"lb1", "lb2", "app1"}


def test_connections_from_the_cache_ask_no_states(inv, lab):
    inv.inventory.refresh(running=["lb1", "lb2"])
    inv.state_calls = 0
    connections, down = inv.inventory.connections(lab.select(["lb1", "lb2"]))
    assert connections == {"lb1": ("connection", "lb1", 2200), "lb2": ("connection", "lb2", 2201)}
    assert down == [] and inv.state_calls == 0


def test_connections_tell_a_stopped_host_from_a_stale_cache(inv, lab):
    inv.inventory.refresh(running=["lb1"])
    # web1 is stopped: asked once, no refresh, reported down
    connections, down = inv.inventory.connections(lab.select(["lb1", "web1"]))
    assert list(connections) == ["lb1"] and down == ["web1"]
    assert inv.state_calls == 1 and len(inv.vagrant.calls) == 1
    # app1 runs but the cache lacks it (booted elsewhere): the cache is refreshed
    connections, down = inv.inventory.connections(lab.select(["app1", "db1"]))
    assert list(connections) == ["app1"] and down == ["db1"]
    assert inv.vagrant.calls[-1] == ("ssh-config", ["lb1", "lb2", "app1"])
    assert "app1" in inv.inventory.cached_endpoints()


# --- provider choice ------------------------------------------------------------------------------------

def usable_only(*names):
    return lambda name: (name in names, "ok" if name in names else "not installed")


def test_choose_provider_refuses_what_it_cannot_do():
    with pytest.raises(LabError) as caught:
        providers.choose_provider("hyperv", set(), usable_only("docker"))
    assert "virtualbox, libvirt, docker" in caught.value.fix
    with pytest.raises(LabError) as caught:
        providers.choose_provider(None, {"docker", "virtualbox"}, usable_only("docker", "virtualbox"))
    assert "several providers (docker, virtualbox)" in str(caught.value)
    assert "invoke destroy --yes" in caught.value.fix
    with pytest.raises(LabError) as caught:
        providers.choose_provider("libvirt", {"docker"}, usable_only("libvirt", "docker"))
    assert "already runs on docker" in str(caught.value) and "--provider docker" in caught.value.fix


def test_choose_provider_order(monkeypatch):
    anything = usable_only("virtualbox", "libvirt", "docker")
    assert providers.choose_provider("docker", {"docker"}, anything) == "docker"
    assert providers.choose_provider(None, set(), anything, default="libvirt") == "libvirt"
    monkeypatch.setattr(config, "current", lambda: config.Config(provider="docker"))
    assert providers.choose_provider(None, set(), anything) == "docker", "the environment's default"
    assert providers.choose_provider(None, {"libvirt"}, anything) == "libvirt", "the one in use first"
    monkeypatch.setenv("VAGRANT_DEFAULT_PROVIDER", "libvirt")
    monkeypatch.setattr(config, "current", lambda: config.Config.from_environment())
    assert providers.choose_provider(None, set(), anything) == "libvirt"
    with pytest.raises(LabError) as caught:
        providers.choose_provider(None, set(), usable_only("docker"))
    assert "provider libvirt is not usable: not installed" in str(caught.value)
    assert caught.value.fix == libvirt.LIBVIRT.install_fix


def test_provider_in_use_reads_vagrants_machine_ids(tmp_path):
    machines = tmp_path / "machines"
    assert providers.provider_in_use(["lb1", "lb2"], machines) == set()
    (machines / "lb1" / "docker").mkdir(parents=True)
    (machines / "lb1" / "docker" / "id").write_text("abc\n")
    (machines / "lb2" / "virtualbox").mkdir(parents=True)  # a folder without an id: not created
    (machines / "other" / "libvirt").mkdir(parents=True)
    (machines / "other" / "libvirt" / "id").write_text("x")  # not a host of this lab
    assert providers.provider_in_use(["lb1", "lb2"], machines) == {"docker"}
    (machines / "lb2" / "virtualbox" / "id").write_text("uuid")
    assert providers.provider_in_use(["lb1", "lb2"], machines) == {"docker", "virtualbox"}


def test_get_and_usable_dispatch_to_the_provider_objects(monkeypatch):
    assert providers.get("docker") is docker.DOCKER
    monkeypatch.setattr(docker.DOCKER, "usable", lambda: (True, "fake"))
    assert providers.usable("docker") == (True, "fake")


def test_the_base_provider_defaults():
    class Minimal(Provider):
        name = "minimal"
    minimal, machines = Minimal(), SimpleNamespace(halted=[])
    machines.halt = lambda hosts, force=False: machines.halted.append((hosts, force))
    with pytest.raises(NotImplementedError):
        minimal.usable()
    assert minimal.prepare(machines, ["lb1"]) is None
    assert minimal.states(machines) is None
    assert minimal.remove_leftovers(None, None) == []
    minimal.crash(machines, "lb1")
    assert machines.halted == [(["lb1"], True)]
    assert Minimal.has_snapshots is False


# --- libvirt and VirtualBox -------------------------------------------------------------------------------

def fake_run(returncodes, calls=None, stdout=""):
    def run(argv, **kwargs):
        if calls is not None:
            calls.append(argv)
        code = returncodes.get(argv[0], 0) if isinstance(returncodes, dict) else returncodes
        if isinstance(code, BaseException):
            raise code
        if kwargs.get("check") and code:
            raise subprocess.CalledProcessError(code, argv)
        return SimpleNamespace(returncode=code, stdout=stdout, stderr="")
    return SimpleNamespace(run=run, TimeoutExpired=subprocess.TimeoutExpired,
                           CalledProcessError=subprocess.CalledProcessError)


def test_virtualbox_usable(monkeypatch):
    found = {"VBoxManage": None}
    monkeypatch.setattr(virtualbox, "shutil", SimpleNamespace(which=lambda name: found[name]))
    paths = {"/proc/modules": True, "/dev/vboxdrv": False}
    monkeypatch.setattr(virtualbox, "os", SimpleNamespace(path=SimpleNamespace(exists=lambda p: paths[p])))
    assert virtualbox.VIRTUALBOX.usable() == (False, "VBoxManage not found")
    found["VBoxManage"] = "/usr/bin/VBoxManage"
    assert "/dev/vboxdrv" in virtualbox.VIRTUALBOX.usable()[1]
    paths["/dev/vboxdrv"] = True
    monkeypatch.setattr(virtualbox, "subprocess", fake_run(OSError("exec format error")))
    assert virtualbox.VIRTUALBOX.usable() == (False, "VBoxManage does not answer")
    monkeypatch.setattr(virtualbox, "subprocess", fake_run(0))
    assert virtualbox.VIRTUALBOX.usable() == (True, "VBoxManage works")


LISTING = ('"halab-lb1" {0a1b2c3d-0000-4000-8000-000000000001}\n'
           '"halab-web1" {0a1b2c3d-0000-4000-8000-000000000002}\n'
           '"my-own-vm" {0a1b2c3d-0000-4000-8000-000000000003}\n')


def test_virtualbox_leftovers_are_listed_refused_and_removed(monkeypatch, lab, tmp_path):
    monkeypatch.setattr(virtualbox, "checkout_id", lambda: ME)
    web1 = "0a1b2c3d-0000-4000-8000-000000000002"
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        if argv[1:3] == ["guestproperty", "get"]:  # web1 carries this checkout's mark
            value = ME if argv[3] == web1 and argv[4] == virtualbox.CHECKOUT_PROPERTY else ""
            return SimpleNamespace(returncode=0, stdout=f"Value: {value}\n" if value else "No value set!\n")
        return SimpleNamespace(returncode=0, stdout=LISTING, stderr="")

    monkeypatch.setattr(virtualbox, "subprocess", SimpleNamespace(run=run))
    machines_dir = tmp_path / "machines"
    (machines_dir / "lb1" / "virtualbox").mkdir(parents=True)
    (machines_dir / "lb1" / "virtualbox" / "id").write_text("0a1b2c3d-0000-4000-8000-000000000001\n")
    assert virtualbox.VIRTUALBOX.orphans(lab, machines_dir) == {"halab-web1": web1}
    refused = []
    machines = SimpleNamespace(lab=lab, machines_dir=machines_dir,
                               refuse_leftovers=lambda kind, orphans, found=None: refused.append((kind, orphans)))
    virtualbox.VIRTUALBOX.prepare(machines, ["lb1"])
    assert refused == [("VirtualBox VMs", {"halab-web1": web1})]
    calls.clear()
    assert virtualbox.VIRTUALBOX.remove_leftovers(lab, machines_dir) == ["VirtualBox VM halab-lb1",
                                                                       "VirtualBox VM halab-web1"]
    assert ["VBoxManage", "unregistervm", web1, "--delete"] in calls
    assert not any("0a1b2c3d-0000-4000-8000-000000000003" in argv for argv in calls), "my-own-vm is left alone"


def test_virtualbox_that_does_not_answer_lists_no_vms(monkeypatch):
    monkeypatch.setattr(virtualbox, "subprocess", fake_run(1, stdout=LISTING))
    assert virtualbox.list_vms() == {}


# --- docker ------------------------------------------------------------------------------------------------

FakeDocker = fakes.FakeDocker


ME = "0123456789abcdef"  # this checkout's id, as the fixture below writes it


def ps_lines():
    """`docker ps` in the provider's tab-separated format: id, name, state, the lab, the
    checkout and its path."""
    return "".join("\t".join(fields) + "\n" for fields in (
        ("aaa111", "halab-lb1", "running", "halab", ME, "/work/main"),
        ("bbb222", "halab-web1", "exited", "halab", ME, "/work/main"),
        ("ccc333", "halab-extra", "created", "halab", ME, "/work/main"),  # the lab's label, any name
        ("ddd444", "other-web1", "running", "other", "f" * 16, "/elsewhere"),
        ("eee555", "halab-db1", "running", "", "", ""),                    # the lab's name, no marks
        ("fff666", "lonely", "", "", "", "")))


@pytest.fixture
def fake_docker(monkeypatch):
    from fabfile.machines import ownership
    monkeypatch.setattr(ownership, "checkout_id", lambda: ME)
    monkeypatch.setattr(docker, "checkout_id", lambda: ME)
    fake = FakeDocker({("ps", "-a", "--format"): ps_lines()})
    monkeypatch.setattr(docker, "docker", fake)
    return fake


def test_docker_runs_the_cli_and_says_what_failed(monkeypatch):
    results = iter([SimpleNamespace(returncode=0, stdout="ok\n", stderr=""),
                    SimpleNamespace(returncode=1, stdout="", stderr="no such network\n"),
                    SimpleNamespace(returncode=1, stdout="", stderr="no such network\n")])
    seen = []

    def run(argv, **kwargs):
        seen.append((argv, kwargs["timeout"]))
        return next(results)

    monkeypatch.setattr(docker.subprocess, "run", run)
    assert docker.docker("ps").stdout == "ok\n"
    with pytest.raises(LabError) as caught:
        docker.docker("network", "inspect", "x")
    assert str(caught.value).startswith("`docker network inspect x` failed: no such network")
    assert "invoke doctor" in caught.value.fix
    assert docker.docker("network", "inspect", "x", check=False).returncode == 1
    assert seen[0] == (["docker", "ps"], docker.DOCKER_TIMEOUT_S)

    def hangs(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(docker.subprocess, "run", hangs)
    with pytest.raises(LabError, match=f"did not answer within {docker.DOCKER_TIMEOUT_S}s"):
        docker.docker("info")


def test_lab_containers_by_name_or_label(fake_docker, lab):
    found = {name: (c.id, c.state, c.checkout) for name, c in docker.lab_containers(lab).items()}
    assert found == {"halab-lb1": ("aaa111", "running", ME), "halab-web1": ("bbb222", "exited", ME),
                     "halab-extra": ("ccc333", "created", ME), "halab-db1": ("eee555", "running", "")}
    assert "halab.lab" in fake_docker.calls[0][-1]


def test_orphan_containers_are_those_vagrant_does_not_know(fake_docker, lab):
    known = ["aaa111" + "0" * 58, "eee555" + "1" * 58]
    assert docker.orphan_containers(lab, known) == {"halab-web1": "bbb222", "halab-extra": "ccc333"}
    assert docker.orphan_containers(lab, []) == {"halab-lb1": "aaa111", "halab-web1": "bbb222",
                                                 "halab-extra": "ccc333"}, "unmarked: not ours to claim"


def test_remove_lab_leftovers_removes_this_checkouts_containers_then_the_network(fake_docker, lab):
    from fabfile.machines.ownership import MINE, Item, Survey
    fake_docker.answers[("network", "inspect")] = (0, "[]")
    found = Survey([Item("container", "halab-lb1", "aaa111", MINE), Item("container", "halab-extra", "ccc333", MINE),
                    Item("network", "halab", "halab", MINE)])
    assert docker.remove_lab_leftovers(lab, found) == ["container halab-lb1", "container halab-extra",
                                                       "network halab"]
    assert ("rm", "-f", "eee555") not in fake_docker.calls, "not this checkout's: left alone"
    assert ("network", "rm", "halab") in fake_docker.calls
    fake_docker.answers[("network", "inspect")] = (1, "")
    fake_docker.answers[("ps", "-a", "--format")] = ""
    assert docker.remove_lab_leftovers(lab, found) == []


def test_remove_lab_leftovers_removes_this_checkouts_snapshot_images_found_by_label(fake_docker, lab):
    from fabfile.machines.ownership import Survey
    fake_docker.answers[("network", "inspect")] = (1, "")
    fake_docker.answers[("images",)] = (f"1111 halab-snapshots/{ME}/halab-lb1:bare\n"
                                        f"1111 halab-snapshots/{ME}/halab-lb1:mine\n"
                                        f"2222 halab-snapshots/{ME}/halab-web1:provisioned\n")
    assert docker.remove_lab_leftovers(lab, Survey()) == [
        f"3 snapshot image(s) (halab-snapshots/{ME}/halab-lb1:bare, halab-snapshots/{ME}/halab-lb1:mine, "
        f"halab-snapshots/{ME}/halab-web1:provisioned)"]
    asked = next(c for c in fake_docker.calls if c[0] == "images")
    assert f"label=halab.lab=halab" in asked and f"label=halab.checkout={ME}" in asked, "this checkout's only"
    assert fake_docker.calls[-1] == ("image", "rm", "-f", "1111", "2222")


def test_machine_states_from_vagrants_ids_and_one_docker_ps(monkeypatch, lab, tmp_path):
    fake = FakeDocker({("ps", "-a", "--no-trunc"): "aaa111full running\nbbb222full exited\n"})
    monkeypatch.setattr(docker, "docker", fake)
    machines_dir = tmp_path / "machines"
    for host, cid in (("lb1", "aaa111full"), ("web1", "bbb222full"), ("app1", "gone999")):
        (machines_dir / host / "docker").mkdir(parents=True)
        (machines_dir / host / "docker" / "id").write_text(cid + "\n")
    assert docker.machine_states(lab, machines_dir) == {
        "lb1": ("running", "docker"), "lb2": ("not created", "docker"), "web1": ("stopped", "docker"),
        "app1": ("not created", "docker"), "db1": ("not created", "docker")}
    assert len(fake.calls) == 1


NETWORK_INSPECT = """[
 {"Name": "bridge", "IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
  "Labels": {}, "Containers": {"x": {}}},
 {"Name": "host", "IPAM": {"Config": null}, "Labels": null, "Containers": null},
 {"Name": "student2", "IPAM": {"Config": [{"Subnet": "192.168.57.0/24"}, {"Gateway": "x"}]},
  "Labels": {"halab.lab": "student2"}, "Containers": {}}
]"""


def test_networks_lists_subnets_labels_and_containers(monkeypatch):
    monkeypatch.setattr(docker, "docker", FakeDocker({("network", "ls"): "n1\nn2\nn3\n",
                                                      ("network", "inspect"): NETWORK_INSPECT}))
    assert docker.networks() == [
        {"name": "bridge", "subnets": ["172.17.0.0/16"], "labels": {}, "containers": 1},
        {"name": "host", "subnets": [], "labels": {}, "containers": 0},
        {"name": "student2", "subnets": ["192.168.57.0/24"], "labels": {"halab.lab": "student2"},
         "containers": 0}]
    monkeypatch.setattr(docker, "docker", FakeDocker({("network", "ls"): "\n"}))
    assert docker.networks() == []


def test_network_conflicts_skip_subnets_that_do_not_parse(lab):
    assert docker.network_conflicts(lab, [{"name": "odd", "subnets": ["nonsense"], "labels": {}}]) == []


def test_ensure_network_creates_it_once_and_refuses_a_conflict(monkeypatch, lab):
    monkeypatch.setattr(docker, "checkout_id", lambda: ME)
    networks = []
    monkeypatch.setattr(docker, "networks", lambda: networks)
    fake = FakeDocker({("network", "inspect"): (1, "")})
    monkeypatch.setattr(docker, "docker", fake)
    assert docker.ensure_network(lab) is True
    assert fake.calls[-1] == ("network", "create", "--driver", "bridge", "--subnet", "192.168.56.0/24",
                              "--gateway", "192.168.56.1", "--label", "halab.lab=halab",
                              "--label", f"halab.checkout={ME}", "--label",
                              f"halab.checkout-path={docker.checkout_path()}", "-o", "com.docker.network.bridge.name=br-halab", "halab")
    fake.answers[("network", "inspect")] = (0, "[]")
    fake.calls.clear()
    networks.append({"name": "halab", "subnets": ["192.168.56.0/24"], "labels": {"halab.lab": "halab"}})
    assert docker.ensure_network(lab) is False, "already there"
    assert not any(call[:2] == ("network", "create") for call in fake.calls)
    networks.append({"name": "vagrant_network_x", "subnets": ["192.168.56.0/25"], "labels": {}})
    with pytest.raises(LabError, match="overlaps this lab's 192.168.56.0/24"):
        docker.ensure_network(lab)


def test_box_image_built_and_build(monkeypatch):
    runs = []

    def run(argv, **kwargs):
        runs.append(argv)
        return SimpleNamespace(returncode=0, stdout="halab-box:abc123\n", stderr="")

    monkeypatch.setattr(docker.subprocess, "run", run)
    assert docker.box_image() == "halab-box:abc123"
    assert runs == [[str(docker.BOX_SCRIPT), "--name"]]
    fake = FakeDocker({("image", "inspect"): (1, "")})
    monkeypatch.setattr(docker, "docker", fake)
    assert docker.box_built() is False
    assert fake.calls == [("image", "inspect", "halab-box:abc123")]

    class Proc:
        def __init__(self, argv, **kwargs):
            assert argv == [str(docker.BOX_SCRIPT)]
            self.stderr = io.StringIO("[box] step 1\n[box] step 2\n")

        def wait(self):
            return exit_code

    echoed = []
    monkeypatch.setattr(docker.subprocess, "Popen", Proc)
    exit_code = 0
    docker.build_box(echoed.append)
    assert echoed == ["[box] step 1", "[box] step 2"]
    exit_code = 1
    with pytest.raises(LabError, match="building the docker box failed"):
        docker.build_box(echoed.append)


def test_docker_provider_usable(monkeypatch):
    monkeypatch.setattr(docker, "shutil", SimpleNamespace(which=lambda name: None))
    assert docker.DOCKER.usable() == (False, "the docker command is not installed")
    monkeypatch.setattr(docker, "shutil", SimpleNamespace(which=lambda name: "/usr/bin/docker"))
    answers = iter([1, subprocess.TimeoutExpired("docker", 10), 0])

    def run(argv, **kwargs):
        answer = next(answers)
        if isinstance(answer, BaseException):
            raise answer
        return SimpleNamespace(returncode=answer)

    monkeypatch.setattr(docker.subprocess, "run", run)
    assert "daemon is not running" in docker.DOCKER.usable()[1]
    assert docker.DOCKER.usable()[0] is False
    assert docker.DOCKER.usable() == (True, "the docker daemon answers")


def test_docker_provider_prepare_states_leftovers_crash(monkeypatch, lab, tmp_path, capsys):
    machines_dir = tmp_path / "machines"
    (machines_dir / "lb1" / "docker").mkdir(parents=True)
    (machines_dir / "lb1" / "docker" / "id").write_text("aaa111full\n")
    built = {"box": False}
    monkeypatch.setattr(docker, "box_built", lambda: built["box"])
    monkeypatch.setattr(docker, "build_box", lambda echo: (echo("[box] debootstrap"), built.update(box=True)))
    from fabfile.machines.ownership import Survey
    orphans_asked = []
    monkeypatch.setattr(docker, "survey", lambda lab, folder: orphans_asked.append(folder) or Survey())
    created = iter([True, False])
    monkeypatch.setattr(docker, "ensure_network", lambda lab: next(created))
    refused = []
    invalidated = []
    machines = SimpleNamespace(lab=lab, machines_dir=machines_dir,
                               refuse_leftovers=lambda kind, orphans, found=None: refused.append((kind, orphans)),
                               inventory=SimpleNamespace(invalidate=invalidated.append))
    docker.DOCKER.prepare(machines, ["lb1"])
    docker.DOCKER.prepare(machines, ["lb1"])
    out = capsys.readouterr().out
    assert out.count("box   | debootstrap") == 1, "the box is built once"
    assert out.count("created Docker network halab (192.168.56.0/24, bridge br-halab)") == 1
    assert orphans_asked == [machines_dir] * 2 and refused == [("containers", {})] * 2

    monkeypatch.setattr(docker, "machine_states", lambda lab, folder: {"lb1": ("running", "docker")})
    assert docker.DOCKER.states(machines) == {"lb1": ("running", "docker")}
    monkeypatch.setattr(docker, "remove_lab_leftovers", lambda lab, found: ["network halab"])
    assert docker.DOCKER.remove_leftovers(lab, machines_dir) == ["network halab"]
    fake = FakeDocker({})
    monkeypatch.setattr(docker, "docker", fake)
    docker.DOCKER.crash(machines, "web1")
    assert fake.calls == [("kill", "halab-web1")] and invalidated == [["web1"]]


# --- the Machines facade --------------------------------------------------------------------------------

class FakeProvider(Provider):
    def __init__(self, name, has_snapshots=False, usable=True, states=None, leftovers=()):
        self.name, self.has_snapshots = name, has_snapshots
        self.install_fix = f"install {name}"
        self._usable, self._states, self._leftovers = usable, states, list(leftovers)
        self.events = []

    def usable(self):
        return (self._usable, "fake")

    def prepare(self, machines, hosts):
        self.events.append(("prepare", list(hosts)))

    def states(self, machines):
        return None if self._states is None else dict(self._states)

    def remove_leftovers(self, lab, machines_dir, found=None):
        self.events.append(("remove_leftovers", lab.name))
        return self._leftovers

    def crash(self, machines, host):
        self.events.append(("crash", host))

    def host_keys(self, machines, hosts):
        self.events.append(("host_keys", list(hosts)))
        return {h: fake_host_key(h) for h in hosts}


def fake_host_key(host):
    return "ssh-ed25519 " + base64.b64encode(f"key of {host}".encode()).decode()


class FakeInventory:
    def __init__(self, connections=None, down=()):
        self.events = []
        self._connections, self._down = dict(connections or {}), list(down)

    def invalidate(self, hosts=None):
        self.events.append(("invalidate", hosts))

    def refresh(self, running=None, only=None):
        self.events.append(("refresh", running, only))

    def connections(self, hosts):
        self.events.append(("connections", [h.name for h in hosts]))
        return dict(self._connections), list(self._down)


class Lab:
    """A Machines on fake providers and a fake Vagrant, in tmp_path."""

    def __init__(self, monkeypatch, lab, providers_used=(), vagrant_states=None, **fakes):
        self.providers = fakes or {"virtualbox": FakeProvider("virtualbox", has_snapshots=True),
                                   "docker": FakeProvider("docker")}
        monkeypatch.setattr(providers, "PROVIDERS", self.providers)
        self.vagrants = []

        def make_vagrant(lab, provider=None):
            vagrant = FakeVagrant(lab, provider, vagrant_states)
            self.vagrants.append(vagrant)
            return vagrant

        monkeypatch.setattr(facade, "Vagrant", make_vagrant)
        self.machines = Machines(lab)
        for host, provider in providers_used:
            folder = self.machines.machines_dir / host / provider
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "id").write_text(f"{host}-id\n")

    @property
    def vagrant(self):
        return self.machines.vagrant


def other_lab():
    """A second lab, with a state folder of its own."""
    return parse_lab(GOOD.replace("name: halab", "name: other"))


ALL_NEW = {h: ("not created", "virtualbox") for h in ("lb1", "lb2", "web1", "app1", "db1")}


def test_machines_keep_their_state_per_lab(monkeypatch, lab, tmp_path):
    fixture = Lab(monkeypatch, lab)
    assert fixture.machines.machines_dir == tmp_path / "state" / "halab" / "vagrant" / "machines"
    assert fixture.machines.inventory.cache_path == tmp_path / "state" / "halab" / "ssh_config"


def test_vagrant_is_made_once_with_the_provider_in_use(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab, providers_used=[("lb1", "docker")])
    assert fixture.vagrant is fixture.vagrant
    assert len(fixture.vagrants) == 1 and fixture.vagrants[0].provider == "docker"
    mixed = Lab(monkeypatch, other_lab(), providers_used=[("lb1", "docker"), ("lb2", "virtualbox")])
    assert mixed.vagrant.provider is None, "no provider when the lab has none, or several"


def test_up_on_a_snapshot_provider_saves_the_bare_stage_of_new_hosts(monkeypatch, lab, capsys):
    states = dict(ALL_NEW, db1=("poweroff", "virtualbox"))
    fixture = Lab(monkeypatch, lab, vagrant_states=states)
    fixture.machines.inventory = FakeInventory()
    fixture.machines.up(["web1", "db1"], "virtualbox")
    assert fixture.providers["virtualbox"].events == [("prepare", ["web1", "db1"]),
                                                       ("host_keys", ["web1", "db1"])]
    assert fixture.machines.inventory.events == [("invalidate", ["web1", "db1"]),
                                                 ("refresh", None, ["web1", "db1"])]
    calls = fixture.vagrant.calls
    assert calls[0] == ("status",)
    assert ("up", ["web1", "db1"], "virtualbox") in calls
    assert calls[-1] == ("snapshot", "save", ["web1"], "bare", True), "only the host that was new"
    out = capsys.readouterr().out
    assert "lab halab: booting web1, db1 on virtualbox" in out
    assert "web1  | Creating the container..." in out and "Bringing machine" not in out
    assert "lab halab: 2 host(s) up on virtualbox in " in out


def test_up_of_the_whole_lab_tells_the_inventory_what_runs(monkeypatch, lab, capsys):
    fixture = Lab(monkeypatch, lab, vagrant_states=ALL_NEW)
    fixture.machines.inventory = FakeInventory()
    fixture.machines.up(quiet=True)
    everything = ["lb1", "lb2", "web1", "app1", "db1"]
    assert fixture.machines.inventory.events[-1] == ("refresh", everything, None)
    assert fixture.vagrant.calls[-1] == ("snapshot", "save", None, "bare", True), "one save of every machine"
    assert "Creating the container" not in capsys.readouterr().out, "quiet"


def test_up_on_docker_takes_no_snapshot_and_asks_vagrant_no_states(monkeypatch, lab):
    docker_states = {h: ("not created", "docker") for h in ALL_NEW}
    fixture = Lab(monkeypatch, lab, vagrant_states=ALL_NEW,
                  virtualbox=FakeProvider("virtualbox"), docker=FakeProvider("docker", states=docker_states))
    fixture.machines.inventory = FakeInventory()
    fixture.machines.up(["lb1"], "docker")
    assert fixture.providers["docker"].events == [("prepare", ["lb1"]), ("host_keys", ["lb1"])]
    assert [c[0] for c in fixture.vagrant.calls] == ["up"]


def test_up_refuses_an_unusable_provider_before_anything(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab, docker=FakeProvider("docker", usable=False))
    with pytest.raises(LabError, match="provider docker is not usable"):
        fixture.machines.up(None, "docker")
    assert fixture.vagrants == []


def test_up_checks_the_network_against_virtualbox(monkeypatch):
    lab = parse_lab(GOOD.replace("192.168.56.", "10.20.30."))
    fixture = Lab(monkeypatch, lab)
    with pytest.raises(LabError, match="outside the ranges VirtualBox allows"):
        fixture.machines.up(None, "virtualbox")
    assert fixture.providers["virtualbox"].events == []


def test_states_fast_path_from_the_provider(monkeypatch, lab):
    fast = {"lb1": ("running", "docker")}
    fixture = Lab(monkeypatch, lab, providers_used=[("lb1", "docker")],
                  docker=FakeProvider("docker", states=fast), virtualbox=FakeProvider("virtualbox"))
    assert fixture.machines.states() == fast
    assert fixture.vagrants == [], "Vagrant not even made"


def test_states_from_vagrant_otherwise(monkeypatch, lab):
    vagrant_states = {"lb1": ("running", "virtualbox"), "lb2": ("not created", None)}
    fixture = Lab(monkeypatch, lab, providers_used=[("lb1", "virtualbox")], vagrant_states=vagrant_states)
    assert fixture.machines.states() == {"lb1": ("running", "virtualbox"), "lb2": ("not created", "-")}
    fresh = Lab(monkeypatch, other_lab(), vagrant_states=vagrant_states)  # nothing created yet
    assert fresh.machines.states()["lb2"] == ("not created", "-")


def test_halt_forgets_the_endpoints_then_halts(monkeypatch, lab, capsys):
    fixture = Lab(monkeypatch, lab)
    fixture.machines.inventory = FakeInventory()
    fixture.machines.halt(["lb2", "web1"], force=True)
    assert fixture.machines.inventory.events == [("invalidate", ["lb2", "web1"])]
    assert fixture.vagrant.calls == [("halt", ["lb2", "web1"], True)]
    out = capsys.readouterr().out.splitlines()
    assert out == ["lb2   | halting (forced)", "web1  | halting (forced)", "lb2   | halted", "web1  | halted"]


def test_destroy_destroys_what_exists_and_the_leftovers_of_usable_providers(monkeypatch, lab, capsys):
    states = dict(ALL_NEW, lb1=("running", "docker"), web1=("stopped", "docker"))
    fixture = Lab(monkeypatch, lab, vagrant_states=states,
                  virtualbox=FakeProvider("virtualbox", usable=False, leftovers=["VirtualBox VM x"]),
                  docker=FakeProvider("docker", leftovers=["container halab-db1", "network halab"]))
    fixture.machines.inventory = FakeInventory()
    fixture.machines.destroy()
    assert fixture.machines.inventory.events == [("invalidate", None)]
    assert fixture.vagrant.calls == [("status",), ("destroy", ["lb1", "web1"])]
    assert fixture.providers["virtualbox"].events == [], "an unusable provider is not asked"
    assert fixture.providers["docker"].events == [("remove_leftovers", "halab")]
    out = capsys.readouterr().out
    assert "leftover| removed container halab-db1\nleftover| removed network halab\n" in out
    assert out.rstrip().endswith("lab halab: destroyed")


def test_destroy_of_a_lab_never_created_calls_no_vagrant_destroy(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab, vagrant_states=ALL_NEW)
    fixture.machines.inventory = FakeInventory()
    fixture.machines.destroy()
    assert fixture.vagrant.calls == [("status",)]


def test_connections_name_the_hosts_that_are_not_running(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab)
    fixture.machines.inventory = FakeInventory({"lb1": "conn-lb1"})
    assert fixture.machines.connections(lab.select(["lb1"])) == {"lb1": "conn-lb1"}
    fixture.machines.inventory = FakeInventory({"lb1": "conn-lb1"}, down=["web1", "db1"])
    with pytest.raises(LabError) as caught:
        fixture.machines.connections(lab.select(["lb1", "web1", "db1"]))
    assert str(caught.value).startswith("not running: web1, db1")
    assert caught.value.fix == "boot them: invoke up --hosts web1,db1"


def test_ssh_argv_through_the_cached_ssh_config_with_strict_host_keys(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab)
    cache = fixture.machines.inventory.cache_path
    cache.write_text(block("lb1") + block("lb2"))
    state.update_known_hosts(lab, record={"lb1": "ssh-ed25519 KEY1"})
    known = state.known_hosts_path(lab)
    strict = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
              "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias=lb1", "-o", "LogLevel=ERROR"]
    assert fixture.machines.ssh_argv("lb1") == ["ssh", "-F", str(cache), *strict, "lb1"]
    assert fixture.machines.ssh_argv("lb1", "uptime", tty=True) == ["ssh", "-F", str(cache), *strict, "-t",
                                                                    "lb1", "--", "uptime"]
    with pytest.raises(LabError) as caught:
        fixture.machines.ssh_argv("lb2")
    assert "no SSH host key is recorded for lb2" in str(caught.value) and "--hosts lb2" in caught.value.fix
    with pytest.raises(LabError, match="no host named 'lb9'"):
        fixture.machines.ssh_argv("lb9")
    with pytest.raises(LabError) as caught:
        fixture.machines.ssh_argv("web1")
    assert "web1 is not running" in str(caught.value) and "--hosts web1" in caught.value.fix


class FakeConnection:
    def __init__(self, exited=0, stdout="", stderr=""):
        self.result = SimpleNamespace(exited=exited, stdout=stdout, stderr=stderr)
        self.commands = []

    def run(self, command, **kwargs):
        self.commands.append(("run", command))
        return self.result

    def sudo(self, command, **kwargs):
        self.commands.append(("sudo", command))
        return self.result


def test_run_counts_a_down_host_as_failed(monkeypatch, lab, capsys):
    fixture = Lab(monkeypatch, lab)
    lb1 = FakeConnection(stdout="up 3 days\n")
    fixture.machines.inventory = FakeInventory({"lb1": lb1}, down=["db1"])
    results = fixture.machines.run(lab.select(["lb1", "db1"]), "uptime", sudo=True)
    assert lb1.commands == [("sudo", "uptime")]
    assert results["lb1"].ok and results["lb1"].stdout == "up 3 days\n"
    assert results["db1"] == HostResult("db1", -1, error="not running") and not results["db1"].ok
    out = capsys.readouterr().out
    assert "lb1   | up 3 days" in out and "db1   | not running" in out


def test_crash_goes_through_the_provider(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab, providers_used=[("lb1", "docker")])
    fixture.machines.crash("lb1")
    assert fixture.providers["docker"].events == [("crash", "lb1")]


def test_refuse_leftovers(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab)
    fixture.machines.refuse_leftovers("containers", {})
    with pytest.raises(LabError) as caught:
        fixture.machines.refuse_leftovers("containers", {"halab-web1": "b", "halab-lb1": "a"})
    assert "containers of lab 'halab' exist" in str(caught.value)
    assert "halab-lb1, halab-web1" in str(caught.value) and "invoke destroy --yes" in caught.value.fix


@pytest.mark.parametrize("line,verbose,printed", [
    ("==> lb1: Creating the container...", False, "lb1   | Creating the container...\n"),
    ("    lb1: Key inserted!", False, ""),
    ("    lb1: Key inserted!", True, "lb1   | Key inserted!\n"),
    ("==> lb1: Machine not provisioned because `--no-provision` is specified.", False, ""),
    ("==> lb1: Machine not provisioned because `--no-provision` is specified.", True,
     "lb1   | Machine not provisioned because `--no-provision` is specified.\n"),
    ("Bringing machine 'lb1' up with 'docker' provider...", False, ""),
    ("Bringing machine 'lb1' up with 'docker' provider...", True,
     "Bringing machine 'lb1' up with 'docker' provider...\n"),
    ("   \n", True, ""),
    ("==> lb1: ", False, ""),
])
def test_echo_vagrant_line(line, verbose, printed, capsys):
    echo_vagrant_line(line, verbose)
    assert capsys.readouterr().out == printed


# --- snapshots ---------------------------------------------------------------------------------------------

def test_snapshot_delete_and_names(monkeypatch, lab, capsys):
    fixture = Lab(monkeypatch, lab, providers_used=[("lb1", "virtualbox")])
    Snapshots(fixture.machines).delete("exercise-1", ["lb1"])
    assert fixture.vagrant.calls == [("snapshot", "delete", ["lb1"], "exercise-1", False)]
    assert "lb1   | snapshot exercise-1 deleted" in capsys.readouterr().out
    for name in ("", "-dash", "has space", "x" * 64, None):
        with pytest.raises(LabError, match="is not a snapshot name"):
            check_name(name)
    check_name("v1.2_ok-3")


def test_stage_snapshot_only_where_the_provider_has_snapshots(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab, providers_used=[("lb1", "virtualbox")])
    take_stage_snapshot(fixture.machines, "provisioned", [])
    assert fixture.vagrants == []
    take_stage_snapshot(fixture.machines, "provisioned", ["lb1", "lb2"])
    assert fixture.vagrant.calls == [("snapshot", "save", ["lb1", "lb2"], "provisioned", True)]
    on_docker = Lab(monkeypatch, other_lab(), providers_used=[("lb1", "docker")])
    take_stage_snapshot(on_docker.machines, "provisioned", ["lb1"])
    assert on_docker.vagrants == [], "docker has no snapshots: nothing asked of Vagrant"


def test_up_records_the_keys_of_new_hosts_and_of_hosts_without_one(monkeypatch, lab, capsys):
    docker_states = dict({h: ("running", "docker") for h in ALL_NEW}, web1=("not created", "docker"))
    fixture = Lab(monkeypatch, lab, virtualbox=FakeProvider("virtualbox"),
                  docker=FakeProvider("docker", states=docker_states))
    fixture.machines.inventory = FakeInventory()
    state.update_known_hosts(lab, record={"lb1": "ssh-ed25519 OLD1", "web1": "ssh-ed25519 OLDWEB"})
    fixture.machines.up(["lb1", "lb2", "web1"], "docker")
    assert ("host_keys", ["lb2", "web1"]) in fixture.providers["docker"].events, \
        "web1 was created now, lb2 had no key; lb1 keeps the key recorded at its creation"
    assert state.read_known_hosts(lab) == {"lb1": "ssh-ed25519 OLD1", "lb2": fake_host_key("lb2"),
                                           "web1": fake_host_key("web1")}
    assert "web1  | host key recorded: SHA256:" in capsys.readouterr().out


def test_up_with_every_key_recorded_records_nothing(monkeypatch, lab):
    running = {h: ("running", "docker") for h in ALL_NEW}
    fixture = Lab(monkeypatch, lab, virtualbox=FakeProvider("virtualbox"),
                  docker=FakeProvider("docker", states=running))
    fixture.machines.inventory = FakeInventory()
    state.update_known_hosts(lab, record={"lb1": "ssh-ed25519 K"})
    fixture.machines.up(["lb1"], "docker")
    assert not [e for e in fixture.providers["docker"].events if e[0] == "host_keys"]


def test_docker_reads_each_new_hosts_key_out_of_band(monkeypatch, lab):
    fake = FakeDocker({("exec", "halab-lb1", "cat", docker.HOST_KEY_FILE): "ssh-ed25519 AAAAlb1 root@lb1\n",
                       ("exec", "halab-web1", "cat", docker.HOST_KEY_FILE): "ssh-ed25519 AAAAweb1 root@web1\n"})
    monkeypatch.setattr(docker, "docker", fake)
    machines = SimpleNamespace(lab=lab)
    assert docker.DOCKER.host_keys(machines, ["lb1", "web1"]) == {"lb1": "ssh-ed25519 AAAAlb1",
                                                                   "web1": "ssh-ed25519 AAAAweb1"}
    assert sorted(c[1] for c in fake.calls) == ["halab-lb1", "halab-web1"], "docker exec, never the network"


def test_docker_host_without_a_key_file_is_a_lab_error(monkeypatch, lab):
    monkeypatch.setattr(docker, "docker", FakeDocker({("exec",): ""}))
    with pytest.raises(LabError) as caught:
        docker.DOCKER.host_keys(SimpleNamespace(lab=lab), ["db1"])
    assert caught.value.host == "db1" and "reset --recreate --hosts db1" in caught.value.fix


def test_destroy_forgets_every_host_key(monkeypatch, lab):
    fixture = Lab(monkeypatch, lab, virtualbox=FakeProvider("virtualbox"),
                  docker=FakeProvider("docker", states={h: ("not created", "docker") for h in ALL_NEW}))
    fixture.machines.inventory = FakeInventory()
    state.update_known_hosts(lab, record={"lb1": "ssh-ed25519 K"})
    fixture.machines.destroy()
    assert state.read_known_hosts(lab) == {}


def test_delegated_cgroups_are_found_in_every_hierarchy_deepest_first(lab, tmp_path):
    root = tmp_path / "cgroup"
    for folder in ("systemd/halab/halab-lb1/init.scope", "systemd/halab/halab-lb1/system.slice/ssh.service",
                   "memory/halab/halab-lb1", "memory/halab/halab-lb2", "systemd/docker/abc"):
        (root / folder).mkdir(parents=True)
    (root / "cpu,cpuacct").symlink_to(root / "memory")
    found = [str(p.relative_to(root)) for p in docker.delegated_cgroups(lab, "lb1", root)]
    assert sorted(found) == ["memory/halab/halab-lb1", "systemd/halab/halab-lb1",
                             "systemd/halab/halab-lb1/init.scope", "systemd/halab/halab-lb1/system.slice",
                             "systemd/halab/halab-lb1/system.slice/ssh.service"], "a symlinked hierarchy once"
    assert all(found.index(f) < found.index(str(Path(f).parent)) for f in found
               if str(Path(f).parent) in found), "each folder before its parent"
    docker.remove_delegated_cgroups(lab, ["lb1"], root)
    assert not (root / "systemd/halab/halab-lb1").exists() and not (root / "memory/halab/halab-lb1").exists()
    assert (root / "memory/halab/halab-lb2").is_dir() and (root / "systemd/docker/abc").is_dir(), \
        "only the named hosts' folders"


def test_docker_is_refused_on_a_cgroup_v2_only_host(monkeypatch, tmp_path):
    assert docker.cgroup_v1_host(tmp_path) is False
    (tmp_path / "systemd").mkdir()
    assert docker.cgroup_v1_host(tmp_path) is True
    monkeypatch.setattr(docker, "cgroup_v1_host", lambda: False)
    monkeypatch.setattr(docker.shutil, "which", lambda name: "/usr/bin/docker")
    monkeypatch.setattr(docker.subprocess, "run", lambda *a, **k: SimpleNamespace(returncode=0))
    ok, why = docker.DOCKER.usable()
    assert ok is False and "cgroup v2 only" in why
