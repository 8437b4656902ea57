"""`invoke reset`: hosts back to a known stage, `bare` (as `up` leaves them) or
`provisioned` (as `provision` leaves them). Snapshots are restored where the provider
has them and they exist; otherwise the machines are recreated and provisioned again."""
import time

from ..core.console import info, say
from ..core.errors import LabError
from ..machines.snapshots import STAGES, Snapshots, supports_snapshots
from .provision import provision


def reset(machines, names=None, stage="provisioned"):
    if stage not in STAGES:
        raise LabError(f"unknown stage {stage!r}", f"use one of: {', '.join(STAGES)}")
    lab = machines.lab
    hosts = [h.name for h in lab.select(names)]
    provider = machines.provider()
    started = time.monotonic()
    info(f"lab {lab.name}: resetting {', '.join(hosts)} to {stage}")
    if supports_snapshots(provider) and _have_snapshot(machines, hosts, stage):
        Snapshots(machines).restore(stage, hosts)
    else:
        _recreate(machines, hosts, provider)
        if stage == "provisioned":
            # Every host, not just the recreated ones: an app host must migrate again
            # against a recreated database. The others report no change.
            report = provision(machines, list(lab.hosts))
            if report.failed:
                raise LabError(report.verdict(), "rerun `invoke reset`; it converges")
    seconds = time.monotonic() - started
    info(f"lab {lab.name}: {', '.join(hosts)} reset to {stage} in {seconds:.1f}s")
    return seconds


def _have_snapshot(machines, hosts, stage):
    listed = Snapshots(machines).list()
    return all(stage in listed.get(h, []) for h in hosts)


def _recreate(machines, hosts, provider):
    machines.inventory.invalidate(hosts)
    for host in hosts:
        say(host, "destroying")
    machines.vagrant.destroy(hosts)
    machines.up(hosts, provider)
