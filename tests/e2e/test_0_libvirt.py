"""The lab on libvirt, for real: five VMs under QEMU (KVM where it boots a guest, else
software emulation), booted, provisioned, verified, broken by all five drills, halted and
booted again, snapshotted and restored, and destroyed without leftovers.

Runs when HALAB_E2E_PROVIDERS names libvirt (`.ci/run` does where QEMU boots a guest),
first and alone: its lab is destroyed before the docker lab boots. About 20 minutes
under TCG on two cores; its waits are sized for that."""
import re
import subprocess

import pytest

from fabfile.checks.netsafety import ensure_local_route
from fabfile.machines.providers.libvirt import STORAGE_POOL, box_name, ensure_storage_pool
from tests.e2e.conftest import LIBVIRT_LAB_FILE, PROVIDERS, LabCLI, read_json

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif("libvirt" not in PROVIDERS,
                                 reason="libvirt is not in HALAB_E2E_PROVIDERS (e.g. docker,libvirt)")]

BOOT_S = 1800       # five VMs under TCG: about 4 min alone, more on a busy machine
PROVISION_S = 1200
DRILL_S = 900       # a halt or crash drill boots the balancer again
# What vagrant-libvirt leaves in the pool when a new recipe replaces the box: `up` deletes it.
STALE_BOX_IMAGE = "halab-libvirt-0000000e2e00_vagrant_box_image_0_0_box.img"


def virsh(*args):
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def vm_lab():
    cli = LabCLI(LIBVIRT_LAB_FILE, provider="libvirt")
    ensure_storage_pool()
    virsh("vol-create-as", STORAGE_POOL, STALE_BOX_IMAGE, "1M", "--format", "qcow2")
    assert STALE_BOX_IMAGE in virsh("vol-list", STORAGE_POOL).stdout
    cli.invoke("up", "--provider", "libvirt", timeout=BOOT_S)
    yield cli
    cli.invoke("destroy", "--yes", check=False, timeout=600)


@pytest.fixture(scope="module")
def vm_provisioned(vm_lab, tmp_path_factory):
    report = tmp_path_factory.mktemp("libvirt") / "cold.json"
    vm_lab.invoke("provision", "--json", str(report), timeout=PROVISION_S)
    return read_json(report)


def domains(cli):
    return {line.split()[1]: line.split(None, 2)[2].strip()
            for line in virsh("list", "--all").stdout.splitlines() if line.strip()
            and line.split()[1].startswith(f"{cli.lab.name}-")}


def test_up_deletes_the_image_of_a_replaced_box_and_keeps_the_one_in_use(vm_lab):
    images = [line.split()[0] for line in virsh("vol-list", STORAGE_POOL).stdout.splitlines()
              if "_vagrant_box_image_" in line]
    assert STALE_BOX_IMAGE not in images
    assert any(image.startswith(box_name() + "_") for image in images), images


def test_up_boots_five_marked_domains_on_the_labs_own_network(vm_lab):
    name = vm_lab.lab.name
    assert domains(vm_lab) == {f"{name}-{h}": "running" for h in vm_lab.lab.host_names}
    assert f"halab.checkout-path=" in virsh("desc", f"{name}-lb1").stdout
    net = virsh("net-dumpxml", name).stdout
    assert f"<name>{name}</name>" in net and vm_lab.lab.gateway in net
    status = vm_lab.invoke("status").stdout
    for host in vm_lab.lab.host_names:
        row = next(l for l in status.splitlines() if l.startswith(f"{host} "))
        assert " running " in row and " libvirt " in row, row


def test_a_second_lab_on_an_overlapping_network_is_refused_before_anything_changes(vm_lab, tmp_path):
    lab = vm_lab.lab
    second = f"{lab.name}2"
    hosts = "\n".join(f"  {h.name}: {{role: {h.role}, ip: {h.ip}, memory: {h.memory}}}" for h in lab.hosts)
    lab_file = tmp_path / "second.yml"
    lab_file.write_text(f"name: {second}\nnetwork: {lab.network}\nvip: {lab.vip}\nhosts:\n{hosts}\n")
    result = LabCLI(lab_file, provider="libvirt").invoke("up", "--provider", "libvirt", check=False)
    said = result.stdout + result.stderr
    assert result.returncode != 0 and f"libvirt network '{lab.name}'" in said and "overlaps" in said, said
    assert not [d for d in virsh("list", "--all", "--name").stdout.split() if d.startswith(f"{second}-")]
    assert virsh("net-info", second).returncode != 0


def test_ssh_and_run_reach_every_vm(vm_lab):
    out = vm_lab.run("systemd-detect-virt").stdout
    for host in vm_lab.lab.host_names:
        assert any(line.startswith(host) and line.rstrip().endswith(("qemu", "kvm"))
                   for line in out.splitlines()), out
    assert vm_lab.invoke("ssh", "db1", "-c", "hostname").stdout.split() == ["db1"]


def test_provision_then_a_second_provision_changes_nothing(vm_lab, vm_provisioned, tmp_path):
    assert vm_provisioned["failed"] == 0
    assert set(vm_provisioned["hosts"]) == set(vm_lab.lab.host_names)
    report = tmp_path / "again.json"
    out = vm_lab.invoke("provision", "--json", str(report), timeout=PROVISION_S).stdout
    again = read_json(report)
    assert again["changed"] == 0 and again["failed"] == 0, out
    assert "nothing changed" in out


def test_verify_passes(vm_lab, vm_provisioned, tmp_path):
    report = tmp_path / "verify.json"
    vm_lab.invoke("verify", "--json", str(report), timeout=300)
    assert read_json(report)["passed"]


@pytest.mark.parametrize("scenario", ["haproxy", "keepalived", "network", "crash", "halt"])
def test_drill_keeps_every_write_without_split_brain(vm_lab, vm_provisioned, tmp_path, scenario):
    ensure_local_route(vm_lab.lab.vip, vm_lab.lab.network)
    report = tmp_path / "drill.json"
    vm_lab.invoke("failover", "--scenario", scenario, "--json", str(report), timeout=DRILL_S)
    drill = read_json(report)["drills"][0]
    assert drill["gap_ms"] is not None, drill
    assert drill["writes_found"] == drill["writes_acked"] > 0, drill
    assert not drill["split_brain"] and drill["recovered"], drill


def test_halted_vm_shows_as_shut_off_and_boots_again(vm_lab, vm_provisioned):
    vm_lab.invoke("halt", "--hosts", "web1", timeout=600)
    assert domains(vm_lab)[f"{vm_lab.lab.name}-web1"] == "shut off"
    result = vm_lab.run("true", check=False)
    assert result.returncode != 0 and "web1 (not running)" in result.stderr
    vm_lab.invoke("up", "--hosts", "web1", timeout=BOOT_S)
    vm_lab.invoke("verify", timeout=300)


def test_a_snapshot_restores_what_was_saved(vm_lab, vm_provisioned):
    vm_lab.invoke("snapshot.save", "e2e", "--hosts", "app1", timeout=600)
    try:
        vm_lab.run("sudo touch /var/tmp/after-snapshot", "--hosts", "app1")
        vm_lab.invoke("snapshot.restore", "e2e", "--hosts", "app1", timeout=600)
        gone = vm_lab.run("test ! -e /var/tmp/after-snapshot", "--hosts", "app1", check=False)
        assert gone.returncode == 0, gone.stdout + gone.stderr
    finally:
        vm_lab.invoke("snapshot.delete", "e2e", "--hosts", "app1", check=False, timeout=600)
    vm_lab.invoke("verify", timeout=300)


def test_broken_web1_and_db1_are_back_after_one_reset_in_under_20_s(vm_lab, vm_provisioned):
    vm_lab.run("sudo rm /etc/nginx/sites-available/halab && sudo systemctl stop nginx", "--hosts", "web1")
    vm_lab.run("sudo systemctl stop mariadb && sudo rm -rf /var/lib/mysql/notes", "--hosts", "db1")
    broken = vm_lab.invoke("verify", check=False, timeout=300)
    assert broken.returncode != 0 and "web1" in broken.stderr
    out = vm_lab.invoke("reset", "--hosts", "web1,db1", timeout=600).stdout
    seconds = float(re.search(r"reset to provisioned in ([\d.]+)s", out).group(1))
    print(f"libvirt reset of web1 and db1: {seconds}s")
    assert seconds < 20, out
    vm_lab.invoke("verify", timeout=300)


def test_destroy_leaves_no_domain_and_no_network(vm_lab):
    vm_lab.invoke("destroy", "--yes", timeout=600)
    assert domains(vm_lab) == {}
    assert virsh("net-info", vm_lab.lab.name).returncode != 0
    out = vm_lab.invoke("status").stdout
    assert out.count("not created") == len(vm_lab.lab.hosts), out
