"""VirtualBox's leftovers: VMs named after the lab (`<lab>-<host>`) that this checkout's
Vagrant does not know, from an earlier checkout or an interrupted run."""
import re
import subprocess

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
