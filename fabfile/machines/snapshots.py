"""Snapshots of the lab's machines on every provider, through one interface: Vagrant's
own on VirtualBox and libvirt, images committed from the containers on docker (the
provider's `snapshots()` store). `up` saves `bare` and `provision` saves `provisioned`,
so that `invoke reset` restores them in seconds."""
import re
import time

from ..core.console import info, say
from ..core.errors import LabError
from . import providers
from .providers.base import parse_snapshot_list  # noqa: F401  (the parser's public home)

STAGES = ("bare", "provisioned")


def store_of(machines, provider=None):
    """The provider's snapshot store, or a LabError saying the provider has none."""
    provider = provider or machines.provider()
    store = providers.get(provider).snapshots(machines)
    if store is None:
        raise LabError(f"the {provider} provider has no snapshots",
                       "use `invoke reset --recreate [--hosts ...]`: it recreates the machines and "
                       "provisions them again")
    return store


def supports_snapshots(provider):
    return providers.get(provider).has_snapshots


def check_name(name):
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name or ""):
        raise LabError(f"{name!r} is not a snapshot name", "use letters, digits, dots, dashes, underscores")


class Snapshots:
    def __init__(self, machines, provider=None):
        self.machines = machines
        self._provider = provider
        self._store = None

    @property
    def store(self):
        if self._store is None:
            self._store = store_of(self.machines, self._provider)
        return self._store

    def _hosts(self, names):
        return [h.name for h in self.machines.lab.select(names)]

    def _everything(self, hosts):
        return len(hosts) == len(self.machines.lab.hosts)

    def save(self, name, names=None, force=False):
        """Save snapshot `name` of the hosts (every host by default); an existing snapshot
        of that name is replaced. Returns the seconds it took."""
        check_name(name)
        hosts = self._hosts(names)
        started = time.monotonic()
        self.store.save(hosts, name, self._everything(hosts))
        seconds = time.monotonic() - started
        for host in hosts:
            say(host, f"snapshot {name} saved")
        return seconds

    def restore(self, name, names=None):
        """Put the hosts back as they were when snapshot `name` was saved; refused, before
        anything changes, when a host lacks it. Returns the seconds it took."""
        check_name(name)
        hosts = self._hosts(names)
        missing = self.missing(name, hosts)
        if missing:
            raise LabError(f"no snapshot {name!r} on {', '.join(missing)}",
                           "`invoke snapshot.list` shows what exists")
        started = time.monotonic()
        self.store.restore(hosts, name, self._everything(hosts))
        seconds = time.monotonic() - started
        for host in hosts:
            say(host, f"restored to snapshot {name}")
        return seconds

    def delete(self, name, names=None):
        check_name(name)
        hosts = self._hosts(names)
        self.store.delete(hosts, name, self._everything(hosts))
        for host in hosts:
            say(host, f"snapshot {name} deleted")

    def list(self):
        """{host: [snapshot names]} for every host of the lab."""
        listed = self.store.list()
        return {h: listed.get(h, []) for h in self.machines.lab.host_names}

    def missing(self, name, hosts):
        listed = self.list()
        return [h for h in hosts if name not in listed.get(h, [])]


def take_stage_snapshot(machines, stage, hosts, changed=None):
    """After `up` (stage bare) or `provision` (stage provisioned), on providers that have
    snapshots: save the stage of `changed` hosts (all of `hosts` when None), and of the
    hosts that lack it where the provider lists its snapshots cheaply. Nothing is asked
    of a slow provider when nothing changed, so a no-op provision stays fast."""
    if not hosts:
        return
    # The provider the machines were made with, read from Vagrant's data folder: asking
    # whether it is usable (`docker info`) would cost a no-op provision 40 ms.
    in_use = providers.provider_in_use(machines.lab.host_names, machines.machines_dir)
    provider = next(iter(in_use)) if len(in_use) == 1 else machines.provider()
    if not supports_snapshots(provider):
        return
    snapshots = Snapshots(machines, provider)
    wanted = list(hosts) if changed is None else [h for h in hosts if h in changed]
    if snapshots.store.cheap_list:
        wanted += [h for h in snapshots.missing(stage, hosts) if h not in wanted]
    wanted = [h for h in machines.lab.host_names if h in wanted]
    if not wanted:
        return
    seconds = snapshots.save(stage, wanted)
    info(f"lab {machines.lab.name}: snapshot {stage} of {', '.join(wanted)} saved in {seconds:.1f}s")
