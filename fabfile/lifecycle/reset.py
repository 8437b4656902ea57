"""`invoke reset`: hosts back to a known stage, `bare` (as `up` leaves them) or
`provisioned` (as `provision` leaves them), by restoring the stage's snapshot (every
provider has them: Vagrant's on VirtualBox and libvirt, committed images on docker). A
restore does not provision again; the reset then waits, bounded, until the lab serves.

A reset loses what is on the hosts, so it is planned first: the task shows the plan and
asks. A host that lacks the stage's snapshot is refused, with what saves it, unless
`--recreate` says to destroy, recreate (and provision) that host instead."""
import time
from dataclasses import dataclass

from ..checks.live import live
from ..core.console import info, say
from ..core.errors import LabError
from ..machines.snapshots import STAGES, Snapshots, supports_snapshots
from .provision import provision


@dataclass(frozen=True)
class ResetPlan:
    lab: object
    hosts: tuple        # every host reset, in lab order
    stage: str
    provider: str
    restore: tuple      # hosts whose snapshot of the stage is restored
    recreate: tuple     # hosts destroyed, created again (and provisioned)
    snapshots: bool     # whether the provider has snapshots

    def _lost(self, hosts):
        """What is lost with `hosts`, the databases named."""
        dbs = [h.name for h in self.lab.hosts if h.name in hosts and h.role == "db"]
        return "everything on them is lost" + (
            f", the notes in {' and '.join(dbs)}'s database included" if dbs else "")

    def describe(self):
        """What the reset will do, host by host: the question's body and the log's line."""
        parts = []
        if self.restore:
            hosts, verb = ", ".join(self.restore), "goes" if len(self.restore) == 1 else "go"
            lost = self._lost(self.restore).replace("on them", "on it") if len(self.restore) == 1 \
                else self._lost(self.restore)
            parts.append(f"{hosts} {verb} back to snapshot {self.stage!r} ({lost} since it was taken)")
        if self.recreate:
            why = (f"the {self.provider} provider has no snapshots" if not self.snapshots
                   else f"no snapshot {self.stage!r}; --recreate asked for it")
            then = " and provisioned" if self.stage == "provisioned" else ""
            parts.append(f"{', '.join(self.recreate)} will be destroyed and created again{then} "
                         f"({why}): {self._lost(self.recreate)}")
        text = "; ".join(parts)
        if self.recreate and self.stage == "provisioned" and set(self.hosts) != set(self.lab.host_names):
            text += ". The other hosts are provisioned again too (a host as it should be changes nothing)"
        return text

    def question(self):
        return (f"Reset {', '.join(self.hosts)} of lab {self.lab.name} ({self.provider}) to {self.stage}? "
                f"{self.describe()}.")


def plan_reset(machines, names=None, stage="provisioned", recreate=False):
    """The plan of a reset, or a LabError: an unknown stage, or hosts lacking the stage's
    snapshot on a provider that has snapshots, without `recreate`."""
    if stage not in STAGES:
        raise LabError(f"unknown stage {stage!r}", f"use one of: {', '.join(STAGES)}")
    lab = machines.lab
    hosts = tuple(h.name for h in lab.select(names))
    provider = machines.provider()
    if not supports_snapshots(provider):
        return ResetPlan(lab, hosts, stage, provider, (), hosts, False)
    listed = Snapshots(machines, provider).list()
    missing = tuple(h for h in hosts if stage not in listed.get(h, []))
    if missing and not recreate:
        saves = (f"`invoke provision --hosts {','.join(missing)}` saves it (provision saves "
                 f"'provisioned' whenever it changed something or the snapshot is missing)"
                 if stage == "provisioned" else
                 "`up` saves 'bare' only when it creates a machine")
        command = "invoke reset" + (f" --hosts {','.join(hosts)}" if names else "") + \
            (f" --to {stage}" if stage != "provisioned" else "") + " --recreate"
        then = ", boots them again and provisions them" if stage == "provisioned" else " and boots them again"
        raise LabError(
            f"no snapshot {stage!r} on {', '.join(missing)} (lab {lab.name}, {provider}): reset "
            f"restores snapshots and does not recreate machines unasked",
            f"{saves}; or `{command}` destroys {', '.join(missing)}{then} (everything on them "
            f"is lost) and restores the other hosts from their snapshot")
    return ResetPlan(lab, hosts, stage, provider, tuple(h for h in hosts if h not in missing),
                     missing, True)


def reset(machines, names=None, stage="provisioned", recreate=False, plan=None):
    """Carry out `plan` (planned here from the other arguments when not given)."""
    plan = plan or plan_reset(machines, names, stage, recreate)
    lab = machines.lab
    started = time.monotonic()
    info(f"lab {lab.name}: resetting {', '.join(plan.hosts)} to {plan.stage}: {plan.describe()}")
    if plan.restore:
        Snapshots(machines, plan.provider).restore(plan.stage, list(plan.restore))
    if plan.recreate:
        _recreate(machines, list(plan.recreate), plan.provider)
        if plan.stage == "provisioned":
            # Every host, not just the recreated ones: an app host must migrate again
            # against a recreated database. The others report no change.
            report = provision(machines, list(lab.hosts))
            if report.failed:
                raise LabError(report.verdict(), "rerun `invoke reset`; it converges")
    if plan.stage == "provisioned":
        wait_until_serving(machines)
    seconds = time.monotonic() - started
    info(f"lab {lab.name}: {', '.join(plan.hosts)} reset to {plan.stage} in {seconds:.1f}s")
    return seconds


SERVING_TIMEOUT_S = 30


def wait_until_serving(machines, timeout=SERVING_TIMEOUT_S):
    """A reset host is back once its services run again (MariaDB, restored from a running
    one, recovers its files first) and the balancers send it traffic: HAProxy takes a web
    server back after two good health checks. Wait (bounded) until every service is up,
    one balancer holds the VIP and every backend is UP there; then say so, or say what is
    still missing."""
    deadline = time.monotonic() + timeout
    while True:
        state = live(machines)
        waiting = [name for name, backend in state["backends"].items() if backend != "UP"]
        down = [f"{host} {unit}" for host, units in state.get("services", {}).items()
                for unit, words in units.items() if words != "up"]
        if state["vip_holder"] and not waiting and not down:
            return True
        if time.monotonic() > deadline:
            info(f"lab {machines.lab.name}: not serving yet after {timeout}s "
                 f"(VIP on {state['vip_holder'] or 'no balancer'}, backends not UP: {', '.join(waiting) or 'none'}, "
                 f"services not up: {', '.join(down) or 'none'}); `invoke verify` says more")
            return False
        time.sleep(0.5)


def _recreate(machines, hosts, provider):
    machines.inventory.invalidate(hosts)
    for host in hosts:
        say(host, "destroying")
    machines.vagrant.destroy(hosts)
    machines.up(hosts, provider)
