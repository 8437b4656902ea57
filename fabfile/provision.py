"""`invoke provision`: every host's role applied in parallel, one SSH connection each,
facts first and actions only where the host differs. The database host finishes before an
app host migrates against it."""
import json
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .errors import LabError
from .output import info, say, table
from .render import lab_context
from .roles import ROLE_MODULES, common
from .settings import ROLE_SETTINGS
from .snapshots import take_stage_snapshot
from .state import lab_ssh_key, secret
from .steps import Packages, StepFailed, facts_script, parse_facts


@dataclass
class RoleContext:
    """What a role module needs to build its steps."""
    lab: object
    host: object
    settings: dict
    secrets: dict

    def context(self, **extra):
        return {**lab_context(self.lab, self.host, self.settings), **extra}

    def fail(self, problem):
        return LabError(problem, host=self.host.name)


@dataclass
class HostRun:
    """One host's provisioning: its connection, its facts, what changed."""
    name: str
    role: str
    connection: object
    dry_run: bool
    waiter: object
    changed_paths: set = field(default_factory=set)
    changed: int = 0
    ok: int = 0
    failure: str = ""
    seconds: float = 0.0

    def sudo(self, command, step, check=True, hint="", shown=None):
        """Run `command` as root in one shell; raise StepFailed with its output on failure."""
        result = self.connection.run("sudo -n sh -c " + shlex.quote(command), hide=True, warn=True,
                                     in_stream=False)
        if check and result.exited != 0:
            shown = shown or (command if len(command) < 160 else command[:150] + " ...")
            output = (result.stderr + result.stdout).strip()
            raise StepFailed(step, f"`{shown}` exited {result.exited}:\n{output}" +
                             (f"\n  hint: {hint}" if hint else ""))
        return result

    def wait_for_roles(self, roles):
        return self.waiter(roles)


def gather_facts(run, steps, extra):
    result = run.sudo(facts_script(steps, extra), "gather facts", shown="gather facts")
    return parse_facts(result.stdout)


def provision_host(run, steps, extra_facts):
    started = time.monotonic()
    try:
        facts = gather_facts(run, steps, extra_facts)
        for step in steps:
            outcome = step.run(run, facts)
            if outcome is None:
                continue
            if not outcome.changed:
                run.ok += 1
                continue
            run.changed += 1
            path = getattr(step, "path", None)
            if path:
                run.changed_paths.add(path)
            verb = "would change" if run.dry_run else "changed"
            say(run.name, f"{verb:<13}{outcome.step}" + (f": {outcome.detail}" if outcome.detail else ""))
            if outcome.diff:
                say(run.name, outcome.diff.rstrip("\n"))
            if isinstance(step, Packages) and not run.dry_run:
                facts = gather_facts(run, steps, extra_facts)  # packages ship files and units
    except StepFailed as exc:
        run.failure = f"{exc.step}: {exc.output}"
        say(run.name, f"FAILED       {exc.step}\n{exc.output}")
    except LabError as exc:
        run.failure = f"{exc.problem}"
        say(run.name, f"FAILED       {exc.problem}")
    except Exception as exc:  # SSH dropped, host gone: say which host and why
        run.failure = f"{type(exc).__name__}: {exc}"
        say(run.name, f"FAILED       {run.failure}")
    run.seconds = time.monotonic() - started
    return run


class Provisioner:
    def __init__(self, lab, connections, dry_run=False):
        self.lab = lab
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
                    raise StepFailed(f"wait for {host.name}", f"{host.name} failed; this step needs it")
        return None

    def host_steps(self, host, secrets):
        module = ROLE_MODULES[host.role]
        ctx = RoleContext(self.lab, host, ROLE_SETTINGS[host.role], secrets)
        extra = module.fact_queries(ctx) if hasattr(module, "fact_queries") else {}
        return common.steps(ctx) + module.steps(ctx), extra

    def run(self):
        started = time.monotonic()
        secrets = {"db_password": secret(self.lab, "db_password"), "lab_ssh_key": lab_ssh_key(self.lab)}
        plans = {}
        for name in self.connections:
            host = self.lab.host(name)
            plans[name] = self.host_steps(host, secrets)
            self.runs[name] = HostRun(name, host.role, self.connections[name], self.dry_run,
                                      self.wait_for_roles)

        def work(name):
            say(name, f"{'checking' if self.dry_run else 'provisioning'} as {self.runs[name].role}")
            try:
                run = provision_host(self.runs[name], *plans[name])
            finally:
                self.done[name].set()
            verdict = "FAILED" if run.failure else "done"
            say(name, f"{verdict}: {run.changed} {'to change' if self.dry_run else 'changed'}, "
                      f"{run.ok} ok ({run.seconds:.1f}s)")
            return run

        with ThreadPoolExecutor(max_workers=max(1, len(self.connections))) as pool:
            list(pool.map(work, list(self.connections)))
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

    def write_json(self, path):
        with open(path, "w") as handle:
            json.dump(self.as_json(), handle, indent=2)
            handle.write("\n")

    def verdict(self):
        if self.failed:
            lines = [f"{r.name}: {r.failure.splitlines()[0]}" for r in self.failed]
            return "provision failed on " + ", ".join(r.name for r in self.failed) + ":\n  " + "\n  ".join(lines)
        word = "to change" if self.dry_run else "changed"
        if self.changed == 0:
            return f"provision: nothing {word}; the lab is converged ({self.seconds:.1f}s)"
        return f"provision: {self.changed} step(s) {word} in {self.seconds:.1f}s"


def provision(machines, hosts, dry_run=False, json_path=None):
    lab = machines.lab
    connections = machines.connections(hosts)
    info(f"lab {lab.name}: {'dry run over' if dry_run else 'provisioning'} {', '.join(connections)}")
    report = Provisioner(lab, connections, dry_run=dry_run).run()
    info(report.table())
    if json_path:
        report.write_json(json_path)
    if not dry_run and not report.failed and report.changed:
        take_stage_snapshot(machines, "provisioned", list(connections))
    return report
