"""`invoke failover`: break the MASTER balancer on purpose while an open-loop client sends
requests to the VIP, and measure the gap, the failed requests, split brain, the writes
kept and the recovery. Every fault is undone on every way out of a drill."""
import secrets
import shlex
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Optional

from ..checks.http import lab_tls, request
from ..checks.netsafety import ensure_local_route
from ..core.console import say, table
from ..core.errors import LabError
from ..remote import facts as F
from ..remote.connection import scaled
from ..remote.parallel import run_one
from ..roles import ROLES
from ..roles.db import notes_table
from ..roles.loadbalancer import balancers, pair_facts, pair_health, peer_of
from .accounting import latency_quantiles, write_accounting
from .alerts import observe as observe_alerts
from .client import OpenLoopClient, gap_ms, outage_ms
from .sampler import VipSampler
from .scenarios import SCENARIOS

RATE = 40                 # requests per second: a 25 ms resolution on the gap
REQUEST_TIMEOUT_S = 0.5   # a request slower than this counts as failed
BASELINE_S = 1.0          # requests before the fault, all through the MASTER
AFTER_FAILOVER_S = 2.0    # requests after the first success through the other balancer
MAX_WINDOW_S = 30.0       # the client stops by then, failover or not
HEALTHY_TIMEOUT_S = 120   # recovery must come within this
FAULT_TIMEOUT_S = 120     # a fault command (a halt) must return within this
POWER_OFF_TIMEOUT_S = 90  # a clean shutdown must have stopped the machine by then


@dataclass
class Drill:
    scenario: str
    master: str
    gap_ms: object
    outage_ms: object
    requests: int
    failed: int
    split_brain: bool
    writes_acked: int
    writes_found: int
    recovered: bool
    recovery_s: float
    vip_after: str
    failback: bool
    # What the report draws; times in ms from the client's first request.
    other: str = ""
    balancers: list = field(default_factory=list)
    fault_ms: float = 0.0
    undo_ms: float = 0.0
    end_ms: float = 0.0
    timeline: list = field(default_factory=list)     # every request: t_ms, latency_ms, kind, ok, balancer, error
    vip_samples: list = field(default_factory=list)  # t_ms, holders
    writes: dict = field(default_factory=dict)       # attempted, acknowledged, found, lost, recovered, unexpected
    latency_ms: dict = field(default_factory=dict)   # p50, p95, p99, max
    # With a monitoring server: what it saw (alerts fired/resolved, s after the fault) and
    # the peak requests/s through each balancer (drills/alerts.py); empty without one.
    alerts: list = field(default_factory=list)
    monitored_rps: dict = field(default_factory=dict)

    @property
    def passed(self):
        return (self.gap_ms is not None and not self.split_brain and self.recovered
                and self.writes_found == self.writes_acked)


def wait_for(fault):
    """Let the fault command end (bounded) before it is undone; its own error is the
    drill's to report, not this wait's."""
    try:
        fault.result(timeout=scaled(FAULT_TIMEOUT_S))
    except BaseException:
        pass


@dataclass
class Target:
    host: object
    connection: object
    iface: Optional[str]


class FailoverDrills:
    def __init__(self, machines, provider):
        self.machines = machines
        self.lab = machines.lab
        self.provider = provider
        self.settings = ROLES["loadbalancer"].settings(self.lab)
        self.db = self.lab.with_role("db")[0]
        self.tls = lab_tls(self.lab)  # the drills' requests go over HTTPS, as a browser's would

    # --- what the lab looks like -------------------------------------------------------
    def pair_facts(self):
        """{balancer: facts} for the pair, on fresh connections; a host that does not
        answer is left out."""
        found = {}
        connections, _ = self.machines.inventory.connections(balancers(self.lab))
        for name, connection in connections.items():
            try:
                found[name] = F.gather(connection, pair_facts(), timeout=5)
            except Exception:
                pass
            finally:
                connection.close()
        return found

    def health(self):
        """(healthy, VIP holders, detail): the pair as `pair_health` judges it, and a page
        through the VIP."""
        healthy, holders, detail = pair_health(self.lab, self.settings, self.pair_facts())
        if not healthy:
            return False, holders, detail
        try:
            page = request(self.lab.vip, "GET", "/", timeout=1, tls=self.tls)
        except OSError as exc:
            return False, holders, f"page through the VIP: {exc}"
        return page.status == 200, holders, f"page HTTP {page.status}"

    def wait_healthy(self, timeout=HEALTHY_TIMEOUT_S):
        timeout = scaled(timeout)  # sized for the provider's hosts
        started = time.monotonic()
        detail = ""
        while time.monotonic() - started < timeout:
            healthy, holders, detail = self.health()
            if healthy:
                return True, holders, time.monotonic() - started
            time.sleep(0.5)
        return False, [], detail

    def texts_found(self, tag):
        """The texts of the notes this drill's client wrote (they all begin with its tag)."""
        connection = self.machines.connections([self.db])[self.db.name]
        fact = F.sql_value(f"SELECT text FROM {notes_table(ROLES['db'].settings(self.lab))} "
                           f"WHERE text LIKE '{tag} %'")
        try:
            return set(F.value(F.gather(connection, [fact], timeout=30), fact).splitlines())
        finally:
            connection.close()

    def writes_found(self, ids):
        if not ids:
            return 0
        connection = self.machines.connections([self.db])[self.db.name]
        fact = F.sql_value(f"SELECT COUNT(*) FROM {notes_table(ROLES['db'].settings(self.lab))} "
                           f"WHERE id IN ({','.join(str(int(i)) for i in ids)})")
        try:
            found = F.value(F.gather(connection, [fact], timeout=30), fact)
        finally:
            connection.close()
        if not found.isdigit():
            raise LabError(f"cannot count the drill's writes on {self.db.name}", host=self.db.name)
        return int(found)

    # --- faults and their undoing ------------------------------------------------------
    def sudo(self, host, command, connection=None):
        own = connection is None
        connection = connection or self.machines.connections([host])[host.name]
        result = run_one(host.name, connection, "sudo -n sh -c " + shlex.quote(command), timeout=30)
        if own:
            connection.close()
        if not result.ok:
            raise LabError(f"`{command}` failed: {result.error or result.stderr.strip()}", host=host.name)
        return result.stdout

    def power_off(self, target):
        """What `vagrant halt` does, without Vagrant's start-up in the measured gap: a clean
        shutdown asked from inside the guest on the drill's open connection, then a wait
        (bounded) until the provider's own state query says the machine is off."""
        name = target.host.name
        self.machines.inventory.invalidate([name])
        asked = run_one(name, target.connection, "sudo -n systemctl poweroff --no-block", timeout=10)
        if not asked.ok and asked.exit_code > 0:  # refused; a dropped connection is the shutdown itself
            raise LabError(f"`systemctl poweroff` failed: {asked.stderr.strip()}", host=name)
        deadline = time.monotonic() + POWER_OFF_TIMEOUT_S
        while self.machines.states().get(name, ("running",))[0] == "running":
            if time.monotonic() > deadline:
                raise LabError(f"still running {POWER_OFF_TIMEOUT_S}s after a clean shutdown was asked",
                               f"look at it: invoke logs {name}; `invoke halt --hosts {name} --force` "
                               f"powers it off", host=name)
            time.sleep(0.2)

    def interface(self, host):
        connection = self.machines.connections([host])[host.name]
        try:
            return F.value(F.gather(connection, [F.addresses()], timeout=10), F.addresses()).interface_of(host.ip)
        finally:
            connection.close()

    def undo(self, scenario, target):
        say(target.host.name, f"drill {scenario.name}: undoing the fault ({scenario.undo})")
        scenario.restore(self, target)

    # --- one drill ---------------------------------------------------------------------
    def run(self, name):
        scenario = SCENARIOS[name]
        healthy, holders, detail = self.wait_healthy(timeout=60)
        if not healthy:
            raise LabError(f"the lab is not healthy before the {name} drill: {detail}",
                           "run `invoke verify`; `invoke provision` repairs most things")
        master = self.lab.host(holders[0])
        other = peer_of(self.lab, master)
        connection = self.machines.connections([master])[master.name]
        connection.open()  # already open: an SSH handshake does not count in the gap
        target = Target(master, connection, self.interface(master) if name == "network" else None)
        say(master.name, f"drill {name}: {master.name} holds the VIP; breaking it ({scenario.fault})")

        sampler = VipSampler(self.lab, self.machines.inventory.cached_endpoints,
                             MAX_WINDOW_S + scaled(HEALTHY_TIMEOUT_S + FAULT_TIMEOUT_S)).start()
        tag = f"drill-{name}-{secrets.token_hex(4)}"
        rate, timeout = client_pace()
        client = OpenLoopClient(self.lab.vip, rate=rate, count=int(rate * MAX_WINDOW_S), timeout=timeout,
                                max_seconds=MAX_WINDOW_S, tag=tag, tls=self.tls).start()
        injector = ThreadPoolExecutor(max_workers=1)
        fault = undo_at = None
        try:
            try:
                time.sleep(BASELINE_S)
                fault_at = time.monotonic()
                fault_wall = time.time()  # Prometheus' clock: the alerts are timed from it
                fault = injector.submit(scenario.inject, self, target)  # a halt blocks for seconds
                gap = None
                while time.monotonic() - fault_at < MAX_WINDOW_S - BASELINE_S:
                    gap = gap_ms(client.sorted_samples(), fault_at, other.name)
                    if gap is not None and time.monotonic() - fault_at > gap / 1000 + AFTER_FAILOVER_S:
                        break
                    time.sleep(0.1)
                client.stop()
                fault.result(timeout=scaled(FAULT_TIMEOUT_S))
            finally:  # Ctrl-C, SIGTERM, a failed fault, a timeout: the fault is undone
                client.stop()
                if fault is not None:
                    wait_for(fault)  # a halt still running would hold the machine's lock
                injector.shutdown(wait=False)
                connection.close()
                if fault is not None:
                    undo_at = time.monotonic()
                    self.undo(scenario, target)
            recovered, holders, _ = self.wait_healthy()
            ended_at = time.monotonic()
            recovery_s = ended_at - undo_at
        finally:
            sampler.stop()

        samples = client.sorted_samples()
        acked = [s.note_id for s in samples if s.kind == "write" and s.ok]
        drill = Drill(name, master.name, gap, outage_ms(samples, fault_at, master.name, other.name),
                      len(samples), sum(1 for s in samples if not s.ok),
                      sampler.split_brain, len(acked), self.writes_found(acked), recovered,
                      round(recovery_s, 1), ",".join(holders) or "-",
                      recovered and holders == [balancers(self.lab)[0].name])
        self.record_timeline(drill, client, sampler, other, fault_at, undo_at, ended_at)
        writes = [s for s in samples if s.kind == "write"]
        drill.writes = write_accounting([s.text for s in writes], [s.text for s in writes if s.ok],
                                        self.texts_found(tag))
        drill.alerts, drill.monitored_rps = observe_alerts(self.lab, fault_wall, fault_wall - BASELINE_S)
        for alert in drill.alerts:
            say(master.name, f"drill {name}: monitor saw {alert['alertname']} {alert.get('host') or ''} "
                             f"{alert.get('job') or ''} "
                             f"fire at +{alert.get('fired_s')}s, resolve at +{alert.get('resolved_s')}s")
        say(master.name, f"drill {name}: gap {gap if gap is not None else 'none'} ms "
                         f"(clients saw {drill.outage_ms} ms without an answer), "
                         f"{drill.failed}/{drill.requests} failed, writes {drill.writes_found}/{drill.writes_acked}, "
                         f"recovered in {drill.recovery_s}s" + ("" if drill.passed else "  FAILED"))
        return drill


    def record_timeline(self, drill, client, sampler, other, fault_at, undo_at, ended_at):
        """The drill's requests and VIP samples on one time axis: ms from the first request."""
        began = client.began or fault_at

        def ms(moment):
            return round((moment - began) * 1000, 1)

        samples = client.sorted_samples()
        drill.other = other.name
        drill.balancers = [h.name for h in balancers(self.lab)]
        drill.fault_ms, drill.undo_ms, drill.end_ms = ms(fault_at), ms(undo_at), ms(ended_at)
        drill.timeline = [{"t_ms": ms(s.started), "latency_ms": round((s.finished - s.started) * 1000, 1),
                           "kind": s.kind, "ok": s.ok, "balancer": s.balancer, "error": s.error}
                          for s in samples]
        drill.vip_samples = [{"t_ms": ms(at), "holders": sorted(holders)}
                             for at, holders in sampler.samples if at >= began]
        drill.latency_ms = latency_quantiles([t["latency_ms"] for t in drill.timeline if t["ok"]])


def client_pace():
    """(requests per second, timeout): RATE and REQUEST_TIMEOUT_S on hosts as fast as a
    container; on slower ones (QEMU's software emulation) fewer requests, each given more
    time, so that the drill's load stays light and a slow answer is not a failed one."""
    slowness = scaled(1.0)
    return RATE / slowness, REQUEST_TIMEOUT_S * slowness


def run_failover(machines, scenarios, repeat=1, on_drill=None):
    """Run the drills in order; `on_drill(report)` is called after each, so that a report
    on disk always holds every finished drill."""
    lab = machines.lab
    ensure_local_route(lab.vip, lab.network)
    drills = FailoverDrills(machines, machines.provider())
    report = Report([])
    for _ in range(repeat):
        for scenario in scenarios:
            report.drills.append(drills.run(scenario))
            if on_drill:
                on_drill(report)
    return report


@dataclass
class Report:
    drills: list

    @property
    def passed(self):
        return all(d.passed for d in self.drills)

    def medians(self):
        """{scenario: (median gap ms, median outage ms, median failed requests)} over the repeats."""
        out = {}
        for scenario in dict.fromkeys(d.scenario for d in self.drills):
            mine = [d for d in self.drills if d.scenario == scenario]
            gaps = [d.gap_ms for d in mine if d.gap_ms is not None]
            outages = [d.outage_ms for d in mine if d.outage_ms is not None]
            out[scenario] = (statistics.median(gaps) if gaps else None,
                             statistics.median(outages) if outages else None,
                             statistics.median(d.failed for d in mine))
        return out

    def table(self):
        rows = [[d.scenario, d.master, "-" if d.gap_ms is None else d.gap_ms,
                 "-" if d.outage_ms is None else d.outage_ms, d.requests, d.failed,
                 "YES" if d.split_brain else "no", f"{d.writes_found}/{d.writes_acked}",
                 f"{d.recovery_s}s" if d.recovered else "NO", d.vip_after,
                 "pass" if d.passed else "FAIL"] for d in self.drills]
        return table(["scenario", "broken", "gap ms", "outage ms", "requests", "failed", "split brain",
                      "writes found/acked", "recovered", "VIP after", "verdict"], rows)

    def as_json(self):
        return {"drills": [dict(asdict(d), passed=d.passed) for d in self.drills],
                "medians": {s: {"gap_ms": g, "outage_ms": o, "failed": f}
                            for s, (g, o, f) in self.medians().items()},
                "passed": self.passed}
