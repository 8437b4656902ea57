"""`invoke bench`: the whole life of a lab on the current provider, timed: boot, cold and
no-op provision, dry run, verify, every failover drill (median of 3), destroy."""
import contextlib
import io
import time

from ..checks.verify import verify
from ..core.console import info, table
from ..core.errors import LabError
from ..drills.failover import run_failover
from ..drills.scenarios import SCENARIOS
from .provision import provision


def timed(label, rows, func, *args, quiet=True, **kwargs):
    """Run and time one step; its own output is hidden unless `quiet` is False."""
    info(f"bench: {label} ...")
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        result = func(*args, **kwargs)
    seconds = round(time.monotonic() - started, 2)
    rows.append({"step": label, "seconds": seconds})
    info(f"bench: {label}: {seconds}s")
    return result


def bench(machines, provider=None, repeat=3):
    lab = machines.lab
    created = [n for n, (state, _) in machines.states().items() if state != "not created"]
    if created:
        raise LabError(f"lab {lab.name} already has machines ({', '.join(created)}); the bench "
                       f"measures a lab from nothing", "run `invoke destroy --yes` first")
    used_provider = machines.provider(provider)
    rows = []
    timed("up (box built)", rows, machines.up, None, used_provider)
    cold = timed("provision (cold)", rows, provision, machines, list(lab.hosts))
    noop = timed("provision (no-op)", rows, provision, machines, list(lab.hosts))
    dry = timed("provision --dry-run", rows, provision, machines, list(lab.hosts), True)
    checked = timed("verify", rows, verify, machines)
    if cold.failed or noop.changed or dry.changed or not checked.passed:
        raise LabError("the lab did not converge or verify during the bench "
                       f"(cold failed: {len(cold.failed)}, no-op changed: {noop.changed}, "
                       f"dry-run changes: {dry.changed}, verify passed: {checked.passed})",
                       "run the steps one by one: invoke up provision verify")
    drills = timed(f"failover x{repeat}", rows, run_failover, machines, list(SCENARIOS), repeat, quiet=False)
    timed("destroy", rows, machines.destroy)
    medians = drills.medians()
    return {"provider": used_provider,
            "steps": rows,
            "failover": [{"scenario": s, "median_gap_ms": g, "median_outage_ms": o, "median_failed": f}
                         for s, (g, o, f) in medians.items()],
            "drills": drills.as_json()["drills"],
            "passed": drills.passed}


def print_bench(result):
    info(table(["step", "seconds"], [[r["step"], r["seconds"]] for r in result["steps"]]))
    info(table(["failover scenario", "median gap ms", "median outage ms", "median failed requests"],
               [[f["scenario"], f["median_gap_ms"], f["median_outage_ms"], f["median_failed"]]
                for f in result["failover"]]))
