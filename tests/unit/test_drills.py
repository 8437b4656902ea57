"""The failover drills without a lab: the scenarios table, the report, the run loop with
fakes for the machines, the client and the VIP sampler, and the sampler itself."""
import json
from dataclasses import asdict
import threading
import time
from types import SimpleNamespace

import pytest

from fabfile.core.errors import LabError
from fabfile.drills import failover as FO
from fabfile.drills import sampler as SA
from fabfile.drills.client import Sample
from fabfile.drills.failover import Drill, FailoverDrills, Report, Target
from fabfile.drills.scenarios import SCENARIOS
from tests.unit.test_role_checks import LAB, ip_addr

LB1, LB2 = LAB.host("lb1"), LAB.host("lb2")


# --- the scenarios table -----------------------------------------------------------------------

class RecordingDrills:
    """What a scenario may touch: `sudo` and the machines."""

    def __init__(self):
        self.calls = []
        self.provider = "libvirt"
        calls = self.calls
        self.machines = SimpleNamespace(
            halt=lambda names: calls.append(("halt", names)),  # not what the halt drill uses
            crash=lambda name: calls.append(("crash", name)),
            up=lambda names, provider, quiet=False: calls.append(("up", names, provider, quiet)))

    def sudo(self, host, command, connection=None):
        self.calls.append(("sudo", host.name, command, connection))
        return ""

    def power_off(self, target):
        self.calls.append(("power_off", target.host.name, target.connection))


OPEN = object()  # the drill's already open connection to the broken balancer


def test_scenarios_table():
    assert list(SCENARIOS) == ["haproxy", "keepalived", "halt", "crash", "network"]
    assert {n: (s.fault, s.undo) for n, s in SCENARIOS.items()} == {
        "haproxy": ("systemctl stop haproxy", "systemctl start haproxy"),
        "keepalived": ("systemctl stop keepalived", "systemctl start keepalived"),
        "halt": ("a clean shutdown from inside the machine (systemctl poweroff)", "the machine booted again"),
        "crash": ("the machine powered off at once", "the machine booted again"),
        "network": ("the private interface taken down", "the interface brought up")}
    for name, scenario in SCENARIOS.items():
        assert scenario.name == name
        assert callable(scenario.inject) and callable(scenario.restore)
        assert scenario.effect


@pytest.mark.parametrize("name, injected, restored", [
    ("haproxy", ("sudo", "lb1", "systemctl stop haproxy", OPEN), ("sudo", "lb1", "systemctl start haproxy", None)),
    ("keepalived", ("sudo", "lb1", "systemctl stop keepalived", OPEN),
     ("sudo", "lb1", "systemctl start keepalived", None)),
    ("network", ("sudo", "lb1", "ip link set eth1 down", OPEN), ("sudo", "lb1", "ip link set eth1 up", None)),
    ("halt", ("power_off", "lb1", OPEN), ("up", ["lb1"], "libvirt", True)),
    ("crash", ("crash", "lb1"), ("up", ["lb1"], "libvirt", True)),
])
def test_scenario_fault_uses_the_open_connection_and_the_undo_a_fresh_one(name, injected, restored):
    drills = RecordingDrills()
    target = Target(LB1, OPEN, "eth1" if name == "network" else None)
    SCENARIOS[name].inject(drills, target)
    assert drills.calls == [injected]
    SCENARIOS[name].restore(drills, target)
    assert drills.calls == [injected, restored]


def test_network_scenario_formats_the_interface_of_the_target():
    drills = RecordingDrills()
    SCENARIOS["network"].inject(drills, Target(LB2, OPEN, "enp0s8"))
    SCENARIOS["network"].restore(drills, Target(LB2, OPEN, "enp0s8"))
    assert [c[2] for c in drills.calls] == ["ip link set enp0s8 down", "ip link set enp0s8 up"]


# --- the halt: a clean shutdown from inside, the wait on the provider's state ------------------

class PowerOffMachines:
    def __init__(self, states):
        self.lab = LAB
        self.asked = 0
        self._states = states
        self.invalidated = []
        self.inventory = SimpleNamespace(invalidate=self.invalidated.append)

    def states(self):
        self.asked += 1
        return {"lb1": (self._states.pop(0) if len(self._states) > 1 else self._states[0], "docker")}


def test_power_off_asks_the_guest_then_waits_for_the_provider_to_say_off(monkeypatch):
    monkeypatch.setattr(FO.time, "sleep", lambda s: None)
    machines = PowerOffMachines(["running", "running", "stopped"])
    connection = FakeConnection("lb1")
    FailoverDrills(machines, "docker").power_off(Target(LB1, connection, None))
    assert connection.commands[0][0] == "sudo -n systemctl poweroff --no-block"
    assert machines.asked == 3 and machines.invalidated == [["lb1"]]
    assert not connection.closed, "the drill closes its own connection"


def test_power_off_takes_a_dropped_connection_for_the_shutdown(monkeypatch):
    monkeypatch.setattr(FO.time, "sleep", lambda s: None)
    machines = PowerOffMachines(["stopped"])
    FailoverDrills(machines, "docker").power_off(Target(LB1, FakeConnection("lb1", error=EOFError()), None))
    assert machines.asked == 1


def test_power_off_refused_or_never_off_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(FO.time, "sleep", lambda s: None)
    refused = FakeConnection("lb1", exited=1, stderr="sudo: a password is required")
    with pytest.raises(LabError, match="lb1: `systemctl poweroff` failed: sudo: a password is required"):
        FailoverDrills(PowerOffMachines(["running"]), "docker").power_off(Target(LB1, refused, None))
    monkeypatch.setattr(FO, "POWER_OFF_TIMEOUT_S", 0)
    with pytest.raises(LabError, match="still running 0s after a clean shutdown") as caught:
        FailoverDrills(PowerOffMachines(["running"]), "docker").power_off(Target(LB1, FakeConnection("lb1"), None))
    assert "invoke halt --hosts lb1 --force" in caught.value.fix


# --- the report ------------------------------------------------------------------------------------

def drill(scenario, gap, outage, failed, **kw):
    values = dict(scenario=scenario, master="lb1", gap_ms=gap, outage_ms=outage, requests=120, failed=failed,
                  split_brain=False, writes_acked=60, writes_found=60, recovered=True, recovery_s=4.2,
                  vip_after="lb1", failback=True)
    values.update(kw)
    return Drill(**values)


def test_drill_passed():
    assert drill("haproxy", 120, 150, 3).passed is True
    assert drill("haproxy", None, None, 30).passed is False           # no failover at all
    assert drill("haproxy", 120, 150, 3, split_brain=True).passed is False
    assert drill("haproxy", 120, 150, 3, recovered=False).passed is False
    assert drill("haproxy", 120, 150, 3, writes_found=59).passed is False  # an acknowledged write lost
    assert drill("haproxy", 120, 150, 3, failback=False, vip_after="lb2").passed is True


REPORT = Report([drill("haproxy", 100, 130, 2), drill("crash", 400, 420, 15), drill("haproxy", 140, 170, 4),
                 drill("crash", None, None, 60, recovered=False, vip_after="-", failback=False),
                 drill("haproxy", 90, 120, 3, split_brain=True)])


def test_report_medians_over_the_repeats_skip_the_missing_gaps():
    assert REPORT.medians() == {"haproxy": (100, 130, 3), "crash": (400, 420, 37.5)}
    assert Report([drill("network", None, None, 8)]).medians() == {"network": (None, None, 8)}


def test_report_table():
    assert REPORT.table().splitlines() == [
        "scenario  broken  gap ms  outage ms  requests  failed  split brain  writes found/acked  recovered  "
        "VIP after  verdict",
        "--------  ------  ------  ---------  --------  ------  -----------  ------------------  ---------  "
        "---------  -------",
        "haproxy   lb1     100     130        120       2       no           60/60               4.2s       "
        "lb1        pass",
        "crash     lb1     400     420        120       15      no           60/60               4.2s       "
        "lb1        pass",
        "haproxy   lb1     140     170        120       4       no           60/60               4.2s       "
        "lb1        pass",
        "crash     lb1     -       -          120       60      no           60/60               NO         "
        "-          FAIL",
        "haproxy   lb1     90      120        120       3       YES          60/60               4.2s       "
        "lb1        FAIL"]


CORE = ("scenario", "master", "gap_ms", "outage_ms", "requests", "failed", "split_brain", "writes_acked",
        "writes_found", "recovered", "recovery_s", "vip_after", "failback", "passed")


def test_report_as_json():
    data = REPORT.as_json()
    assert data["passed"] is False
    assert data["medians"] == {"haproxy": {"gap_ms": 100, "outage_ms": 130, "failed": 3},
                               "crash": {"gap_ms": 400, "outage_ms": 420, "failed": 37.5}}
    first = data["drills"][0]
    assert {k: first[k] for k in CORE} == {
        "scenario": "haproxy", "master": "lb1", "gap_ms": 100, "outage_ms": 130, "requests": 120, "failed": 2,
        "split_brain": False, "writes_acked": 60, "writes_found": 60, "recovered": True, "recovery_s": 4.2,
        "vip_after": "lb1", "failback": True, "passed": True}
    assert first == dict(asdict(REPORT.drills[0]), passed=True)
    assert [d["passed"] for d in data["drills"]] == [True, True, True, False, False]
    json.dumps(data)
    assert Report([drill("haproxy", 100, 130, 2)]).as_json()["passed"] is True


# --- run_failover --------------------------------------------------------------------------------

def test_run_failover_reports_after_every_drill(monkeypatch):
    routes, made, seen = [], [], []

    class FakeDrills:
        def __init__(self, machines, provider):
            made.append((machines, provider))

        def run(self, name):
            return drill(name, 100, 120, 1)

    monkeypatch.setattr(FO, "FailoverDrills", FakeDrills)
    monkeypatch.setattr(FO, "ensure_local_route", lambda vip, network: routes.append((vip, str(network))))
    machines = SimpleNamespace(lab=LAB, provider=lambda: "docker")
    report = FO.run_failover(machines, ["haproxy", "crash"], repeat=2,
                             on_drill=lambda r: seen.append([d.scenario for d in r.drills]))
    assert routes == [("192.168.56.10", "192.168.56.0/24")]
    assert made == [(machines, "docker")]
    assert seen == [["haproxy"], ["haproxy", "crash"], ["haproxy", "crash", "haproxy"],
                    ["haproxy", "crash", "haproxy", "crash"]]
    assert [d.scenario for d in report.drills] == ["haproxy", "crash", "haproxy", "crash"]


def test_run_failover_keeps_the_finished_drills_when_one_fails(monkeypatch):
    seen = []

    class FakeDrills:
        def __init__(self, machines, provider):
            pass

        def run(self, name):
            if name == "crash":
                raise LabError("the lab is not healthy before the crash drill: lb2: not reachable")
            return drill(name, 100, 120, 1)

    monkeypatch.setattr(FO, "FailoverDrills", FakeDrills)
    monkeypatch.setattr(FO, "ensure_local_route", lambda vip, network: None)
    with pytest.raises(LabError, match="crash drill"):
        FO.run_failover(SimpleNamespace(lab=LAB, provider=lambda: "docker"), ["haproxy", "crash"],
                        on_drill=lambda r: seen.append(len(r.drills)))
    assert seen == [1]


# --- FailoverDrills.run --------------------------------------------------------------------------

class FakeConnection:
    def __init__(self, name, stdout="", exited=0, stderr="", error=None):
        self.name, self.stdout, self.exited, self.stderr, self.error = name, stdout, exited, stderr, error
        self.opened = self.closed = False
        self.commands = []

    def open(self):
        self.opened = True

    def close(self):
        self.closed = True

    def run(self, command, **kw):
        self.commands.append((command, kw))
        if self.error:
            raise self.error
        return SimpleNamespace(stdout=self.stdout, stderr=self.stderr, exited=self.exited)


class FakeMachines:
    def __init__(self, **answers):
        self.lab = LAB
        self.answers = answers
        self.made = []
        self.inventory = SimpleNamespace(cached_endpoints=lambda: {})

    def connections(self, hosts):
        made = {h.name: FakeConnection(h.name, **self.answers.get(h.name, {})) for h in hosts}
        self.made.extend(made.values())
        return made


class FakeSampler:
    instances = []

    def __init__(self, lab, endpoints_of, max_seconds):
        self.max_seconds = max_seconds
        self.started = self.stopped = False
        self.split_brain = False
        self.samples = []
        FakeSampler.instances.append(self)

    def start(self):
        self.started = True
        return self

    def stop(self):
        self.stopped = True


def fake_client(samples_of):
    class FakeClient:
        instances = []

        def __init__(self, vip, rate, count, max_seconds, **kw):
            self.args = (vip, rate, count, max_seconds)
            self.kw = kw
            self.stops = 0
            self.began = None
            FakeClient.instances.append(self)

        def start(self):
            return self

        def stop(self):
            self.stops += 1

        def sorted_samples(self):
            return samples_of()
    return FakeClient


def interrupt():
    raise KeyboardInterrupt


@pytest.fixture
def drills(monkeypatch):
    """FailoverDrills over fake machines; `sudo` records (host, command, connection)."""
    FakeSampler.instances = []
    monkeypatch.setattr(FO, "VipSampler", FakeSampler)
    monkeypatch.setattr(FO, "BASELINE_S", 0)
    machines = FakeMachines()
    d = FailoverDrills(machines, "docker")
    d.recorded = []
    d.sudo = lambda host, command, connection=None: d.recorded.append((host.name, command, connection)) or ""
    d.wait_healthy = lambda timeout=None: (True, ["lb1"], 0.0)
    d.interface = lambda host: "eth1"
    d.texts_found = lambda tag: set()
    return d


def wait_for(predicate, seconds=2.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


@pytest.mark.parametrize("name, fault, undo", [
    ("haproxy", "systemctl stop haproxy", "systemctl start haproxy"),
    ("network", "ip link set eth1 down", "ip link set eth1 up")])
def test_interrupted_drill_undoes_its_fault_and_propagates(drills, monkeypatch, name, fault, undo):
    client = fake_client(interrupt)
    monkeypatch.setattr(FO, "OpenLoopClient", client)
    with pytest.raises(KeyboardInterrupt):
        drills.run(name)
    master_connection = drills.machines.made[0]
    assert (master_connection.name, master_connection.opened, master_connection.closed) == ("lb1", True, True)
    assert ("lb1", undo, None) in drills.recorded  # the undo on a fresh connection
    assert wait_for(lambda: ("lb1", fault, master_connection) in drills.recorded)
    assert client.instances[0].stops >= 1
    assert client.instances[0].args == ("192.168.56.10", FO.RATE, int(FO.RATE * FO.MAX_WINDOW_S), FO.MAX_WINDOW_S)
    assert [s.stopped for s in FakeSampler.instances] == [True]


def test_interrupted_drill_undoes_the_fault_only_after_it_landed(drills, monkeypatch):
    events = []

    def slow_fault(host, command, connection=None):
        if command == "systemctl stop haproxy":
            time.sleep(0.3)   # the fault's SSH round trip
        events.append(command)
        return ""

    drills.sudo = slow_fault
    monkeypatch.setattr(FO, "OpenLoopClient", fake_client(interrupt))
    with pytest.raises(KeyboardInterrupt):
        drills.run("haproxy")
    assert wait_for(lambda: len(events) == 2)
    assert events == ["systemctl stop haproxy", "systemctl start haproxy"]


def test_a_failed_fault_is_undone_and_raised(drills, monkeypatch):
    def failing(host, command, connection=None):
        drills.recorded.append((host.name, command, connection))
        if "stop" in command:
            raise LabError("`systemctl stop haproxy` failed: Permission denied", host=host.name)
        return ""

    drills.sudo = failing
    now = time.monotonic
    monkeypatch.setattr(FO, "OpenLoopClient", fake_client(
        lambda: [Sample(now(), now(), "read", True, "lb2")]))
    monkeypatch.setattr(FO, "AFTER_FAILOVER_S", 0)
    with pytest.raises(LabError, match="Permission denied"):
        drills.run("haproxy")
    assert [c[1] for c in drills.recorded] == ["systemctl stop haproxy", "systemctl start haproxy"]
    assert FakeSampler.instances[0].stopped is True


def test_a_whole_drill_measures_the_gap_and_the_writes(drills, monkeypatch):
    now = time.monotonic

    def samples():
        t = now()
        tag = client.instances[0].kw.get("tag", "drill")
        return [Sample(t - 5, t - 5, "read", True, "lb1"), Sample(t - 0.01, t, "read", False, error="timeout"),
                Sample(t, t, "write", True, "lb2", note_id=17, text=f"{tag} 2"), Sample(t, t, "read", True, "lb2")]

    client = fake_client(samples)
    monkeypatch.setattr(FO, "OpenLoopClient", client)
    drills.texts_found = lambda tag: {f"{tag} 2"}
    monkeypatch.setattr(FO, "AFTER_FAILOVER_S", 0)
    counted = []
    drills.writes_found = lambda ids: counted.append(list(ids)) or len(ids)
    healthy = iter([(True, ["lb1"], 0.0), (True, ["lb1"], 3.0)])
    drills.wait_healthy = lambda timeout=None: next(healthy)
    result = drills.run("keepalived")
    assert [c[1] for c in drills.recorded] == ["systemctl stop keepalived", "systemctl start keepalived"]
    assert (result.scenario, result.master, result.requests, result.failed) == ("keepalived", "lb1", 4, 1)
    assert (result.split_brain, result.writes_acked, result.writes_found, result.recovered) == (False, 1, 1, True)
    assert (result.vip_after, result.failback, result.passed) == ("lb1", True, True)
    assert isinstance(result.gap_ms, int) and 0 <= result.gap_ms < 1000
    assert counted == [[17]]
    assert result.writes == {"attempted": 1, "acknowledged": 1, "found": 1, "lost": 0, "recovered": 0,
                             "unexpected": 0}
    assert len(result.timeline) == 4


def test_an_unhealthy_lab_is_refused_before_anything_breaks(drills):
    drills.wait_healthy = lambda timeout=None: (False, ["lb2"], "lb1: haproxy not active")
    with pytest.raises(LabError) as raised:
        drills.run("crash")
    assert raised.value.problem == "the lab is not healthy before the crash drill: lb1: haproxy not active"
    assert drills.recorded == [] and drills.machines.made == []


# --- FailoverDrills.sudo -------------------------------------------------------------------------

def test_sudo_on_a_fresh_connection_closes_it():
    machines = FakeMachines(lb1={"stdout": "done\n"})
    d = FailoverDrills(machines, "docker")
    assert d.sudo(LB1, "systemctl start haproxy") == "done\n"
    [connection] = machines.made
    assert connection.closed is True
    assert connection.commands == [("sudo -n sh -c 'systemctl start haproxy'",
                                    {"hide": True, "warn": True, "timeout": 30, "in_stream": False})]


def test_sudo_on_the_open_connection_leaves_it_open():
    d = FailoverDrills(FakeMachines(), "docker")
    connection = FakeConnection("lb1")
    d.sudo(LB1, "systemctl stop haproxy", connection)
    assert connection.closed is False and d.machines.made == []


def test_sudo_failure_names_the_command_and_the_host():
    d = FailoverDrills(FakeMachines(lb1={"exited": 5, "stderr": "Failed to start haproxy.service: Unit not found.\n"}),
                       "docker")
    with pytest.raises(LabError) as raised:
        d.sudo(LB1, "systemctl start haproxy")
    assert (raised.value.problem, raised.value.host) == (
        "`systemctl start haproxy` failed: Failed to start haproxy.service: Unit not found.", "lb1")
    d = FailoverDrills(FakeMachines(lb2={"error": OSError("Connection reset by peer")}), "docker")
    with pytest.raises(LabError) as raised:
        d.sudo(LB2, "ip link set eth1 up")
    assert raised.value.problem == "`ip link set eth1 up` failed: OSError: Connection reset by peer"


# --- VipSampler ----------------------------------------------------------------------------------

class SamplerConnection:
    def __init__(self, name, holds, fail=False):
        self.name, self.holds, self.fail = name, holds, fail
        self.closed = False
        self.runs = 0

    def run(self, command, **kw):
        self.runs += 1
        assert command == "ip -o -4 addr show"
        if self.fail:
            raise EOFError("connection lost")
        ip = LAB.host(self.name).ip
        return SimpleNamespace(stdout=ip_addr(ip, self.name in self.holds[0]), stderr="", exited=0)

    def close(self):
        self.closed = True


@pytest.fixture
def sampling(monkeypatch):
    """(connections made, holders box): patched `connect`, fast sampling."""
    made = []
    holders = [{"lb1"}]
    failing = set()

    def connect(endpoint, connect_timeout=None):
        assert connect_timeout == 1
        connection = SamplerConnection(endpoint.name, holders, fail=endpoint.name in failing)
        made.append(connection)
        return connection

    monkeypatch.setattr(SA, "connect", connect)
    monkeypatch.setattr(SA, "SAMPLE_EVERY_S", 0.002)
    return made, holders, failing


ENDPOINTS = {"lb1": SimpleNamespace(name="lb1"), "lb2": SimpleNamespace(name="lb2")}


def sample_until(sampler, count):
    sampler.start()
    assert wait_for(lambda: len(sampler.samples) >= count)
    sampler.stop()
    return [h for _, h in sampler.samples]


def test_sampler_sees_the_vip_on_one_balancer(sampling):
    made, holders, _ = sampling
    sampler = SA.VipSampler(LAB, lambda: ENDPOINTS, 10)
    seen = sample_until(sampler, 3)
    assert set(seen) == {frozenset({"lb1"})}
    assert sampler.split_brain is False
    assert sorted(c.name for c in made) == ["lb1", "lb2"]   # one connection each, kept
    assert all(c.closed for c in made)


def test_sampler_detects_split_brain(sampling):
    made, holders, _ = sampling
    holders[0] = {"lb1", "lb2"}
    sampler = SA.VipSampler(LAB, lambda: ENDPOINTS, 10)
    assert set(sample_until(sampler, 2)) == {frozenset({"lb1", "lb2"})}
    assert sampler.split_brain is True


def test_sampler_asks_again_before_calling_a_handover_a_split_brain(sampling, monkeypatch):
    answers = {"lb1": iter([True, False]), "lb2": iter([True, True])}  # lb1 let go as lb2 took it

    def answer(self, command, **kw):
        held = next(answers[self.name], self.name == "lb2")
        return SimpleNamespace(stdout=ip_addr(LAB.host(self.name).ip, held), stderr="", exited=0)

    monkeypatch.setattr(SamplerConnection, "run", answer)
    sampler = SA.VipSampler(LAB, lambda: ENDPOINTS, 10)
    seen = sample_until(sampler, 2)
    assert seen[0] == frozenset({"lb2"}), "the overlap was not there when asked again"
    assert sampler.split_brain is False


def test_sampler_asks_both_balancers_at_once(sampling, monkeypatch):
    inside, most = [0], [0]
    lock = threading.Lock()

    def slow_answer(self, command, **kw):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with lock:
            inside[0] -= 1
        return SimpleNamespace(stdout=ip_addr(LAB.host(self.name).ip, self.name == "lb1"), stderr="", exited=0)

    monkeypatch.setattr(SamplerConnection, "run", slow_answer)
    sample_until(SA.VipSampler(LAB, lambda: ENDPOINTS, 10), 2)
    assert most[0] == 2


def test_sampler_counts_a_silent_or_unknown_balancer_as_not_holding(sampling):
    made, holders, failing = sampling
    holders[0] = {"lb1", "lb2"}
    failing.add("lb2")
    sampler = SA.VipSampler(LAB, lambda: {"lb2": ENDPOINTS["lb2"]}, 10)   # lb1 has no endpoint
    seen = sample_until(sampler, 3)
    assert set(seen) == {frozenset()}
    assert sampler.split_brain is False
    assert [c.name for c in made].count("lb2") >= 3   # a dropped connection is made again


def test_sampler_stops_by_itself_after_max_seconds(sampling):
    sampler = SA.VipSampler(LAB, lambda: ENDPOINTS, 0.05).start()
    sampler._thread.join(timeout=2)
    assert not sampler._thread.is_alive()
    assert 0 < len(sampler.samples)
    times = [t for t, _ in sampler.samples]
    assert times == sorted(times) and times[-1] - times[0] <= 0.1
    sampler.stop()


def test_no_samples_means_no_split_brain():
    assert SA.VipSampler(LAB, lambda: {}, 1).split_brain is False


def test_the_drill_client_paces_itself_to_the_providers_slowness(monkeypatch):
    from fabfile.remote import connection
    monkeypatch.setattr(connection, "_slowness", 1.0)
    assert FO.client_pace() == (FO.RATE, FO.REQUEST_TIMEOUT_S)   # containers: unchanged
    monkeypatch.setattr(connection, "_slowness", 8.0)            # libvirt under TCG
    rate, timeout = FO.client_pace()
    assert rate == FO.RATE / 8 and timeout == FO.REQUEST_TIMEOUT_S * 8
