"""The libvirt provider as data: virsh's output parsed, the checkout's mark read, who owns
which domain and network, which networks stand in the way, and the provider chosen when
nothing asks. No libvirt, QEMU or Vagrant is run."""
import ipaddress
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import fabfile.machines.providers.libvirt as libvirt
from fabfile.core.lab import parse_lab
from fabfile.machines.ownership import FOREIGN, MINE, UNKNOWN
from fabfile.machines.providers import choose_provider, default_provider
from tests.unit.test_lab import GOOD

ME, OTHER = "1111222233334444", "9999888877776666"

VIRSH_LIST = """ 3    halab-lb1    running
 -    halab-lb2    shut off
 -    other-web1   running
"""

NETWORK_XML = """<network>
  <name>halab</name>
  <forward mode='none'/>
  <bridge name='virbr1' stp='on' delay='0'/>
  <ip address='192.168.56.1' netmask='255.255.255.0'/>
</network>"""


def lab():
    return parse_lab(GOOD)


def test_virsh_list_parsed_into_names_and_states():
    assert libvirt.parse_domain_list(VIRSH_LIST) == {
        "halab-lb1": "running", "halab-lb2": "shut off", "other-web1": "running"}


def test_the_checkout_mark_is_read_from_the_description():
    mark = libvirt.parse_mark(f"halab.lab=halab halab.checkout={ME} halab.checkout-path=/src/halab\n")
    assert mark == {"halab.lab": "halab", "halab.checkout": ME, "halab.checkout-path": "/src/halab"}
    assert libvirt.parse_mark("") == {}


def test_network_subnets_from_netmask_or_prefix():
    assert libvirt.network_subnets(NETWORK_XML) == [ipaddress.ip_network("192.168.56.0/24")]
    assert libvirt.network_subnets("<network><ip address='10.1.2.1' prefix='16'/></network>") == \
        [ipaddress.ip_network("10.1.0.0/16")]
    assert libvirt.network_subnets("<network><name>isolated</name></network>") == []


def test_network_conflicts_overlap_and_wrong_subnet():
    the_lab = lab()
    same = {"halab": [ipaddress.ip_network("192.168.56.0/24")],
            "vagrant-libvirt": [ipaddress.ip_network("192.168.121.0/24")]}
    assert libvirt.network_conflicts(the_lab, same) == []
    overlapping = {"hvirt2": [ipaddress.ip_network("192.168.56.0/25")]}
    problem, = libvirt.network_conflicts(the_lab, overlapping)
    assert "hvirt2" in problem.problem and "overlaps" in problem.problem
    assert "LAB=hvirt2 invoke destroy" in problem.fix
    moved = {"halab": [ipaddress.ip_network("192.168.57.0/24")]}
    problem, = libvirt.network_conflicts(the_lab, moved)
    assert "192.168.57.0/24" in problem.problem and "invoke destroy" in problem.fix


def survey(domains, marks=None, uuids=None, network=None, known=(), used=False):
    return libvirt.survey_domains(lab(), domains, marks or {}, uuids or {}, network, set(known), used, ME)


def test_survey_owners_from_marks_and_vagrants_ids():
    found = survey({"halab-lb1": "running", "halab-lb2": "shut off", "halab-web1": "running",
                    "other-web1": "running"},
                   marks={"halab-lb1": {"halab.checkout": ME},
                          "halab-lb2": {"halab.checkout": OTHER, "halab.checkout-path": "/elsewhere"}},
                   uuids={"halab-web1": "u-web1"}, known={"u-web1"})
    owners = {i.name: (i.owner, i.host) for i in found.items}
    assert owners == {"halab-lb1": (MINE, "lb1"), "halab-lb2": (FOREIGN, "lb2"), "halab-web1": (MINE, "web1")}
    assert found.hosts_not_mine == {"lb2"}
    assert found.orphans == {"halab-lb1": "halab-lb1"}  # marked ours, unknown to Vagrant


def test_an_unmarked_unknown_domain_is_left_alone_with_the_commands_to_remove_it():
    found = survey({"halab-db1": "running"})
    assert [i.owner for i in found.items] == [UNKNOWN]
    assert found.by_hand == ["virsh destroy halab-db1; virsh undefine halab-db1 --remove-all-storage"]


def test_the_network_belongs_to_the_owner_of_its_domains():
    mine = {"halab-lb1": {"halab.checkout": ME}}
    found = survey({"halab-lb1": "running"}, marks=mine, network=["halab-lb1"])
    assert [(i.kind, i.owner) for i in found.items][-1] == ("network", MINE)
    theirs = {"halab-lb1": {"halab.checkout": OTHER}}
    found = survey({"halab-lb1": "running"}, marks=theirs, network=["halab-lb1"])
    assert found.items[-1].owner == FOREIGN
    assert survey({}, network=[], used=True).items[-1].owner == MINE
    found = survey({}, network=[], used=False)
    assert found.items[-1].owner == UNKNOWN
    assert found.by_hand == ["virsh net-destroy halab; virsh net-undefine halab"]


def test_machine_states_in_vagrants_words(tmp_path, monkeypatch):
    for host in ("lb1", "lb2", "web1"):
        (tmp_path / host / "libvirt").mkdir(parents=True)
        (tmp_path / host / "libvirt" / "id").write_text("uuid")
    monkeypatch.setattr(libvirt, "virsh", lambda *args, **kw: SimpleNamespace(stdout=VIRSH_LIST, returncode=0))
    states = libvirt.machine_states(lab(), tmp_path)
    assert states["lb1"] == ("running", "libvirt")
    assert states["lb2"] == ("shutoff", "libvirt")
    assert states["web1"] == ("not created", "libvirt")  # Vagrant knew it; libvirt has it no more
    assert states["db1"] == ("not created", "libvirt")


def usable_only(*names):
    return lambda name: (name in names, "why")


@pytest.mark.parametrize("usable, accel, expected", [
    (("virtualbox", "libvirt", "docker"), "kvm", "virtualbox"),
    (("libvirt", "docker"), "kvm", "libvirt"),
    (("libvirt", "docker"), "tcg", "docker"),
    (("libvirt", "docker"), "", "docker"),
    (("docker",), "kvm", "docker"),
])
def test_the_default_provider(usable, accel, expected):
    assert default_provider(usable_only(*usable), lambda: accel)[0] == expected
    assert choose_provider(None, set(), usable_only(*usable), accelerator=lambda: accel) == expected


def test_software_emulation_is_said_and_libvirt_is_still_there_when_asked():
    choice, why = default_provider(usable_only("libvirt", "docker"), lambda: "tcg")
    assert choice == "docker" and "software emulation" in why and "--provider libvirt" in why
    assert choose_provider("libvirt", set(), usable_only("libvirt", "docker"), accelerator=lambda: "tcg") == "libvirt"


def fake_subprocess(answers):
    """run(argv) answers by argv[0]'s last part: (returncode, stdout) or an exception."""
    def run(argv, **kwargs):
        code, out = answers.get(Path(argv[0]).name, (0, ""))
        if isinstance(code, BaseException):
            raise code
        return SimpleNamespace(returncode=code, stdout=out, stderr="")
    return SimpleNamespace(run=run, TimeoutExpired=subprocess.TimeoutExpired)


def test_usable_says_which_accelerator(monkeypatch):
    plugin = []
    monkeypatch.setattr(libvirt, "plugin_installed", lambda: bool(plugin))
    monkeypatch.setattr(libvirt.shutil, "which", lambda name: "/usr/bin/" + name)
    assert libvirt.LIBVIRT.usable() == (False, "the vagrant-libvirt plugin is not installed")
    plugin.append("vagrant-libvirt")
    monkeypatch.setattr(libvirt, "subprocess", fake_subprocess({"virsh": (1, "")}))
    assert libvirt.LIBVIRT.usable()[1].startswith("libvirtd does not answer")
    monkeypatch.setattr(libvirt, "subprocess", fake_subprocess({"virsh": (subprocess.TimeoutExpired("virsh", 10), "")}))
    assert libvirt.LIBVIRT.usable()[0] is False
    for accel, ok, words in (("kvm", True, "KVM"), ("tcg", True, "software emulation"),
                             ("none", False, "boots no guest"), ("", True, "first `invoke up`")):
        monkeypatch.setattr(libvirt, "subprocess", fake_subprocess({"probe-accelerator.sh": (0, accel + "\n")}))
        assert libvirt.LIBVIRT.usable()[0] is ok and words in libvirt.LIBVIRT.usable()[1]


def test_ssh_timeouts_scale_with_the_providers_slowness(monkeypatch):
    from fabfile.remote import connection
    monkeypatch.setattr(connection, "_slowness", 1.0)
    assert connection.scaled(30) == 30 and connection.scaled(None) is None
    monkeypatch.setattr(libvirt, "accelerator", lambda probe=True: "tcg")
    connection.set_slowness(libvirt.LIBVIRT.slowness())
    assert connection.scaled(30) == 30 * libvirt.TCG_SLOWNESS
    monkeypatch.setattr(libvirt, "accelerator", lambda probe=True: "kvm")
    connection.set_slowness(libvirt.LIBVIRT.slowness())
    assert connection.scaled(30) == 30


VOLUME_LIST = """\
 halab-libvirt-3d0886705cd3_vagrant_box_image_0_1795472027_box.img   /pool/halab-libvirt-3d0886705cd3_vagrant_box_image_0_1795472027_box.img
 halab-libvirt-6f39512b3577_vagrant_box_image_0_1795484596_box.img   /pool/halab-libvirt-6f39512b3577_vagrant_box_image_0_1795484596_box.img
 halab-libvirt-0a0a0a0a0a0a_vagrant_box_image_0_1795400000_box.img   /pool/halab-libvirt-0a0a0a0a0a0a_vagrant_box_image_0_1795400000_box.img
 other-vm.qcow2                                                      /pool/other-vm.qcow2
 hvirt-lb1.img                                                       /pool/hvirt-lb1.img
"""
OVERLAY_XML = """<volume type='file'><name>hvirt-lb1.img</name>
  <target><path>/pool/hvirt-lb1.img</path></target>
  <backingStore><path>/pool/halab-libvirt-0a0a0a0a0a0a_vagrant_box_image_0_1795400000_box.img</path>
    <format type='qcow2'/></backingStore></volume>"""


def test_only_box_images_that_no_box_and_no_disk_needs_are_stale():
    volumes = libvirt.parse_volume_list(VOLUME_LIST)
    assert volumes["other-vm.qcow2"] == "/pool/other-vm.qcow2" and len(volumes) == 5
    backing = {libvirt.backing_path(OVERLAY_XML), libvirt.backing_path("<volume><name>x</name></volume>")}
    assert backing == {"/pool/halab-libvirt-0a0a0a0a0a0a_vagrant_box_image_0_1795400000_box.img", None}
    current = "halab-libvirt-6f39512b3577"
    stale = libvirt.stale_box_images(volumes, lambda box: box == current, backing)
    assert stale == ["halab-libvirt-3d0886705cd3_vagrant_box_image_0_1795472027_box.img"]
    assert libvirt.stale_box_images(volumes, lambda box: True, set()) == []


def test_pruning_reads_volumes_only_when_an_image_looks_stale(monkeypatch):
    calls = []

    def virsh(*args, **kwargs):
        calls.append(args[0])
        out = {"vol-list": VOLUME_LIST, "vol-dumpxml": OVERLAY_XML if "hvirt-lb1.img" in args
               else "<volume/>"}.get(args[0], "")
        return SimpleNamespace(returncode=0, stdout=out, stderr="")
    monkeypatch.setattr(libvirt, "virsh", virsh)
    monkeypatch.setattr(libvirt, "box_added", lambda box: True)
    assert libvirt.prune_box_images() == [] and calls == ["vol-list"]
    calls.clear()
    monkeypatch.setattr(libvirt, "box_added", lambda box: box == "halab-libvirt-6f39512b3577")
    assert libvirt.prune_box_images() == ["halab-libvirt-3d0886705cd3_vagrant_box_image_0_1795472027_box.img"]
    assert calls == ["vol-list", "vol-dumpxml", "vol-dumpxml", "vol-delete"]
