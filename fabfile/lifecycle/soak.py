"""`invoke soak`: leave the lab idle under a light bounded load, with every core of this
machine busy, and count the VRRP transitions that no fault caused. Any transition in a
soak is a false one: nothing is broken on purpose, so a backup that took the VIP did so
because the master's adverts came late.

The transitions are the balancers' own records: the lines keepalived's notify script
appends to its log between the soak's start and end (a bookmark per balancer, so the
clocks of the guests never matter), and each balancer's VRRP state at both ends.

With several advert intervals, each is rendered into keepalived.conf through the normal
provision path (the templates, `keepalived -t`, a reload), soaked in turn, and the lab's
configured timers are put back at the end, on every way out."""
import dataclasses
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

from ..checks.http import lab_tls
from ..checks.netsafety import ensure_local_route
from ..core.console import error, info, say, table
from ..core.errors import LabError
from ..drills.client import MAX_SECONDS, OpenLoopClient
from ..drills.cpuload import CpuBurners, cores
from ..machines.providers import lab_timer_profile
from ..remote import facts as F
from ..remote.parallel import in_parallel
from ..roles.loadbalancer import (KEEPALIVED_CONF, LOADBALANCER, TRANSITIONS_LOG, balancers, pair_facts,
                                  pair_health, transitions_after, transitions_logged)
from .provision import Provisioner

MAX_MINUTES = 240          # a soak is bounded, like every loop of the lab
LOAD_RATE = 5              # requests per second through the VIP, reads only: light
LOAD_SAMPLE_S = 5          # the machine's load average is read this often
PROGRESS_S = 60            # a progress line (and a look at the balancers' logs) this often
BURN_MARGIN_S = 30         # the burners' own deadline: the soak's length plus this
HEALTHY_TIMEOUT_S = 120    # the pair must be MASTER + BACKUP again within this after a change (TCG guests are slow)
FACTS_TIMEOUT_S = 10
RESTORE_ATTEMPTS = 2
ADVERT_INT_RANGE = (0.01, 40.95)  # VRRPv3 counts advert_int in centiseconds, 12 bits
ADVERT_WORD = F.config_words(KEEPALIVED_CONF, r"^\s*advert_int")


def master_down_ms(advert_int, priority):
    """How long a backup of `priority` waits for a silent master: 3 x advert_int + skew."""
    return round((3 * advert_int + (256 - priority) * advert_int / 256) * 1000)


def rendered_advert_int(words):
    """The seconds of keepalived.conf's `advert_int N` line (None when it has none)."""
    try:
        return float(words[1]) if len(words) == 2 and words[0] == "advert_int" else None
    except ValueError:
        return None


def per_hour(count, seconds):
    return round(count * 3600 / seconds, 1) if seconds > 0 else None


def check_inputs(minutes, advert_ints):
    """LabError before anything changes: a soak has a length, and advert intervals keepalived takes."""
    if not 0 < minutes <= MAX_MINUTES:
        raise LabError(f"--minutes {minutes} is out of range", f"use more than 0 and at most {MAX_MINUTES}")
    low, high = ADVERT_INT_RANGE
    for value in advert_ints:
        if not low <= value <= high or abs(value * 100 - round(value * 100)) > 1e-6:
            raise LabError(f"--advert-int {value} is not a VRRPv3 advert interval",
                           f"use seconds from {low} to {high} in steps of 0.01, e.g. 0.05,0.1,0.2")
    if len(set(advert_ints)) != len(advert_ints):
        raise LabError("--advert-int names a value twice", "give each interval once")


@dataclass
class SettingRun:
    """One advert interval, soaked."""
    advert_int: float
    master_down_ms: int
    seconds: float = 0.0
    transitions: list = field(default_factory=list)   # notify lines: at, host, state, ...
    load_average: list = field(default_factory=list)  # this machine's 1-minute load, sampled
    requests: int = 0
    failed: int = 0
    states_after: dict = field(default_factory=dict)
    complete: bool = False

    @property
    def minutes(self):
        return round(self.seconds / 60, 2)

    @property
    def false_per_hour(self):
        return per_hour(len(self.transitions), self.seconds)

    def as_json(self):
        load = self.load_average
        return {"advert_int": self.advert_int, "master_down_ms": self.master_down_ms, "minutes": self.minutes,
                "transitions": len(self.transitions), "false_transitions_per_hour": self.false_per_hour,
                "load_average": {"mean": round(sum(load) / len(load), 2) if load else None,
                                 "max": round(max(load), 2) if load else None},
                "requests": self.requests, "failed_requests": self.failed, "complete": self.complete,
                "states_after": self.states_after, "transition_log": self.transitions}


@dataclass
class SoakReport:
    lab: str
    provider: str
    cores: int
    burners: int
    configured_advert_int: float
    runs: list = field(default_factory=list)
    restored: object = None   # True/False once the configured timers were put back; None: never changed

    @property
    def passed(self):
        return bool(self.runs) and all(r.complete and not r.transitions for r in self.runs) \
            and self.restored is not False

    def as_json(self):
        return {"lab": self.lab, "provider": self.provider, "cores": self.cores, "burners": self.burners,
                "configured": {"advert_int": self.configured_advert_int}, "restored": self.restored,
                "passed": self.passed, "settings": [r.as_json() for r in self.runs]}

    def table(self):
        rows = []
        for run in self.runs:
            data = run.as_json()
            load = data["load_average"]
            rows.append([f"{run.advert_int:g}", run.master_down_ms, f"{run.minutes:g}", len(run.transitions),
                         run.false_per_hour, f"{load['mean']} / {load['max']}", run.requests, run.failed,
                         "yes" if run.complete else "no"])
        return table(["advert_int s", "master down ms", "minutes", "transitions", "false / hour",
                      "load mean / max", "requests", "failed", "complete"], rows)


class Soak:
    def __init__(self, machines):
        self.machines = machines
        self.lab = machines.lab
        self.hosts = balancers(self.lab)
        self.settings = LOADBALANCER.settings(self.lab)
        self.connections = {}
        self.tls = lab_tls(self.lab)  # the light load speaks HTTPS: :80 only redirects
        self.applied = self.settings["advert_int"]  # what keepalived.conf says now

    # --- the balancers ----------------------------------------------------------------
    def connect(self):
        for connection in self.connections.values():
            connection.close()
        self.connections = self.machines.connections(self.hosts)

    def gather(self, facts_of):
        """{balancer: facts or None} in parallel, one round trip each."""
        def ask(host):
            try:
                return host.name, F.gather(self.connections[host.name], facts_of(host), timeout=FACTS_TIMEOUT_S)
            except Exception:
                return host.name, None
        return dict(in_parallel(ask, self.hosts))

    def wait_healthy(self, settings):
        """One MASTER, one BACKUP, the VIP on the preferred master (bounded)."""
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while True:
            facts = {n: f for n, f in self.gather(lambda h: pair_facts()).items() if f is not None}
            healthy, _, detail = pair_health(self.lab, settings, facts)
            if healthy or time.monotonic() > deadline:
                return healthy, detail
            time.sleep(0.5)

    def render(self, advert_int):
        """keepalived.conf with this advert interval, through provision's own engine (not
        `provision()`: that would save a stage snapshot of a lab under test)."""
        configured = self.lab.settings.get("loadbalancer", {})
        lab = self.lab if advert_int is None else dataclasses.replace(
            self.lab, settings={**self.lab.settings, "loadbalancer": {**configured, "advert_int": advert_int}})
        self.connect()
        self.applied = None  # unknown until the run succeeds: a failed one is restored too
        # Where each balancer sees our SSH come from, as `invoke provision` passes it: without
        # it the firewall's SSH rule would lose Vagrant's source, the new ruleset would cut
        # SSH and roll itself back, and the render would fail.
        ssh_sources = self.machines.ssh_sources(self.hosts)
        missing = [h.name for h in self.hosts if not ssh_sources.get(h.name)]
        if missing:
            raise LabError(f"cannot tell where {', '.join(missing)} see this machine's SSH come from; "
                           "their firewall would shut it out", "run `invoke up` again (it refreshes the SSH endpoints)")
        report = Provisioner(lab, self.connections, ssh_sources=ssh_sources).run()
        if report.failed:
            raise LabError(report.verdict(), "fix what it names, then `invoke provision --roles loadbalancer`")
        self.applied = self.settings["advert_int"] if advert_int is None else advert_int
        self.connect()  # the provision's connections are the engine's; the soak asks on fresh ones
        healthy, detail = self.wait_healthy(LOADBALANCER.settings(lab))
        if not healthy:
            raise LabError(f"the balancers did not settle after the change: {detail}",
                           "see `invoke status`; `invoke provision --roles loadbalancer` restores the timers")

    def restore(self):
        """Put the lab's configured timers back (a second try when the first fails: on a
        swamped machine a facts round trip can time out) and check keepalived.conf says them."""
        info(f"soak: restoring the configured advert_int {self.settings['advert_int']:g}")
        for attempt in range(1, RESTORE_ATTEMPTS + 1):
            try:
                self.render(None)
                break
            except LabError as exc:
                if attempt == RESTORE_ATTEMPTS:
                    raise
                error(f"soak: restoring failed ({exc.problem.splitlines()[0]}); trying again")
        words = self.gather(lambda h: [ADVERT_WORD])
        return all(f is not None and rendered_advert_int(F.value(f, ADVERT_WORD)) == self.settings["advert_int"]
                   for f in words.values())

    # --- one soak ---------------------------------------------------------------------
    def bookmarks(self):
        marks = self.gather(lambda h: [transitions_logged()])
        down = [n for n, f in marks.items() if f is None]
        if down:
            raise LabError(f"cannot read the transitions log on {', '.join(down)}", "see `invoke status`")
        return {n: F.value(f, transitions_logged()) for n, f in marks.items()}

    def new_transitions(self, marks, extra=()):
        """({balancer: [transitions since its bookmark]}, {balancer: facts})."""
        facts = self.gather(lambda h: [transitions_after(marks[h.name]), *extra])
        return {n: [t for t in F.value(f, transitions_after(marks[n]), []) if t.get("type", "INSTANCE") == "INSTANCE"]
                for n, f in facts.items() if f is not None}, facts

    def soak_one(self, run, seconds, burners):
        marks = self.bookmarks()
        seen = {n: 0 for n in marks}
        client, client_end = None, 0.0
        started = time.monotonic()
        end = started + seconds
        next_progress = started + PROGRESS_S
        info(f"soak: advert_int {run.advert_int:g} s (a silent master is found after "
             f"{run.master_down_ms} ms) for {seconds / 60:g} min, {burners} CPU burner(s)")
        burning = CpuBurners(seconds + BURN_MARGIN_S, burners) if burners else nullcontext()
        try:
            with burning:
                while (now := time.monotonic()) < end:
                    if client is None or now >= client_end:
                        if client is not None:
                            client.stop()
                            self.count(run, client)
                        window = min(end - now, MAX_SECONDS)
                        client = OpenLoopClient(self.lab.vip, rate=LOAD_RATE, count=max(1, int(LOAD_RATE * window)),
                                                write_every=0, max_seconds=window, tag="soak",
                                                tls=self.tls).start()
                        client_end = now + window
                    time.sleep(max(0.0, min(LOAD_SAMPLE_S, end - time.monotonic())))
                    run.load_average.append(os.getloadavg()[0])
                    run.seconds = time.monotonic() - started
                    if time.monotonic() >= next_progress:
                        next_progress += PROGRESS_S
                        found, _ = self.new_transitions(marks)
                        self.tell(found, seen)
                        info(f"soak: advert_int {run.advert_int:g}: {run.seconds / 60:.0f} of {seconds / 60:g} min, "
                             f"{sum(seen.values())} transition(s), load {run.load_average[-1]:.1f}")
        finally:
            if client is not None:
                client.stop()
                self.count(run, client)
            run.seconds = time.monotonic() - started
        found, facts = self.new_transitions(marks, extra=pair_facts())
        missing = [h.name for h in self.hosts if h.name not in found]
        if missing:
            raise LabError(f"cannot read the transitions log on {', '.join(missing)} after the soak",
                           "see `invoke status`")
        self.tell(found, seen)
        run.transitions = sorted((t for ts in found.values() for t in ts), key=lambda t: t["at"])
        run.states_after = {n: F.value(f, F.vrrp_state(TRANSITIONS_LOG)) for n, f in facts.items()}
        run.complete = True

    @staticmethod
    def count(run, client):
        samples = client.sorted_samples()
        run.requests += len(samples)
        run.failed += sum(1 for s in samples if not s.ok)

    @staticmethod
    def tell(found, seen):
        """Say each transition once, on its balancer's line."""
        for name, transitions in found.items():
            for t in transitions[seen[name]:]:
                say(name, f"VRRP transition to {t.get('state', '?')} at {t.get('at', '?')} (no fault caused it)")
            seen[name] = len(transitions)


def soak(machines, minutes, advert_ints=(), burn=True, on_setting=None):
    """Soak each advert interval (default: the configured one) for `minutes`; returns a
    SoakReport. `on_setting(report)` after each, so an interrupted soak keeps what it measured."""
    advert_ints = list(advert_ints)
    check_inputs(minutes, advert_ints)
    lab = machines.lab
    ensure_local_route(lab.vip, lab.network)
    runner = Soak(machines)
    configured = runner.settings["advert_int"]
    backup_priority = runner.settings["priority_backup"]
    report = SoakReport(lab.name, lab_timer_profile(lab) or "unknown", cores(), cores() if burn else 0, configured)
    runner.connect()
    healthy, detail = runner.wait_healthy(runner.settings)
    if not healthy:
        raise LabError(f"the balancers are not healthy before the soak: {detail}",
                       "run `invoke provision`, then `invoke verify`")
    try:
        for advert_int in advert_ints or [configured]:
            if advert_int != runner.applied:
                info(f"soak: rendering keepalived.conf with advert_int {advert_int:g}")
                runner.render(advert_int)
            run = SettingRun(advert_int, master_down_ms(advert_int, backup_priority))
            report.runs.append(run)
            try:
                runner.soak_one(run, minutes * 60, report.burners)
            finally:
                if on_setting:
                    on_setting(report)
    finally:
        try:
            if runner.applied != configured:
                report.restored = runner.restore()
                if on_setting:
                    on_setting(report)
        except (Exception, KeyboardInterrupt):
            report.restored = False
            error("soak: the configured timers may not be back: run `invoke provision --roles loadbalancer`")
            raise
        finally:
            for connection in runner.connections.values():
                connection.close()
    return report
