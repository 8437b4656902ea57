"""`invoke provision`: every host's role applied in parallel, one SSH connection each,
facts first and actions only where the host differs. The database host finishes before
an app host migrates against it."""
import threading
import time
from dataclasses import dataclass

from ..converge.engine import HostRun, converge
from ..core.console import info, say, table
from ..core.certs import tls_material
from ..core.errors import LabError
from ..core.state import lab_ssh_key, secret
from ..machines.snapshots import take_stage_snapshot
from ..remote.parallel import in_parallel
from ..roles import host_plan


class Provisioner:
    def __init__(self, lab, connections, dry_run=False, ssh_sources=None):
        self.lab = lab
        self.ssh_sources = ssh_sources or {}  # {host: where it sees our SSH come from}
        self.connections = connections
        self.dry_run = dry_run
        self.done = {name: threading.Event() for name in connections}
        self.runs = {}

    def wait_for_roles(self, roles):
        """Block until every host of `roles` in this run has finished; raise if one failed."""
        for host in self.lab.hosts:
            if host.role in roles and host.name in self.done:
                self.done[host.name].wait()
                if self.runs[host.name].failure:
                    raise LabError(f"{host.name} failed; this step needs it", step=f"wait for {host.name}")

    def run(self):
        started = time.monotonic()
        secrets = {"db_password": secret(self.lab, "db_password"), "lab_ssh_key": lab_ssh_key(self.lab),
                   "tls": tls_material(self.lab),
                   "exporter_db_password": secret(self.lab, "exporter_db_password")}
        plans = {}
        for name in self.connections:
            host = self.lab.host(name)
            plans[name] = host_plan(self.lab, host, secrets, self.ssh_sources.get(name, ""))
            self.runs[name] = HostRun(name, host.role, self.connections[name], self.dry_run, self.wait_for_roles)

        def work(name):
            say(name, f"{'checking' if self.dry_run else 'provisioning'} as {self.runs[name].role}")
            try:
                run = converge(self.runs[name], *plans[name])
            finally:
                self.done[name].set()
            verdict = "FAILED" if run.failure else "done"
            say(name, f"{verdict}: {run.changed} {'to change' if self.dry_run else 'changed'}, "
                      f"{run.ok} ok ({run.seconds:.1f}s)")
            return run

        def interrupted():
            # Closing the connections ends every host's command at once; the hosts keep
            # what their steps completed.
            for connection in self.connections.values():
                connection.close()
            unfinished = [name for name, done in self.done.items() if not done.is_set()]
            info(f"provision interrupted; not finished: {', '.join(unfinished) or 'none'}. "
                 f"`invoke provision` picks up where each host is.")

        in_parallel(work, list(self.connections), on_interrupt=interrupted)
        return Report(self.runs, time.monotonic() - started, self.dry_run)


@dataclass
class Report:
    runs: dict
    seconds: float
    dry_run: bool

    @property
    def failed(self):
        return [r for r in self.runs.values() if r.failure]

    @property
    def changed(self):
        return sum(r.changed for r in self.runs.values())

    def table(self):
        rows = [[r.name, r.role, r.changed, r.ok, 1 if r.failure else 0, f"{r.seconds:.1f}"]
                for r in self.runs.values()]
        head = "to change" if self.dry_run else "changed"
        return table(["host", "role", head, "ok", "failed", "seconds"], rows)

    def as_json(self):
        return {"hosts": {r.name: {"changed": r.changed, "ok": r.ok, "failed": 1 if r.failure else 0,
                                   "seconds": round(r.seconds, 2)} for r in self.runs.values()},
                "changed": self.changed, "failed": len(self.failed), "seconds": round(self.seconds, 2),
                "dry_run": self.dry_run}

    def verdict(self):
        if self.failed:
            lines = [f"{r.name}: {r.failure.splitlines()[0]}" for r in self.failed]
            return "provision failed on " + ", ".join(r.name for r in self.failed) + ":\n  " + "\n  ".join(lines)
        word = "to change" if self.dry_run else "changed"
        if self.changed == 0:
            return f"provision: nothing {word}; the lab is converged ({self.seconds:.1f}s)"
        return f"provision: {self.changed} step(s) {word} in {self.seconds:.1f}s"


def boot_stopped(machines, hosts):
    """Hosts that a drill or a student halted are booted first: provisioning needs them.
    Only hosts missing from the SSH cache are asked about (`halt` takes them out of it)."""
    cached = machines.inventory.cached_endpoints()
    if all(h.name in cached for h in hosts):
        return
    states = machines.states()
    stopped = [h.name for h in hosts if states.get(h.name, ("",))[0] not in ("running", "not created")]
    if stopped:
        for name in stopped:
            say(name, f"{states[name][0]}: booting it first (invoke up --hosts {name})")
        machines.up(stopped, quiet=True)


def provision(machines, hosts, dry_run=False):
    lab = machines.lab
    if not dry_run:
        boot_stopped(machines, hosts)
    connections = machines.connections(hosts)
    # The firewall lets SSH in from where each host sees it come from: unknown, it would
    # shut Vagrant out, so nothing starts.
    ssh_sources = machines.ssh_sources(hosts)
    unknown = [name for name in connections if not ssh_sources.get(name)]
    if unknown:
        raise LabError(f"cannot tell where {', '.join(unknown)} see this machine's SSH come from "
                       "(no route to the SSH endpoint); their firewall would shut it out",
                       "run `invoke up` again (it refreshes the SSH endpoints)")
    info(f"lab {lab.name}: {'dry run over' if dry_run else 'provisioning'} {', '.join(connections)}")
    report = Provisioner(lab, connections, dry_run=dry_run, ssh_sources=ssh_sources).run()
    info(report.table())
    if not dry_run and not report.failed:
        # The hosts that changed, and those that lack the snapshot where asking is cheap
        # (docker): a no-op provision on VirtualBox or libvirt asks Vagrant nothing.
        changed = [name for name, run in report.runs.items() if run.changed]
        take_stage_snapshot(machines, "provisioned", list(connections), changed)
    return report
