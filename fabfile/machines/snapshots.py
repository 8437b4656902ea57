"""Snapshots of the lab's machines through Vagrant, where the provider has them
(VirtualBox, libvirt). The docker provider has none: `invoke reset` serves there."""
import re

from ..core.console import say
from ..core.errors import LabError
from . import providers

STAGES = ("bare", "provisioned")
HEADER = re.compile(r"^==> ([\w-]+):\s*(.*)$")
NO_SNAPSHOTS = "No snapshots have been taken yet!"


def parse_snapshot_list(text):
    """{host: [snapshot names]} from `vagrant snapshot list` on several machines: a
    `==> host:` line, then one name a line, or a line that says there are none."""
    found, current = {}, None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            current, rest = header.groups()
            found.setdefault(current, [])
            continue
        name = line.strip()
        if current is None or not name or line.startswith("    " + current + ":"):
            continue
        if NO_SNAPSHOTS not in name:
            found[current].append(name)
    return found


def supports_snapshots(provider):
    return providers.get(provider).has_snapshots


def require_snapshots(provider):
    if not supports_snapshots(provider):
        raise LabError(f"the {provider} provider has no snapshots",
                       "use `invoke reset [--hosts ...] [--to bare|provisioned]`: it recreates the "
                       "containers and provisions them again")


def check_name(name):
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name or ""):
        raise LabError(f"{name!r} is not a snapshot name", "use letters, digits, dots, dashes, underscores")


class Snapshots:
    def __init__(self, machines):
        self.machines = machines
        self.vagrant = machines.vagrant

    def _hosts(self, names):
        return [h.name for h in self.machines.lab.select(names)]

    def save(self, name, names=None, force=False):
        check_name(name)
        require_snapshots(self.machines.provider())
        hosts = self._hosts(names)
        self.vagrant.snapshot("save", hosts if names else None, name, force=force)
        for host in hosts:
            say(host, f"snapshot {name} saved")

    def restore(self, name, names=None):
        check_name(name)
        require_snapshots(self.machines.provider())
        hosts = self._hosts(names)
        missing = [h for h, snaps in self.list().items() if h in hosts and name not in snaps]
        if missing:
            raise LabError(f"no snapshot {name!r} on {', '.join(missing)}",
                           "`invoke snapshot.list` shows what exists")
        self.machines.inventory.invalidate()
        self.vagrant.snapshot("restore", hosts if names else None, name)
        self.machines.inventory.refresh()
        for host in hosts:
            say(host, f"restored to snapshot {name}")

    def delete(self, name, names=None):
        check_name(name)
        require_snapshots(self.machines.provider())
        hosts = self._hosts(names)
        self.vagrant.snapshot("delete", hosts if names else None, name)
        for host in hosts:
            say(host, f"snapshot {name} deleted")

    def list(self):
        require_snapshots(self.machines.provider())
        return parse_snapshot_list(self.vagrant.snapshot("list", None))


def take_stage_snapshot(machines, stage, hosts):
    """After `up` (stage bare) or `provision` (stage provisioned), on providers that have
    snapshots: save the stage so that `invoke reset` can restore it in seconds."""
    if not hosts or not supports_snapshots(machines.provider()):
        return
    Snapshots(machines).save(stage, hosts, force=True)
