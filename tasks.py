"""The lab's commands. `invoke --list` is the table of contents; `invoke --help TASK`
explains one. The logic lives in fabfile/; these tasks parse options and call it."""
import contextlib
import functools
import logging
import os
import signal
import sys

from invoke import Collection, Exit, task

from fabfile.core.console import info, table
from fabfile.core.errors import LabError
from fabfile.core.lab import load_lab
from fabfile.core.report import write_json, write_text
from fabfile.machines import Machines

HOSTS_HELP = "comma-separated host names from lab.yml (default: every host)"
ROLES_HELP = "comma-separated roles: loadbalancer, web, app, db, monitor"

# paramiko logs a traceback for every connection a booting or firewalled host refuses; the
# lab's own errors say it once, plainly. HALAB_DEBUG=1 shows paramiko's as well.
logging.getLogger("paramiko").setLevel(logging.DEBUG if os.environ.get("HALAB_DEBUG") else logging.CRITICAL)


def names(value):
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def lab_task(func):
    """Turn a LabError into a clear message on stderr and exit status 1."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LabError as exc:
            raise Exit(f"error: {exc}", code=1)
    return wrapper


def machines():
    return Machines(load_lab())


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM ends a drill the way Ctrl-C does: through its clean-up, which undoes the fault."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exec_ssh(argv):
    """Hand the terminal over to ssh (no Python in between for an interactive shell)."""
    sys.stdout.flush()
    os.execvp("ssh", argv)


@task(help={"provider": "virtualbox, libvirt or docker (default: the lab's current one, "
                        "else VirtualBox when usable, else docker)",
            "hosts": HOSTS_HELP, "verbose": "show all of Vagrant's output"})
@lab_task
def up(c, provider=None, hosts=None, verbose=False):
    """Boot the lab's hosts (builds the docker box first when needed)."""
    machines().up(names(hosts), provider, verbose)


@task
@lab_task
def status(c):
    """Show each host: role, IP, state, provider, SSH endpoint, services, who holds the VIP."""
    from fabfile.checks.status import render, statuses
    m = machines()
    info(render(m.lab, statuses(m)))


@task(help={"host": "the host to log in to", "command": "run this command instead of a shell"})
@lab_task
def ssh(c, host, command=None):
    """Open a shell on HOST (or run one command) with the cached SSH config."""
    exec_ssh(machines().ssh_argv(host, command))


@task(help={"host": "the host to get into", "command": "run this command instead of a shell (docker only)"})
@lab_task
def console(c, host, command=None):
    """A shell on HOST that needs neither the lab's network nor SSH: the way back in after
    a firewall shut you out. `docker exec` on docker, the serial console on libvirt; on
    VirtualBox it says what VirtualBox offers. `invoke provision` then restores the lab's rules."""
    argv = machines().console_argv(host, command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@task(help={"host": "the host whose firewall to replace",
            "ruleset": "an nftables file that defines `table inet halab` (and nothing else)"})
@lab_task
def firewall(c, host, ruleset):
    """Load your own ruleset on HOST the safe way: checked with `nft -c`, loaded atomically,
    and rolled back by itself unless a new SSH connection still gets in within a few seconds.
    It lasts until `invoke provision` (which restores the lab's) or a reboot."""
    from fabfile.lifecycle.firewall import apply_ruleset
    apply_ruleset(machines(), host, ruleset)


@task(help={"command": "the shell command to run", "hosts": HOSTS_HELP, "roles": ROLES_HELP,
            "sudo": "run it as root", "timeout": "give up on a host after this many seconds (default 300)"})
@lab_task
def run(c, command, hosts=None, roles=None, sudo=False, timeout=300):
    """Run one command on many hosts in parallel; output lines are prefixed by host."""
    from fabfile.remote.parallel import failure_summary
    if timeout <= 0:
        raise LabError(f"--timeout {timeout} is not a number of seconds", "use e.g. --timeout 60")
    m = machines()
    results = m.run(m.lab.select(names(hosts), names(roles)), command, sudo=sudo, timeout=timeout)
    failed = failure_summary(results)
    if failed:
        raise Exit(f"failed on: {failed}", code=1)


@task(help={"hosts": HOSTS_HELP, "roles": ROLES_HELP,
            "dry_run": "change nothing; show what would change, with a diff of each file",
            "json": "also write the per-host report as JSON to this path"})
@lab_task
def provision(c, hosts=None, roles=None, dry_run=False, json=None):
    """Install and configure every host for its role (idempotent: a rerun changes nothing)."""
    from fabfile.lifecycle.provision import provision as run_provision
    m = machines()
    report = run_provision(m, m.lab.select(names(hosts), names(roles)), dry_run)
    if json:
        write_json(json, report.as_json())
    if report.failed:
        raise Exit(f"error: {report.verdict()}", code=1)
    info(report.verdict())


@task
@lab_task
def ca(c):
    """Show where the lab's certificate authority is and how to trust it (curl, a browser), and
    the /etc/hosts line for the site's name; changes nothing on this machine."""
    from fabfile.core.certs import trust_instructions
    info(trust_instructions(load_lab()))


@task(help={"json": "also write the checks as JSON to this path"})
@lab_task
def verify(c, json=None):
    """Check the whole lab from inside and through the VIP; exit 1 when a check fails."""
    from fabfile.checks.verify import verify as run_verify
    verdict = run_verify(machines())
    info(verdict.table())
    if verdict.matrix:
        from rich.console import Console
        info("")
        Console(width=None if sys.stdout.isatty() else 160).print(verdict.matrix_table())
    if json:
        write_json(json, verdict.as_json())
    if not verdict.passed:
        raise Exit(verdict.summary(), code=1)
    info(verdict.summary())


def write_page(path, text):
    """Write a page atomically (a browser never opens half of it) and say where it is."""
    write_text(path, text)
    info(f"wrote {path}")


@task(help={"scenario": "haproxy, keepalived, halt, crash, network, or all (default: all)",
            "repeat": "run each drill this many times (default 1)",
            "json": "also write the drills as JSON to this path",
            "html": "also write the drills as one self-contained HTML page (a timeline per drill)"})
@lab_task
def failover(c, scenario="all", repeat=1, json=None, html=None):
    """Break the MASTER balancer on purpose and measure the gap, failed requests and writes kept."""
    from fabfile.drills.failover import run_failover
    from fabfile.drills.scenarios import SCENARIOS
    scenarios = list(SCENARIOS) if scenario == "all" else names(scenario)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise LabError(f"unknown scenario {', '.join(unknown)}", f"use one of: {', '.join(SCENARIOS)}, all")
    if repeat < 1:
        raise LabError("--repeat must be 1 or more")
    from fabfile.views.drill_report import render_report

    def save(report):  # after every drill: an interrupted run keeps what it measured
        if json:
            write_json(json, report.as_json())
        if html:
            write_page(html, render_report(report.as_json()))
    try:
        with sigterm_as_interrupt():
            report = run_failover(machines(), scenarios, repeat, on_drill=save)
    except KeyboardInterrupt:
        raise Exit("failover interrupted: the running drill's fault was undone (see above); "
                   "finished drills are in the reports" if json or html else
                   "failover interrupted: the running drill's fault was undone (see above)", code=130)
    info(report.table())
    if not report.passed:
        raise Exit("failover: a drill lost a write, saw a split brain, found no failover or did not recover",
                   code=1)
    info(f"failover: {len(report.drills)} drill(s) passed")


@task(help={"json": "print the report as JSON for scripts: targets (job, instance, health), alerts "
                    "(alertname, state, ...), queries"})
@lab_task
def monitor(c, json=False):
    """The monitoring server: its URLs, every scrape target's state, the alerts firing now, saved queries."""
    from fabfile.checks.monitor import dumps, monitor_report
    from fabfile.views.monitor import render_text
    report = monitor_report(load_lab())
    print(dumps(report) if json else render_text(report))
    down = [t for t in report["targets"] if t["health"] != "up"]
    if down and not json:
        raise Exit(f"monitor: {len(down)} scrape target(s) not up: "
                   + ", ".join(f"{t['host']} {t['job']}" for t in down), code=1)


@task(help={"provider": "as for `invoke up`", "repeat": "runs of each failover drill (default 3)",
            "json": "also write the figures as JSON to this path",
            "html": "also write the bench as one self-contained HTML page"})
@lab_task
def bench(c, provider=None, repeat=3, json=None, html=None):
    """Time a lab's whole life: up, provision (cold, no-op, dry run), verify, drills, destroy."""
    from fabfile.lifecycle.bench import bench as run_bench, print_bench
    with sigterm_as_interrupt():
        result = run_bench(machines(), provider, repeat)
    print_bench(result)
    if json:
        write_json(json, result)
    if html:
        from fabfile.views.drill_report import render_bench
        write_page(html, render_bench(result))
    if not result["passed"]:
        raise Exit("bench: a failover drill failed (see the table)", code=1)


def seconds_list(value):
    """"0.05,0.1" -> [0.05, 0.1]; LabError on a word that is not a number."""
    try:
        return [float(v) for v in names(value)]
    except ValueError:
        raise LabError(f"--advert-int {value!r} is not a list of seconds", "write e.g. --advert-int 0.05,0.1,0.2")


@task(help={"minutes": "how long to soak each setting (default 10)",
            "advert_int": "comma-separated VRRP advert intervals in seconds to soak one after the other "
                          "(default: the lab's configured one); the configured timers are put back at the end",
            "no_burn": "leave the CPU idle (default: one busy process per core for the soak's length)",
            "json": "also write the report as JSON to this path (after each setting)"})
@lab_task
def soak(c, minutes=10.0, advert_int=None, no_burn=False, json=None):
    """Count the VRRP transitions no fault caused: every core busy, a light load through the VIP.

    Exit status 1 when a false transition happened or the configured timers could not be put back."""
    from fabfile.lifecycle.soak import soak as run_soak

    def save(report):
        if json:
            write_json(json, report.as_json())
    try:
        with sigterm_as_interrupt():
            report = run_soak(machines(), minutes, seconds_list(advert_int), burn=not no_burn, on_setting=save)
    except KeyboardInterrupt:
        raise Exit("soak interrupted: the CPU burners are stopped and the configured timers put back "
                   "(see above)", code=130)
    info(report.table())
    if report.restored is False:
        raise Exit("soak: the configured timers are not back: run `invoke provision --roles loadbalancer`", code=1)
    if not report.passed:
        raise Exit("soak: false VRRP transitions (see the table): these timers are too fast here", code=1)
    info(f"soak: no false transition in {sum(r.minutes for r in report.runs):g} min "
         f"on {report.provider} ({report.cores} cores, {report.burners} burner(s))")


@task(help={"svg": "write the drawing as SVG to this path",
            "mermaid": "print the drawing as Mermaid text (for a README or a course page)",
            "live": "draw the lab's state too: who holds the VIP, services, backends in rotation"})
@lab_task
def graph(c, svg=None, mermaid=False, live=False):
    """Draw the lab from lab.yml: tiers, addresses, the VIP, the ports each tier talks to."""
    from fabfile.views import graph as drawing
    if not svg and not mermaid:
        raise LabError("say what to draw", "use --svg PATH, --mermaid, or both")
    m = machines()
    state = None
    if live:
        from fabfile.checks.live import live as live_state
        state = live_state(m)
    if svg:
        write_page(svg, drawing.svg(m.lab, state))
    if mermaid:
        print(drawing.mermaid(m.lab, state))


@task(help={"seconds": "stop after this many seconds (default 120, at most 3600)",
            "once": "print one frame and stop (no traffic through the VIP)",
            "json": "with --once: print the frame as JSON"})
@lab_task
def watch(c, seconds=120, once=False, json=False):
    """Watch the lab live: who holds the VIP, VRRP states, backends, requests per second."""
    if once:
        from fabfile.checks.live import live as live_state
        state = live_state(machines())
        if json:
            import json as json_module
            print(json_module.dumps(state, indent=2))
        else:
            from rich.console import Console
            from fabfile.views.watch import frame
            Console().print(frame(state))
        return
    from fabfile.lifecycle.watch import watch as run_watch
    if not 1 <= seconds <= 3600:
        raise LabError(f"--seconds {seconds} is out of range", "use 1 to 3600")
    with sigterm_as_interrupt():
        run_watch(machines(), seconds)


@task(help={"hosts": HOSTS_HELP, "force": "power off without a clean shutdown"})
@lab_task
def halt(c, hosts=None, force=False):
    """Shut hosts down (the lab stays defined; `invoke up` boots it again)."""
    machines().halt(names(hosts), force)


@task(help={"yes": "do not ask for confirmation"})
@lab_task
def destroy(c, yes=False):
    """Destroy every host of the lab and its leftovers (containers, Docker network, VMs).

    Only what this checkout made: a lab of the same name that another checkout owns, or
    leftovers nobody vouches for, are left alone and named (exit status 1)."""
    m = machines()
    if not yes and sys.stdin.isatty():
        answer = input(f"Destroy every host of lab {m.lab.name} that this checkout made? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise Exit("not destroyed", code=1)
    m.destroy()


@task
def doctor(c):
    """Check what the lab needs on this machine, with a verdict and a fix for each item."""
    from fabfile.checks.doctor import run_checks
    findings = run_checks()
    rows = [[f.item, f.verdict.upper(), f.detail + (f"  -> {f.fix}" if f.fix else "")] for f in findings]
    info(table(["item", "verdict", "detail"], rows))
    failed = [f.item for f in findings if f.verdict == "fail"]
    if failed:
        raise Exit(f"doctor: {len(failed)} problem(s): {', '.join(failed)}", code=1)
    info("doctor: the lab can run here")


@task(help={"hosts": HOSTS_HELP, "to": "bare (as `up` leaves them) or provisioned (the default)",
            "yes": "do not ask for confirmation",
            "recreate": "destroy, recreate (and provision) the hosts that lack the stage's snapshot "
                        "(refused otherwise)"})
@lab_task
def reset(c, hosts=None, to="provisioned", yes=False, recreate=False):
    """Return hosts to a known stage, bare or provisioned (default: the whole lab); their data is lost.

    The stage's snapshot is restored (`up` saves bare, `provision` saves provisioned, on
    every provider), without provisioning again; then the reset waits, bounded, until the
    lab serves. A host without the snapshot is refused unless --recreate. Asks first,
    naming the hosts, unless --yes or there is no terminal."""
    from fabfile.lifecycle.reset import plan_reset, reset as run_reset
    m = machines()
    plan = plan_reset(m, names(hosts), to, recreate)
    if not yes and sys.stdin.isatty():
        answer = input(f"{plan.question()} [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise Exit("not reset", code=1)
    run_reset(m, plan=plan)


@task(help={"host": "the host whose journal to show", "service": "the unit (default: the role's services)",
            "follow": "keep printing new lines (Ctrl-C stops)", "lines": "how many past lines (default 50)"})
@lab_task
def logs(c, host, service=None, follow=False, lines=50):
    """Show a service's journal on HOST (the role's services by default)."""
    from fabfile.roles import role_of
    m = machines()
    units = [service] if service else list(role_of(m.lab.host(host)).services)
    command = "sudo journalctl --no-pager " + " ".join(f"-u {u}" for u in units) + f" -n {int(lines)}"
    exec_ssh(m.ssh_argv(host, command + (" -f" if follow else ""), tty=follow))


SNAPSHOT_NAME_HELP = "the snapshot's name (the stages `up` and `provision` save are bare and provisioned)"


@task(help={"name": SNAPSHOT_NAME_HELP, "hosts": HOSTS_HELP})
@lab_task
def snapshot_save(c, name, hosts=None):
    """Save a snapshot of the lab (or some hosts); one of the same name is replaced.

    VirtualBox and libvirt: Vagrant's snapshots. Docker: each container committed to an
    image named after the lab, host and snapshot (`invoke destroy` removes them)."""
    from fabfile.machines.snapshots import Snapshots
    Snapshots(machines()).save(name, names(hosts))


@task(help={"name": SNAPSHOT_NAME_HELP, "hosts": HOSTS_HELP})
@lab_task
def snapshot_restore(c, name, hosts=None):
    """Restore the lab (or some hosts) to a snapshot, without provisioning again."""
    from fabfile.machines.snapshots import Snapshots
    Snapshots(machines()).restore(name, names(hosts))


@task
@lab_task
def snapshot_list(c):
    """List each host's snapshots."""
    from fabfile.machines.snapshots import Snapshots
    listed = Snapshots(machines()).list()
    info(table(["host", "snapshots"], [[h, ", ".join(s) or "-"] for h, s in listed.items()]))


@task(help={"name": SNAPSHOT_NAME_HELP, "hosts": HOSTS_HELP})
@lab_task
def snapshot_delete(c, name, hosts=None):
    """Delete a snapshot."""
    from fabfile.machines.snapshots import Snapshots
    Snapshots(machines()).delete(name, names(hosts))


snapshot = Collection("snapshot")
for verb, func in (("save", snapshot_save), ("restore", snapshot_restore),
                   ("list", snapshot_list), ("delete", snapshot_delete)):
    snapshot.add_task(func, name=verb)

ns = Collection(up, provision, verify, failover, monitor, bench, soak, status, watch, graph, ssh, console,
                firewall, run, logs, halt, reset, destroy, doctor, ca, snapshot)
