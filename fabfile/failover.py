"""`invoke failover`: break the MASTER balancer on purpose while an open-loop client sends
requests to the VIP, and measure the gap, the failed requests, split brain, the writes
kept and the recovery."""
import json
import shlex
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from . import docker
from .client import request
from .drill_client import OpenLoopClient, gap_ms, outage_ms
from .errors import LabError
from .inventory import connect
from .netsafety import ensure_local_route
from .output import say, table
from .remote import run_one
from .roles.loadbalancer import interface_fact
from .settings import ROLE_SETTINGS

SCENARIOS = ("haproxy", "keepalived", "halt", "crash", "network")
RATE = 40                 # requests per second: a 25 ms resolution on the gap
BASELINE_S = 1.0          # requests before the fault, all through the MASTER
AFTER_FAILOVER_S = 2.0    # requests after the first success through the other balancer
MAX_WINDOW_S = 30.0       # the client stops by then, failover or not
HEALTHY_TIMEOUT_S = 120   # recovery must come within this
SAMPLE_EVERY_S = 0.1      # how often both balancers are asked whether they hold the VIP


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

    @property
    def passed(self):
        return (self.gap_ms is not None and not self.split_brain and self.recovered
                and self.writes_found == self.writes_acked)


class VipSampler:
    """Asks both balancers, every SAMPLE_EVERY_S, whether they hold the VIP, on connections
    of its own; a balancer that does not answer counts as not holding it."""

    def __init__(self, lab, endpoints_of):
        self.lab = lab
        self.endpoints_of = endpoints_of
        self.samples = []  # (time, frozenset of holders)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._connections = {}

    def _holds(self, name):
        try:
            if name not in self._connections:
                endpoint = self.endpoints_of().get(name)
                if endpoint is None:
                    return False
                self._connections[name] = connect(endpoint)
                self._connections[name].connect_timeout = 1
            result = self._connections[name].run("ip -o -4 addr show", hide=True, warn=True, timeout=2)
            return f" {self.lab.vip}/" in result.stdout
        except Exception:
            self._connections.pop(name, None)
            return False

    def _loop(self):
        balancers = [h.name for h in self.lab.with_role("loadbalancer")]
        deadline = time.monotonic() + MAX_WINDOW_S + HEALTHY_TIMEOUT_S + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            holders = frozenset(n for n in balancers if self._holds(n))
            self.samples.append((time.monotonic(), holders))
            self._stop.wait(SAMPLE_EVERY_S)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        for connection in self._connections.values():
            connection.close()

    @property
    def split_brain(self):
        return any(len(holders) > 1 for _, holders in self.samples)


class FailoverDrills:
    def __init__(self, machines, provider):
        self.machines = machines
        self.lab = machines.lab
        self.provider = provider
        self.balancers = self.lab.with_role("loadbalancer")
        self.db = self.lab.with_role("db")[0]

    # --- what the lab looks like -------------------------------------------------------
    def _connections(self, hosts):
        return self.machines.connections(hosts)

    def health(self):
        """(healthy, VIP holders, detail): both balancers up with one MASTER and one
        BACKUP, exactly one holding the VIP, and a page through the VIP."""
        try:
            connections = self._connections(self.balancers)
        except LabError as exc:
            return False, [], exc.problem
        script = ("ip -o -4 addr show; systemctl is-active haproxy keepalived; "
                  "tail -n 1 /var/log/keepalived-transitions.log 2>/dev/null")
        holders, states = [], []
        for name, connection in connections.items():
            result = run_one(name, connection, "sudo -n sh -c " + shlex.quote(script), timeout=5)
            connection.close()
            if not result.ok:
                return False, holders, f"{name}: {result.error or result.stderr.strip()}"
            if f" {self.lab.vip}/" in result.stdout:
                holders.append(name)
            if result.stdout.count("\nactive") + result.stdout.startswith("active") < 2:
                return False, holders, f"{name}: haproxy or keepalived not active"
            states.append("MASTER" if "state=MASTER" in result.stdout else
                          "BACKUP" if "state=BACKUP" in result.stdout else "other")
        if len(holders) != 1 or sorted(states) != ["BACKUP", "MASTER"]:
            return False, holders, f"VIP on {holders or 'nobody'}, states {states}"
        preferred = self.balancers[0].name
        if ROLE_SETTINGS["loadbalancer"]["preempt"] and holders != [preferred]:
            return False, holders, f"VIP on {holders[0]}, waiting for {preferred} to take it back (preempt)"
        try:
            page = request(self.lab.vip, "GET", "/", timeout=1)
        except OSError as exc:
            return False, holders, f"page through the VIP: {exc}"
        return page.status == 200, holders, f"page HTTP {page.status}"

    def wait_healthy(self, timeout=HEALTHY_TIMEOUT_S):
        started = time.monotonic()
        detail = ""
        while time.monotonic() - started < timeout:
            healthy, holders, detail = self.health()
            if healthy:
                return True, holders, time.monotonic() - started
            time.sleep(0.5)
        return False, [], detail

    def writes_found(self, ids):
        if not ids:
            return 0
        connection = self._connections([self.db])[self.db.name]
        sql = f"SELECT COUNT(*) FROM notes.notes WHERE id IN ({','.join(str(int(i)) for i in ids)})"
        result = run_one(self.db.name, connection, f"sudo -n mariadb -N -e {shlex.quote(sql)}", timeout=30)
        connection.close()
        if not result.ok:
            raise LabError(f"cannot count the drill's writes on {self.db.name}: {result.stderr.strip()}")
        return int(result.stdout.strip())

    # --- faults and their undoing ------------------------------------------------------
    def _sudo(self, host, command, connection=None):
        own = connection is None
        connection = connection or self._connections([host])[host.name]
        result = run_one(host.name, connection, "sudo -n sh -c " + shlex.quote(command), timeout=30)
        if own:
            connection.close()
        if not result.ok:
            raise LabError(f"`{command}` failed: {result.error or result.stderr.strip()}", host=host.name)
        return result.stdout

    def inject(self, scenario, host, iface, connection):
        """Break `host`; `connection` is already open, so an SSH handshake does not count
        in the gap."""
        if scenario == "haproxy":
            self._sudo(host, "systemctl stop haproxy", connection)
        elif scenario == "keepalived":
            self._sudo(host, "systemctl stop keepalived", connection)
        elif scenario == "halt":
            self.machines.halt([host.name])
        elif scenario == "crash":
            if self.provider == "docker":
                docker.docker("kill", f"{self.lab.name}-{host.name}")
                self.machines.inventory.invalidate([host.name])
            else:
                self.machines.halt([host.name], force=True)
        elif scenario == "network":
            self._sudo(host, f"ip link set {iface} down", connection)

    def undo(self, scenario, host, iface):
        if scenario == "haproxy":
            self._sudo(host, "systemctl start haproxy")
        elif scenario == "keepalived":
            self._sudo(host, "systemctl start keepalived")
        elif scenario in ("halt", "crash"):
            self.machines.up([host.name], self.provider, quiet=True)
        elif scenario == "network":
            self._sudo(host, f"ip link set {iface} up")

    def interface(self, host):
        query = interface_fact(host)["iface"]
        return self._sudo(host, query).strip()

    # --- one drill ---------------------------------------------------------------------
    def run(self, scenario):
        healthy, holders, detail = self.wait_healthy(timeout=60)
        if not healthy:
            raise LabError(f"the lab is not healthy before the {scenario} drill: {detail}",
                           "run `invoke verify`; `invoke provision` repairs most things")
        master = self.lab.host(holders[0])
        other = next(h for h in self.balancers if h != master)
        iface = self.interface(master) if scenario == "network" else None
        say(master.name, f"drill {scenario}: {master.name} holds the VIP; breaking it")

        connection = self._connections([master])[master.name]
        connection.open()
        sampler = VipSampler(self.lab, self.machines.inventory.cached_endpoints).start()
        client = OpenLoopClient(self.lab.vip, rate=RATE, count=int(RATE * MAX_WINDOW_S),
                                max_seconds=MAX_WINDOW_S).start()
        time.sleep(BASELINE_S)
        fault_at = time.monotonic()
        injector = ThreadPoolExecutor(max_workers=1)
        fault = injector.submit(self.inject, scenario, master, iface, connection)  # halt blocks for seconds
        gap = None
        while time.monotonic() - fault_at < MAX_WINDOW_S - BASELINE_S:
            gap = gap_ms(client.sorted_samples(), fault_at, other.name)
            if gap is not None and time.monotonic() - fault_at > gap / 1000 + AFTER_FAILOVER_S:
                break
            time.sleep(0.1)
        client.stop()
        try:
            fault.result(timeout=120)
        except Exception:
            sampler.stop()
            raise
        finally:
            injector.shutdown(wait=False)
            connection.close()

        undo_at = time.monotonic()
        self.undo(scenario, master, iface)
        recovered, holders, _ = self.wait_healthy()
        recovery_s = time.monotonic() - undo_at
        sampler.stop()

        samples = client.sorted_samples()
        acked = [s.note_id for s in samples if s.kind == "write" and s.ok]
        drill = Drill(scenario, master.name, gap, outage_ms(samples, fault_at, master.name, other.name),
                      len(samples), sum(1 for s in samples if not s.ok),
                      sampler.split_brain, len(acked), self.writes_found(acked), recovered,
                      round(recovery_s, 1), ",".join(holders) or "-",
                      recovered and holders == [self.balancers[0].name])
        say(master.name, f"drill {scenario}: gap {gap if gap is not None else 'none'} ms "
                         f"(clients saw {drill.outage_ms} ms without an answer), "
                         f"{drill.failed}/{drill.requests} failed, writes {drill.writes_found}/{drill.writes_acked}, "
                         f"recovered in {drill.recovery_s}s" + ("" if drill.passed else "  FAILED"))
        return drill


def run_failover(machines, scenarios, repeat=1):
    lab = machines.lab
    ensure_local_route(lab.vip, lab.network)
    provider = machines.provider()
    drills = FailoverDrills(machines, provider)
    results = []
    for round_ in range(repeat):
        for scenario in scenarios:
            results.append(drills.run(scenario))
    return Report(results)


@dataclass
class Report:
    drills: list

    @property
    def passed(self):
        return all(d.passed for d in self.drills)

    def medians(self):
        """{scenario: (median gap ms, median failed requests)} over the repeats."""
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

    def write_json(self, path):
        with open(path, "w") as handle:
            json.dump(self.as_json(), handle, indent=2)
            handle.write("\n")
