"""The engine: gathers a host's facts in one round trip, asks each step for its plan, and
acts on it (a dry run only shows it). Progress lines say which host they come from."""
import difflib
import shlex
import time
from dataclasses import dataclass, field
from typing import Callable

from invoke.exceptions import CommandTimedOut

from ..core.console import say
from ..core.errors import LabError, step_failed
from ..remote import facts as F
from ..remote.connection import InputResult, failure_text
from .steps import Await

FRESH_CONNECT_TIMEOUT_S = 3  # a new SSH connection on a LAN: well under a second


@dataclass
class HostRun:
    """One host's convergence: its connection, what changed, how it ended."""
    name: str
    role: str
    connection: object
    dry_run: bool = False
    wait_for_roles: Callable = lambda roles: None
    changed_paths: set = field(default_factory=set)
    changed: int = 0
    ok: int = 0
    failure: str = ""
    seconds: float = 0.0

    def sudo(self, command, timeout=60, stdin=b""):
        wrapped = "sudo -n sh -c " + shlex.quote(command)
        if stdin:
            return self.connection.run_input(wrapped, stdin, timeout)
        return self.connection.run(wrapped, hide=True, warn=True, in_stream=False, timeout=timeout)

    def sudo_fresh(self, command, timeout=60, stdin=b""):
        """`sudo` over a new SSH connection, closed afterwards; a connection that cannot be
        opened is a result like a failed command's (exit 255), not an exception."""
        try:
            fresh = self.connection.fresh(FRESH_CONNECT_TIMEOUT_S)
        except Exception as exc:  # refused, timed out, reset: the answer we look for
            return InputResult("", f"no new SSH connection: {type(exc).__name__}: {exc}".strip(), 255)
        try:
            return HostRun(self.name, self.role, fresh).sudo(command, timeout, stdin)
        except Exception as exc:
            return InputResult("", f"the new SSH connection failed: {type(exc).__name__}: {exc}".strip(), 255)
        finally:
            fresh.close()

    def act(self, action, step):
        """Run one planned action; on failure clean up and raise a LabError naming the step."""
        runner = self.sudo_fresh if action.fresh_connection else self.sudo
        result = runner(action.command, action.timeout, action.stdin)
        if result.exited == 0:
            return result
        if action.settle:
            time.sleep(action.settle)
        if action.cleanup:
            runner(action.cleanup)
        said = (result.stderr + result.stdout).strip()
        if action.diagnose:
            said += "\n" + runner(action.diagnose).stdout.strip()
        shown = action.shown or (action.command if len(action.command) < 160 else action.command[:150] + " ...")
        message = action.failure or f"`{shown}` exited {result.exited}:"
        raise step_failed(step, f"{message}\n{said}" + (f"\n  hint: {action.hint}" if action.hint else ""))

    def diff(self, change):
        """What a dry run shows of a file it would write; never a secret."""
        if change.secret:
            return f"--- {change.path}\n+++ {change.path}\n(secret content: diff not shown)\n"
        if change.detail.startswith("mode or owner"):
            return f"({change.detail})\n"
        old = self.sudo(f"cat {change.path}").stdout if change.detail != "created" else ""
        return "".join(difflib.unified_diff(old.splitlines(True), change.content.splitlines(True),
                                            f"{change.path} (on host)", f"{change.path} (wanted)"))


def reported_change(action, result):
    """Whether a command that reports on itself (`schema: changed`) changed anything."""
    return f"{action.reports} changed" in result.stdout


def apply(run, step, change):
    """Act on one change; returns (changed, detail, diff)."""
    if run.dry_run:
        diff = run.diff(change) if change.content is not None else ""
        if change.probe:
            result = run.act(change.probe, step.name)
            if change.probe.reports and not reported_change(change.probe, result):
                return False, "", ""
            return True, result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "would run", diff
        return True, change.detail, diff
    result = None
    for action in change.actions:
        result = run.act(action, step.name)
    last = change.actions[-1] if change.actions else None
    if last is not None and last.reports:
        if not reported_change(last, result):
            return False, "", ""
        return True, result.stdout.strip().splitlines()[-1], ""
    return True, change.detail, ""


def converge(run, steps, extra_facts=()):
    """Bring one host to what `steps` want. Failures end the host's run with a message in
    `run.failure`; the other hosts are not affected."""
    started = time.monotonic()
    wanted = [*extra_facts, *(f for step in steps for f in step.facts())]
    try:
        facts = F.gather(run.connection, wanted)
        for step in steps:
            if isinstance(step, Await):
                run.wait_for_roles(step.roles)
                continue
            change = step.plan(facts, run.changed_paths)
            if change is None:
                run.ok += 1
                continue
            changed, detail, diff = apply(run, step, change)
            if not changed:
                run.ok += 1
                continue
            run.changed += 1
            if change.path:
                run.changed_paths.add(change.path)
            verb = "would change" if run.dry_run else "changed"
            say(run.name, f"{verb:<13}{step.name}" + (f": {detail}" if detail else ""))
            if diff:
                say(run.name, diff.rstrip("\n"))
            if change.refresh_facts and not run.dry_run:
                facts = F.gather(run.connection, wanted)  # packages ship files and units
    except LabError as exc:
        run.failure = f"{exc.step}: {exc.problem}" if exc.step else exc.problem
        say(run.name, "FAILED       " + (f"{exc.step}\n{exc.problem}" if exc.step else exc.problem))
    except CommandTimedOut as exc:
        run.failure = f"no answer within {exc.timeout:.0f}s (is the host frozen?)"
        say(run.name, f"FAILED       {run.failure}")
    except Exception as exc:  # SSH dropped, host gone: say which host and why
        run.failure = failure_text(exc)
        say(run.name, f"FAILED       {run.failure}")
    run.seconds = time.monotonic() - started
    return run
