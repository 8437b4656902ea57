"""lifecycle: `invoke reset` (restore a stage's snapshot, or recreate and provision) and
`invoke bench` (the timed life of a lab), with fake machines, provision, verify and drills."""
from types import SimpleNamespace

import pytest

import fabfile.lifecycle.bench as bench_module
import fabfile.lifecycle.reset as reset_module
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from tests.unit.test_lab import GOOD

LISTED = "==> lb1: \nbare\nprovisioned\n==> lb2: \nbare\n==> web1: \nbare\nprovisioned\n"


class FakeMachines:
    def __init__(self, provider, snapshots="", states=None):
        self.lab = parse_lab(GOOD)
        self._provider = provider
        self.events = []
        self._snapshots = snapshots
        self._states = states or {h: ("not created", provider) for h in self.lab.host_names}
        self.inventory = SimpleNamespace(invalidate=lambda hosts=None: self.events.append(("invalidate", hosts)),
                                         refresh=lambda running=None, only=None: self.events.append(("refresh",)))
        self.vagrant = SimpleNamespace(snapshot=self._snapshot,
                                       destroy=lambda hosts: self.events.append(("destroy", hosts)))

    def _snapshot(self, action, hosts, name=None, force=False):
        self.events.append(("snapshot", action, hosts, name))
        return self._snapshots if action == "list" else ""

    def provider(self, requested=None):
        self.events.append(("provider", requested))
        return self._provider

    def states(self):
        return dict(self._states)

    def up(self, names=None, provider=None):
        self.events.append(("up", names, provider))

    def destroy(self):
        self.events.append(("destroy all",))


class Report:
    def __init__(self, failed=(), changed=0, verdict="ok"):
        self.failed, self.changed, self._verdict = list(failed), changed, verdict

    def verdict(self):
        return self._verdict


SERVING = {"vip_holder": "lb1", "backends": {"web1": "UP"}}


@pytest.fixture(autouse=True)
def lab_serves(monkeypatch):
    """After a reset the lab is asked whether it serves again; here it always does."""
    monkeypatch.setattr(reset_module, "live", lambda machines: SERVING)


def test_reset_waits_until_every_backend_is_back_in_rotation(monkeypatch, capsys):
    answers = [{"vip_holder": "lb1", "backends": {"web1": "DOWN"}}, SERVING]
    monkeypatch.setattr(reset_module, "live", lambda machines: answers.pop(0))
    monkeypatch.setattr(reset_module.time, "sleep", lambda seconds: None)
    assert reset_module.wait_until_serving(SimpleNamespace(lab=SimpleNamespace(name="halab"))) is True
    assert answers == []


def test_reset_says_what_is_not_serving_when_the_wait_ends(monkeypatch, capsys):
    monkeypatch.setattr(reset_module, "live", lambda machines: {"vip_holder": None, "backends": {"web1": "DOWN"},
                                                                "services": {"db1": {"mariadb": "activating"}}})
    monkeypatch.setattr(reset_module.time, "sleep", lambda seconds: None)
    assert reset_module.wait_until_serving(SimpleNamespace(lab=SimpleNamespace(name="halab")), timeout=0) is False
    assert ("not serving yet after 0s (VIP on no balancer, backends not UP: web1, services not up: "
            "db1 mariadb)") in capsys.readouterr().out


def test_reset_waits_for_a_restored_database_to_run_again(monkeypatch):
    starting = dict(SERVING, services={"db1": {"mariadb": "activating"}, "web1": {"nginx": "up"}})
    answers = [starting, dict(SERVING, services={"db1": {"mariadb": "up"}})]
    monkeypatch.setattr(reset_module, "live", lambda machines: answers.pop(0))
    monkeypatch.setattr(reset_module.time, "sleep", lambda seconds: None)
    assert reset_module.wait_until_serving(SimpleNamespace(lab=SimpleNamespace(name="halab"))) is True
    assert answers == []


@pytest.fixture
def provisions(monkeypatch):
    calls, reports = [], []

    def provision(machines, hosts, dry_run=False):
        calls.append(([h.name for h in hosts], dry_run))
        return reports.pop(0) if reports else Report()

    monkeypatch.setattr(reset_module, "provision", provision)
    monkeypatch.setattr(bench_module, "provision", provision)
    return SimpleNamespace(calls=calls, reports=reports)


# --- reset ----------------------------------------------------------------------------------------

def test_reset_restores_the_snapshot_where_every_host_has_it(provisions, capsys):
    machines = FakeMachines("virtualbox", LISTED)
    seconds = reset_module.reset(machines, ["lb1", "web1"], "provisioned")
    assert seconds >= 0
    restores = [e for e in machines.events if e[:2] == ("snapshot", "restore")]
    assert restores == [("snapshot", "restore", ["lb1", "web1"], "provisioned")]
    assert provisions.calls == [] and not any(e[0] == "up" for e in machines.events)
    out = capsys.readouterr().out
    assert "lab halab: resetting lb1, web1 to provisioned" in out and "reset to provisioned in" in out


def test_reset_recreates_and_provisions_every_host_without_a_snapshot(provisions, capsys):
    machines = FakeMachines("virtualbox", LISTED)
    reset_module.reset(machines, ["lb2"], "provisioned", recreate=True)  # lb2 has no `provisioned` snapshot
    assert ("destroy", ["lb2"]) in machines.events and ("up", ["lb2"], "virtualbox") in machines.events
    assert machines.events.index(("invalidate", ["lb2"])) < machines.events.index(("destroy", ["lb2"]))
    assert provisions.calls == [(machines.lab.host_names, False)], "every host, not just lb2"
    assert "lb2   | destroying" in capsys.readouterr().out


@pytest.fixture
def plain_provider(monkeypatch):
    """A provider without snapshots of any kind."""
    import fabfile.machines.providers as providers
    from fabfile.machines.providers.base import Provider
    plain = Provider()
    plain.name = "plain"
    monkeypatch.setitem(providers.PROVIDERS, "plain", plain)
    return plain


def test_reset_on_a_provider_without_snapshots_recreates(provisions, plain_provider):
    machines = FakeMachines("plain")
    reset_module.reset(machines, None, "bare")
    assert not any(e[0] == "snapshot" for e in machines.events)
    assert ("destroy", machines.lab.host_names) in machines.events
    assert provisions.calls == [], "bare: not provisioned"


def test_reset_restores_without_provisioning_again(provisions):
    every = "".join(f"==> {h}: \nprovisioned\n" for h in ("lb1", "lb2", "web1", "app1", "db1"))
    machines = FakeMachines("libvirt", every)
    reset_module.reset(machines, ["web1", "db1"])
    assert ("snapshot", "restore", ["web1", "db1"], "provisioned") in machines.events
    assert provisions.calls == [] and not any(e[0] in ("destroy", "up") for e in machines.events)


def test_reset_fails_when_the_provision_of_a_recreated_host_does(provisions, plain_provider):
    provisions.reports.append(Report(failed=["db1"], verdict="1 host failed: db1"))
    with pytest.raises(LabError) as caught:
        reset_module.reset(FakeMachines("plain"), ["db1"])
    assert str(caught.value).startswith("1 host failed: db1") and "invoke reset" in caught.value.fix


def test_reset_to_an_unknown_stage():
    machines = FakeMachines("docker")
    with pytest.raises(LabError, match="unknown stage 'golden'") as caught:
        reset_module.reset(machines, None, "golden")
    assert "bare, provisioned" in caught.value.fix and machines.events == []


# --- bench -------------------------------------------------------------------------------------------------

class Drills:
    passed = True

    def medians(self):
        return {"kill-master": (310.0, 450.5, 2), "stop-haproxy": (120.0, 130.0, 0)}

    def as_json(self):
        return {"drills": [{"scenario": "kill-master"}]}


@pytest.fixture
def bench_fakes(monkeypatch, provisions):
    asked = {}
    monkeypatch.setattr(bench_module, "verify", lambda machines: SimpleNamespace(passed=asked.get("verify", True)))

    def run_failover(machines, scenarios, repeat):
        print("drill output stays visible")
        asked["failover"] = (scenarios, repeat)
        return Drills()

    monkeypatch.setattr(bench_module, "run_failover", run_failover)
    return asked


def test_bench_times_every_step_and_reports_the_medians(bench_fakes, provisions, capsys):
    machines = FakeMachines("docker")
    result = bench_module.bench(machines, "docker", repeat=2)
    assert [r["step"] for r in result["steps"]] == [
        "up (box built)", "provision (cold)", "provision (no-op)", "provision --dry-run", "verify",
        "failover x2", "destroy"]
    assert all(isinstance(r["seconds"], float) for r in result["steps"])
    assert result["provider"] == "docker" and result["passed"] is True
    assert result["failover"][0] == {"scenario": "kill-master", "median_gap_ms": 310.0,
                                     "median_outage_ms": 450.5, "median_failed": 2}
    assert result["drills"] == [{"scenario": "kill-master"}]
    assert [dry for _, dry in provisions.calls] == [False, False, True]
    assert bench_fakes["failover"] == (list(bench_module.SCENARIOS), 2)
    assert ("provider", "docker") in machines.events and machines.events[-1] == ("destroy all",)
    out = capsys.readouterr().out
    assert "bench: verify ..." in out and "drill output stays visible" in out

    bench_module.print_bench(result)
    printed = capsys.readouterr().out
    assert "failover scenario" in printed and "kill-master" in printed and "provision (cold)" in printed


def test_bench_refuses_a_lab_that_already_has_machines(bench_fakes):
    machines = FakeMachines("docker", states={"lb1": ("running", "docker"), "lb2": ("not created", "docker")})
    with pytest.raises(LabError) as caught:
        bench_module.bench(machines)
    assert "already has machines (lb1)" in str(caught.value) and "destroy --yes" in caught.value.fix
    assert machines.events == []


def test_bench_stops_when_the_lab_does_not_converge(bench_fakes, provisions):
    provisions.reports.extend([Report(), Report(changed=3), Report()])
    with pytest.raises(LabError) as caught:
        bench_module.bench(FakeMachines("docker"))
    assert "no-op changed: 3" in str(caught.value)
    assert "failover" not in bench_fakes, "no drills on a lab that does not converge"
