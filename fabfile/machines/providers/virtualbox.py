"""VirtualBox: VMs named after the lab (`<lab>-<host>`). Each VM carries the guest
properties /halab/checkout and /halab/checkout-path (set by the Vagrantfile before every
boot), so a checkout touches only its own VMs; an unmarked VM is this checkout's when its
Vagrant knows its uuid, else an unknown leftover."""
import os
import re
import shutil
import subprocess

from ...core.errors import LabError
from ..ownership import UNKNOWN, Item, Survey, checkout_id, owner_of
from .base import Provider, local_source

VIRTUALBOX_NAT_HOST = "10.0.2.2"  # what a guest behind VirtualBox's NAT sees this machine as

VM_LINE = re.compile(r'^"(?P<name>[^"]+)" \{(?P<uuid>[0-9a-fA-F-]+)\}$')
CHECKOUT_PROPERTY = "/halab/checkout"
PATH_PROPERTY = "/halab/checkout-path"


def parse_vm_list(text):
    """{name: uuid} from `VBoxManage list vms`."""
    return {m.group("name"): m.group("uuid") for m in map(VM_LINE.match, text.splitlines()) if m}


def parse_guest_property(text):
    """The value from `VBoxManage guestproperty get VM NAME` ("Value: x"), "" for
    "No value set!"."""
    for line in text.splitlines():
        if line.startswith("Value: "):
            return line[len("Value: "):].strip()
    return ""


def lab_vm_orphans(lab, vms, known_ids):
    """The VMs named like this lab's hosts whose ids Vagrant does not know."""
    names = {f"{lab.name}-{h}" for h in lab.host_names}
    return {name: uuid for name, uuid in vms.items() if name in names and uuid not in known_ids}


def survey_vms(lab, vms, marks, known_ids, me):
    """Who owns each VM named like this lab's hosts. `marks`: {uuid: (checkout, path)}
    from the guest properties. Pure, for unit tests."""
    hosts = {f"{lab.name}-{h}": h for h in lab.host_names}
    unknown_to_vagrant = lab_vm_orphans(lab, vms, known_ids)
    items = []
    for name, uuid in sorted(vms.items()):
        if name not in hosts:
            continue
        checkout, path = marks.get(uuid, ("", ""))
        known = name not in unknown_to_vagrant
        items.append(Item("VirtualBox VM", name, uuid, owner_of(checkout, known, me), path, known, hosts[name]))
    by_hand = [f"VBoxManage controlvm {i.ref} poweroff; VBoxManage unregistervm {i.ref} --delete"
               for i in items if i.owner == UNKNOWN]
    return Survey(items, by_hand)


def vboxmanage(*args):
    return subprocess.run(["VBoxManage", *args], capture_output=True, text=True)


def list_vms():
    result = vboxmanage("list", "vms")
    return parse_vm_list(result.stdout) if result.returncode == 0 else {}


def guest_property(uuid, name):
    result = vboxmanage("guestproperty", "get", uuid, name)
    return parse_guest_property(result.stdout) if result.returncode == 0 else ""


def remove_vm(uuid):
    subprocess.run(["VBoxManage", "controlvm", uuid, "poweroff"], capture_output=True)
    subprocess.run(["VBoxManage", "unregistervm", uuid, "--delete"], capture_output=True, check=True)


class VirtualBoxProvider(Provider):
    name = "virtualbox"
    has_snapshots = True
    install_fix = "install VirtualBox, or use --provider docker"

    def usable(self):
        if not shutil.which("VBoxManage"):
            return False, "VBoxManage not found"
        if os.path.exists("/proc/modules") and not os.path.exists("/dev/vboxdrv"):
            return False, "VirtualBox's kernel driver (/dev/vboxdrv) is not loaded"
        try:
            ok = subprocess.run(["VBoxManage", "list", "hostonlyifs"], capture_output=True,
                                timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        return (True, "VBoxManage works") if ok else (False, "VBoxManage does not answer")

    def survey(self, lab, machines_dir):
        known = {p.read_text().strip() for p in machines_dir.glob("*/virtualbox/id")}
        names = {f"{lab.name}-{h}" for h in lab.host_names}
        vms = {name: uuid for name, uuid in list_vms().items() if name in names}
        marks = {uuid: (guest_property(uuid, CHECKOUT_PROPERTY), guest_property(uuid, PATH_PROPERTY))
                 for uuid in vms.values()}
        return survey_vms(lab, vms, marks, known, checkout_id())

    def orphans(self, lab, machines_dir):
        """This checkout's VMs of the lab that its Vagrant does not know (an interrupted run)."""
        return self.survey(lab, machines_dir).orphans

    def prepare(self, machines, hosts):
        found = self.survey(machines.lab, machines.machines_dir)
        machines.refuse_leftovers("VirtualBox VMs", found.orphans, found)

    def ssh_source(self, endpoint):
        """Vagrant's SSH on VirtualBox comes through a NAT port forward (127.0.0.1:2222):
        the guest sees it from the NAT's address for this machine."""
        if endpoint.hostname.startswith("127.") or endpoint.hostname == "localhost":
            return VIRTUALBOX_NAT_HOST
        return local_source(endpoint.hostname)

    def console_argv(self, lab, host, command=None):
        """Plainly: nothing a terminal can attach to. The lab's VMs have no serial port, and
        VirtualBox's own console is the VM's screen in its window."""
        vm = f"{lab.name}-{host}"
        raise LabError(f"VirtualBox offers no console a terminal can attach to: {vm} has no serial port, "
                       "and its console is its screen",
                       f"open the screen: in the VirtualBox Manager select {vm} and click Show (a VM "
                       "started headless gets its window), then log in as vagrant, password vagrant")

    def remove_leftovers(self, lab, machines_dir, found=None):
        found = found if found is not None else self.survey(lab, machines_dir)
        still_there = set(list_vms().values())
        removed = []
        for item in found.mine:
            if item.ref in still_there:
                remove_vm(item.ref)
                removed.append(f"VirtualBox VM {item.name}")
        return removed


VIRTUALBOX = VirtualBoxProvider()
