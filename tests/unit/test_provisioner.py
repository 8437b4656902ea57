"""`invoke provision` without a lab: the Provisioner runs every host in parallel, the app
hosts wait for the database host, and the report says what happened. `converge` is a fake
that records what it was given; secrets are fakes, so nothing is written under .lab/."""
import threading
import time
from types import SimpleNamespace

import pytest

from fabfile.converge.engine import HostRun
from fabfile.converge.steps import Await, File
from fabfile.core.errors import LabError
from fabfile.lifecycle import provision as P
from tests.unit.test_role_checks import LAB

PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE\n-----END OPENSSH PRIVATE KEY-----\n"
PUBLIC_KEY = "ssh-ed25519 AAAAFAKE halab-lab"


@pytest.fixture(autouse=True)
def fake_secrets(monkeypatch):
    asked = []
    monkeypatch.setattr(P, "secret", lambda lab, name: asked.append(name) or f"fake-{name}")
    monkeypatch.setattr(P, "lab_ssh_key", lambda lab: (PRIVATE_KEY, PUBLIC_KEY))
    return asked


class FakeConverge:
    """Stands for the engine: records each host's start and end, waits where the steps say
    so (as the engine does, a LabError ends the host's run), and ends as told."""

    def __init__(self, changed=None, failures=None, delays=None):
        self.changed = changed or {}
        self.failures = failures or {}
        self.delays = delays or {}
        self.events = []
        self.steps = {}
        self.errors = {}
        self.lock = threading.Lock()

    def note(self, *event):
        with self.lock:
            self.events.append(event)

    def __call__(self, run, steps, extra_facts=()):
        self.steps[run.name] = steps
        self.note("start", run.name)
        try:
            for step in steps:
                if isinstance(step, Await):
                    self.note("wait", run.name)
                    run.wait_for_roles(step.roles)
                    self.note("waited", run.name)
            time.sleep(self.delays.get(run.name, 0))
            if run.name in self.failures:
                raise LabError(self.failures[run.name], step="packages default-mysql-server")
            run.changed = self.changed.get(run.name, 0)
            run.ok = len(steps) - run.changed
        except LabError as exc:
            self.errors[run.name] = exc
            run.failure = f"{exc.step}: {exc.problem}" if exc.step else exc.problem
        run.seconds = 0.5
        self.note("end", run.name)
        return run


def connections(names=None):
    return {name: SimpleNamespace(name=name) for name in (names or LAB.host_names)}


def test_every_host_runs_with_its_role_and_the_fake_secrets(monkeypatch, fake_secrets):
    fake = FakeConverge()
    monkeypatch.setattr(P, "converge", fake)
    conns = connections()
    provisioner = P.Provisioner(LAB, conns)
    report = provisioner.run()
    assert sorted(fake.steps) == sorted(LAB.host_names)
    assert {n: (r.role, r.connection) for n, r in report.runs.items()} == {
        "lb1": ("loadbalancer", conns["lb1"]), "lb2": ("loadbalancer", conns["lb2"]), "web1": ("web", conns["web1"]),
        "app1": ("app", conns["app1"]), "db1": ("db", conns["db1"])}
    for name, steps in fake.steps.items():
        [key] = [s for s in steps if isinstance(s, File) and s.path == "/home/vagrant/.ssh/id_ed25519"]
        assert key.content == PRIVATE_KEY
    assert fake_secrets == ["db_password", "exporter_db_password"]
    assert report.failed == [] and report.changed == 0
    assert all(provisioner.done[n].is_set() for n in conns)


def test_app_host_waits_until_the_database_host_finished(monkeypatch):
    fake = FakeConverge(changed={"db1": 3, "app1": 2}, delays={"db1": 0.15})
    monkeypatch.setattr(P, "converge", fake)
    report = P.Provisioner(LAB, connections()).run()
    events = fake.events
    assert events.index(("end", "db1")) < events.index(("waited", "app1"))
    assert ("wait", "app1") in events and events.index(("wait", "app1")) < events.index(("end", "db1"))
    assert [e for e in events if e[0] == "wait"] == [("wait", "app1")]  # only the app hosts wait
    assert report.failed == [] and report.changed == 5


def test_app_host_fails_when_the_database_host_failed(monkeypatch):
    fake = FakeConverge(failures={"db1": "`apt-get install default-mysql-server` exited 100:\nE: Unable to fetch"},
                        delays={"db1": 0.05})
    monkeypatch.setattr(P, "converge", fake)
    report = P.Provisioner(LAB, connections()).run()
    error = fake.errors["app1"]
    assert (error.problem, error.step) == ("db1 failed; this step needs it", "wait for db1")
    assert report.runs["app1"].failure == "wait for db1: db1 failed; this step needs it"
    assert [r.name for r in report.failed] == ["app1", "db1"]
    assert ("waited", "app1") not in fake.events
    assert report.verdict() == (
        "provision failed on app1, db1:\n"
        "  app1: wait for db1: db1 failed; this step needs it\n"
        "  db1: packages default-mysql-server: `apt-get install default-mysql-server` exited 100:")


def test_wait_for_roles_blocks_until_the_host_is_done():
    provisioner = P.Provisioner(LAB, connections())
    provisioner.runs["db1"] = HostRun("db1", "db", None)
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(provisioner.wait_for_roles(("db",))))
    waiter.start()
    waiter.join(timeout=0.1)
    assert waiter.is_alive() and outcome == []
    provisioner.done["db1"].set()
    waiter.join(timeout=2)
    assert outcome == [None]


def test_wait_for_roles_raises_naming_the_failed_host():
    provisioner = P.Provisioner(LAB, connections())
    provisioner.runs["db1"] = HostRun("db1", "db", None, failure="mariadb: `systemctl start mariadb` failed:")
    provisioner.done["db1"].set()
    with pytest.raises(LabError) as raised:
        provisioner.wait_for_roles(("db",))
    assert str(raised.value) == "wait for db1: db1 failed; this step needs it"


def test_wait_for_roles_ignores_hosts_outside_this_run():
    provisioner = P.Provisioner(LAB, connections(["app1", "web1"]))
    provisioner.wait_for_roles(("db",))  # db1 is not provisioned in this run: nothing to wait for


def test_only_the_hosts_asked_are_provisioned(monkeypatch):
    fake = FakeConverge()
    monkeypatch.setattr(P, "converge", fake)
    report = P.Provisioner(LAB, connections(["app1"])).run()
    assert list(report.runs) == ["app1"] and list(fake.steps) == ["app1"]
    assert ("waited", "app1") in fake.events


# --- the report ----------------------------------------------------------------------------------

def runs(*specs):
    out = {}
    for name, role, changed, ok, failure, seconds in specs:
        out[name] = HostRun(name, role, None, changed=changed, ok=ok, failure=failure, seconds=seconds)
    return out


def test_report_of_a_converged_lab():
    report = P.Report(runs(("lb1", "loadbalancer", 0, 17, "", 1.234), ("db1", "db", 0, 14, "", 0.5)), 3.21, False)
    assert report.verdict() == "provision: nothing changed; the lab is converged (3.2s)"
    assert P.Report(report.runs, 3.21, True).verdict() == "provision: nothing to change; the lab is converged (3.2s)"
    assert report.table() == "\n".join([
        "host  role          changed  ok  failed  seconds",
        "----  ------------  -------  --  ------  -------",
        "lb1   loadbalancer  0        17  0       1.2",
        "db1   db            0        14  0       0.5"])
    assert P.Report(report.runs, 3.21, True).table().splitlines()[0] == \
        "host  role          to change  ok  failed  seconds"


def test_report_of_a_lab_that_changed():
    report = P.Report(runs(("web1", "web", 4, 12, "", 2.0), ("app1", "app", 3, 15, "", 4.44)), 12.345, False)
    assert report.changed == 7
    assert report.verdict() == "provision: 7 step(s) changed in 12.3s"
    assert P.Report(report.runs, 12.345, True).verdict() == "provision: 7 step(s) to change in 12.3s"
    assert report.as_json() == {
        "hosts": {"web1": {"changed": 4, "ok": 12, "failed": 0, "seconds": 2.0},
                  "app1": {"changed": 3, "ok": 15, "failed": 0, "seconds": 4.44}},
        "changed": 7, "failed": 0, "seconds": 12.35, "dry_run": False}


def test_report_of_a_failed_run():
    report = P.Report(runs(("lb1", "loadbalancer", 2, 5, "", 3.0),
                           ("lb2", "loadbalancer", 1, 4, "file /etc/haproxy/haproxy.cfg: the rendered file is "
                                                         "invalid\n[ALERT] parsing error", 2.0)), 5.0, False)
    assert [r.name for r in report.failed] == ["lb2"]
    assert report.verdict() == ("provision failed on lb2:\n"
                                "  lb2: file /etc/haproxy/haproxy.cfg: the rendered file is invalid")
    assert report.table().splitlines()[2:] == ["lb1   loadbalancer  2        5   0       3.0",
                                               "lb2   loadbalancer  1        4   1       2.0"]
    assert report.as_json()["failed"] == 1 and report.as_json()["hosts"]["lb2"]["failed"] == 1


# --- provision() -----------------------------------------------------------------------------------

class FakeMachines:
    def __init__(self, cached=None, states=None):
        self.lab = LAB
        self.asked = []
        self.booted = []
        self.inventory = SimpleNamespace(cached_endpoints=lambda: {n: object() for n in (
            LAB.host_names if cached is None else cached)})
        self._states = states or {}

    def states(self):
        return self._states

    def up(self, names, quiet=False):
        self.booted.append((names, quiet))

    def connections(self, hosts):
        self.asked.append([h.name for h in hosts])
        return connections([h.name for h in hosts])

    def ssh_sources(self, hosts):
        return {h.name: "172.17.0.1" for h in hosts}


@pytest.mark.parametrize("changed, failures, dry_run, snapshot", [
    ({"web1": 2}, {}, False, True),
    ({}, {}, False, True),
    ({"web1": 2}, {"db1": "no space left on device"}, False, False),
    ({"web1": 2}, {}, True, False),
], ids=["changed", "converged", "failed", "dry-run"])
def test_provision_offers_the_stage_snapshot_naming_the_hosts_that_changed(monkeypatch, capsys, changed, failures,
                                                                           dry_run, snapshot):
    """A converged run still offers it (the store saves what is missing where asking is
    cheap); a failed run or a dry run does not."""
    taken = []
    monkeypatch.setattr(P, "converge", FakeConverge(changed=changed, failures=failures))
    monkeypatch.setattr(P, "take_stage_snapshot",
                        lambda machines, stage, names, changed: taken.append((machines, stage, names, changed)))
    machines = FakeMachines()
    report = P.provision(machines, list(LAB.hosts), dry_run=dry_run)
    assert machines.asked == [LAB.host_names]
    assert taken == ([(machines, "provisioned", LAB.host_names, list(changed))] if snapshot else [])
    assert report.dry_run is dry_run
    out = capsys.readouterr().out
    assert f"lab halab: {'dry run over' if dry_run else 'provisioning'} lb1, lb2, web1, app1, db1" in out
    assert "host  role          " in out
    assert machines.booted == []


def test_provision_boots_a_halted_host_first(monkeypatch, capsys):
    monkeypatch.setattr(P, "converge", FakeConverge())
    monkeypatch.setattr(P, "take_stage_snapshot", lambda *a: None)
    states = {n: ("running", "docker") for n in LAB.host_names}
    states["db1"] = ("exited", "docker")
    machines = FakeMachines(cached=["lb1", "lb2", "web1", "app1"], states=states)
    P.provision(machines, list(LAB.hosts))
    assert machines.booted == [(["db1"], True)]
    assert "db1   | exited: booting it first (invoke up --hosts db1)" in capsys.readouterr().out
    dry = FakeMachines(cached=[], states=states)
    P.provision(dry, list(LAB.hosts), dry_run=True)
    assert dry.booted == []   # a dry run changes nothing, machines included
