"""VirtualBox's leftovers: VMs named after the lab (`<lab>-<host>`) that this checkout's
Vagrant does not know, from an earlier checkout or an interrupted run."""
import os
import re
import shutil
import subprocess

from .base import Provider

VM_LINE = re.compile(r'^"(?P<name>[^"]+)" \{(?P<uuid>[0-9a-fA-F-]+)\}$')


def parse_vm_list(text):
    """{name: uuid} from `VBoxManage list vms`."""
    return {m.group("name"): m.group("uuid") for m in map(VM_LINE.match, text.splitlines()) if m}


def lab_vm_orphans(lab, vms, known_ids):
    """The VMs named like this lab's hosts whose ids Vagrant does not know."""
    names = {f"{lab.name}-{h}" for h in lab.host_names}
    return {name: uuid for name, uuid in vms.items() if name in names and uuid not in known_ids}


def list_vms():
    result = subprocess.run(["VBoxManage", "list", "vms"], capture_output=True, text=True)
    return parse_vm_list(result.stdout) if result.returncode == 0 else {}


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

    def orphans(self, lab, machines_dir):
        known = {p.read_text().strip() for p in machines_dir.glob("*/virtualbox/id")}
        return lab_vm_orphans(lab, list_vms(), known)

    def prepare(self, machines, hosts):
        machines.refuse_leftovers("VirtualBox VMs", self.orphans(machines.lab, machines.machines_dir))

    def remove_leftovers(self, lab, machines_dir):
        removed = []
        for name, uuid in self.orphans(lab, machines_dir).items():
            remove_vm(uuid)
            removed.append(f"VirtualBox VM {name}")
        return removed


VIRTUALBOX = VirtualBoxProvider()
