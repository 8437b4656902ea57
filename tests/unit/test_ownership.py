"""Which checkout owns a lab: the checkout's id, the marks on containers, networks and
VirtualBox VMs, what `up` refuses and what `destroy` leaves alone; and `invoke reset`,
which asks first and never recreates a machine unasked. Docker and VBoxManage are canned."""
import io
from pathlib import Path
from types import SimpleNamespace

import invoke
import pytest

import fabfile.core.state as state
import fabfile.lifecycle.reset as reset_module
import fabfile.machines.facade as facade
import fabfile.machines.ownership as ownership
import fabfile.machines.providers as providers
import fabfile.machines.providers.docker as docker
import fabfile.machines.providers.virtualbox as virtualbox
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.machines.facade import Machines
from fabfile.machines.ownership import FOREIGN, MINE, UNKNOWN, Item, Survey, owner_of, refusal
from fabfile.machines.providers.base import Provider
from tests.unit import fakes
from tests.unit.test_lab import GOOD

ME, OTHER = "0123456789abcdef", "fedcba9876543210"
THERE = "/home/student/other checkout"  # another checkout's path, with a space


@pytest.fixture
def lab():
    return parse_lab(GOOD)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "state")
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)


@pytest.fixture
def me(monkeypatch):
    for module in (ownership, docker, virtualbox):
        monkeypatch.setattr(module, "checkout_id", lambda: ME)
    return ME


# --- the checkout's identity ----------------------------------------------------------------------

def test_checkout_id_is_made_once_in_the_state_folder(tmp_path):
    first = ownership.checkout_id()
    assert len(first) == 16 and int(first, 16) >= 0
    assert (tmp_path / "state" / "checkout-id").read_text() == first + "\n"
    assert ownership.checkout_id() == first, "read, not made again"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["checkout-id"], "no temporary file left"


def test_checkout_id_keeps_the_one_already_there(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "checkout-id").write_text("cafe0000cafe0000\n")
    assert ownership.checkout_id() == "cafe0000cafe0000"


def test_owner_of_a_mark_or_of_what_vagrant_knows():
    assert owner_of(ME, False, ME) == MINE
    assert owner_of(OTHER, True, ME) == FOREIGN, "the mark decides, even where Vagrant knows the id"
    assert owner_of("", True, ME) == MINE, "unmarked (made before the mark) and known"
    assert owner_of("", False, ME) == UNKNOWN


def test_refusal_names_the_other_checkout_and_the_commands(lab):
    assert refusal(lab, Survey([Item("container", "halab-lb1", "a", MINE)]), "boots nothing") is None
    foreign = Survey([Item("container", "halab-lb1", "a", FOREIGN, THERE),
                      Item("network", "halab", "halab", FOREIGN, THERE)])
    problem = refusal(lab, foreign, "boots nothing")
    assert f"lab 'halab' belongs to another checkout, at {THERE} (container halab-lb1, network halab)" \
        in str(problem)
    assert "leaves it alone and boots nothing" in str(problem)
    assert f"cd {THERE} && .venv/bin/invoke destroy --yes" in problem.fix
    assert "invoke destroy --yes" not in problem.fix.replace(f"cd {THERE} && .venv/bin/invoke destroy --yes", "")
    unknown = Survey([Item("container", "halab-db1", "e", UNKNOWN)], ["docker rm -f halab-db1"])
    problem = refusal(lab, unknown + foreign, "destroys none of it")
    assert "container halab-db1 carry the name of lab 'halab' but no checkout's mark" in str(problem)
    assert problem.fix.endswith("remove them by hand: docker rm -f halab-db1")


# --- docker ------------------------------------------------------------------------------------------

FakeDocker = fakes.FakeDocker


def ps(*rows):
    return "".join("\t".join(row) + "\n" for row in rows)


OTHERS_LAB = ps(("aaa111", "halab-lb1", "running", "halab", OTHER, THERE),
                ("bbb222", "halab-web1", "running", "halab", OTHER, THERE))


def test_lab_containers_read_the_marks_paths_with_spaces_included(monkeypatch, lab):
    fake = FakeDocker({("ps", "-a", "--format"): OTHERS_LAB + ps(("ccc333", "halab-db1", "exited", "", "", ""),
                                                                 ("ddd444", "unrelated", "running", "", "", ""))})
    monkeypatch.setattr(docker, "docker", fake)
    found = docker.lab_containers(lab)
    assert found["halab-lb1"] == docker.Container("aaa111", "running", OTHER, THERE)
    assert found["halab-db1"] == docker.Container("ccc333", "exited", "", "")
    assert "unrelated" not in found
    assert '{{.Label "halab.checkout"}}' in fake.calls[0][-1] and "\t" in fake.calls[0][-1]


def containers(*rows):
    return {name: docker.Container(cid, "running", mark, path) for name, cid, mark, path in rows}


def test_survey_sorts_containers_and_network_by_owner(lab):
    found = docker.survey_lab(
        lab,
        containers(("halab-lb1", "aaa111", ME, "/here"),                 # marked: mine
                   ("halab-lb2", "bbb222", OTHER, THERE),                # another checkout's
                   ("halab-web1", "ccc333", "", ""),                     # unmarked, Vagrant knows it
                   ("halab-db1", "ddd444", "", "")),                     # unmarked, nobody knows it
        {"labels": {"halab.lab": "halab", "halab.checkout": ME}, "containers": []},
        ["ccc333" + "0" * 58], ME)
    owners = {i.name: i.owner for i in found.items}
    assert owners == {"halab-lb1": MINE, "halab-lb2": FOREIGN, "halab-web1": MINE, "halab-db1": UNKNOWN,
                      "halab": MINE}
    assert found.orphans == {"halab-lb1": "aaa111"}, "mine, and Vagrant does not know it"
    assert found.hosts_not_mine == {"lb2", "db1"}
    assert found.by_hand == ["docker rm -f halab-db1"]
    assert [i.path for i in found.of(FOREIGN)] == [THERE]


def test_an_unmarked_network_belongs_to_the_owner_of_the_containers_on_it(lab):
    def network_owner(rows, attached, known=()):
        net = {"labels": {"halab.lab": "halab"}, "containers": attached}
        found = docker.survey_lab(lab, containers(*rows), net, list(known), ME)
        return next((i.owner, i.path) for i in found.items if i.kind == "network"), found.by_hand

    legacy = [("halab-lb1", "aaa111", "", ""), ("halab-lb2", "bbb222", "", "")]
    assert network_owner(legacy, ["aaa111" + "f" * 58, "bbb222" + "f" * 58], ["aaa111", "bbb222"])[0] == (MINE, "")
    assert network_owner([("halab-lb1", "aaa111", OTHER, THERE)], ["aaa111"])[0] == (FOREIGN, THERE)
    owner, by_hand = network_owner([], [])
    assert owner == (UNKNOWN, "") and by_hand == ["docker network rm halab"], "nothing on it vouches for it"
    assert network_owner(legacy, ["aaa111", "zzz999"], ["aaa111", "bbb222"])[0][0] == UNKNOWN, \
        "a container that is not the lab's is on it"
    recreated = [("halab-lb1", "aaa111", "", ""), ("halab-web1", "ccc333", ME, "/here")]
    assert network_owner(recreated, ["aaa111", "ccc333"], ["aaa111"])[0] == (MINE, ""), \
        "an old lab of this checkout with a host recreated (marked) since"


def test_survey_asks_docker_for_the_containers_the_network_and_whats_on_it(monkeypatch, lab, tmp_path, me):
    network = '[{"Id": "n1", "Labels": {"halab.lab": "halab", "halab.checkout": "%s", ' \
              '"halab.checkout-path": "%s"}}]' % (OTHER, THERE)
    fake = FakeDocker({("ps", "-a", "--format"): OTHERS_LAB, ("network", "inspect"): network,
                       ("ps", "-a", "-q"): "aaa111full\nbbb222full\n"})
    monkeypatch.setattr(docker, "docker", fake)
    found = docker.DOCKER.survey(lab, tmp_path / "machines")
    assert {(i.name, i.owner, i.path) for i in found.items} == {
        ("halab-lb1", FOREIGN, THERE), ("halab-web1", FOREIGN, THERE), ("halab", FOREIGN, THERE)}
    assert ("ps", "-a", "-q", "--no-trunc", "--filter", "network=halab") in fake.calls
    fake.answers[("network", "inspect")] = (1, "")
    assert [i.kind for i in docker.DOCKER.survey(lab, tmp_path / "machines").items] == ["container"] * 2


def test_prepare_refuses_another_checkouts_lab_naming_its_path(monkeypatch, lab, tmp_path, me):
    fake = FakeDocker({("ps", "-a", "--format"): OTHERS_LAB, ("network", "inspect"): (1, "")})
    monkeypatch.setattr(docker, "docker", fake)
    monkeypatch.setattr(docker, "box_built", lambda: True)
    machines = Machines(lab)
    with pytest.raises(LabError) as caught:
        docker.DOCKER.prepare(machines, ["lb1"])
    assert f"belongs to another checkout, at {THERE}" in str(caught.value)
    assert "boots nothing" in str(caught.value) and f"cd {THERE}" in caught.value.fix
    assert not any(call[:2] == ("network", "create") for call in fake.calls)


def test_ensure_network_marks_the_network_with_the_checkout(monkeypatch, lab, me):
    monkeypatch.setattr(docker, "networks", lambda: [])
    fake = FakeDocker({("network", "inspect"): (1, "")})
    monkeypatch.setattr(docker, "docker", fake)
    assert docker.ensure_network(lab) is True
    create = fake.calls[-1]
    assert "halab.checkout=" + ME in create
    assert "halab.checkout-path=" + str(Path(docker.__file__).resolve().parents[3]) in create


def test_network_conflicts_with_another_checkouts_networks(lab):
    same_name = {"name": "halab", "subnets": ["192.168.60.0/24"],
                 "labels": {"halab.lab": "halab", "halab.checkout": OTHER, "halab.checkout-path": THERE}}
    assert docker.network_conflicts(lab, [same_name], ME) == [], "the survey refuses it, naming the path"
    mine = dict(same_name, labels={"halab.lab": "halab", "halab.checkout": ME})
    assert "lab.yml says" in str(docker.network_conflicts(lab, [mine], ME)[0])
    overlapping = {"name": "student2", "subnets": ["192.168.56.0/23"],
                   "labels": {"halab.lab": "student2", "halab.checkout": OTHER, "halab.checkout-path": THERE}}
    problem = docker.network_conflicts(lab, [overlapping], ME)[0]
    assert f"the network of lab 'student2' of the checkout at {THERE}" in str(problem)
    assert f"cd {THERE} && .venv/bin/invoke destroy --yes, with LAB=student2" in problem.fix


def test_remove_lab_leftovers_touches_only_what_the_survey_says_is_mine(monkeypatch, lab):
    fake = FakeDocker({("ps", "-a", "--format"): OTHERS_LAB, ("network", "inspect"): (0, "[]")})
    monkeypatch.setattr(docker, "docker", fake)
    theirs = Survey([Item("container", "halab-lb1", "aaa111", FOREIGN, THERE),
                     Item("network", "halab", "halab", FOREIGN, THERE)])
    assert docker.remove_lab_leftovers(lab, theirs) == []
    assert not any(call[0] == "rm" or call[:2] == ("network", "rm") for call in fake.calls)


# --- VirtualBox, on canned VBoxManage output ---------------------------------------------------------

UUIDS = {name: f"0a1b2c3d-0000-4000-8000-00000000000{i}" for i, name in
         enumerate(["halab-lb1", "halab-lb2", "halab-web1", "halab-db1", "my-own-vm"], 1)}
LIST_VMS = "".join(f'"{name}" {{{uuid}}}\n' for name, uuid in UUIDS.items())
PROPERTIES = {  # uuid: (checkout, path), as `VBoxManage guestproperty get` says them
    UUIDS["halab-lb1"]: (ME, "/here"), UUIDS["halab-lb2"]: (OTHER, THERE)}


def fake_vboxmanage(calls):
    def run(argv, **kwargs):
        calls.append(argv)
        if argv[1:3] == ["list", "vms"]:
            return SimpleNamespace(returncode=0, stdout=LIST_VMS, stderr="")
        if argv[1:3] == ["guestproperty", "get"]:
            checkout, path = PROPERTIES.get(argv[3], ("", ""))
            value = checkout if argv[4] == virtualbox.CHECKOUT_PROPERTY else path
            return SimpleNamespace(returncode=0, stdout=f"Value: {value}\n" if value else "No value set!\n")
        return SimpleNamespace(returncode=0, stdout="", stderr="")
    return SimpleNamespace(run=run)


def test_parse_guest_property():
    assert virtualbox.parse_guest_property(f"Value: {THERE}\n") == THERE
    assert virtualbox.parse_guest_property("No value set!\n") == ""


def test_virtualbox_survey_from_guest_properties(monkeypatch, lab, tmp_path, me):
    calls = []
    monkeypatch.setattr(virtualbox, "subprocess", fake_vboxmanage(calls))
    machines_dir = tmp_path / "machines"
    (machines_dir / "web1" / "virtualbox").mkdir(parents=True)
    (machines_dir / "web1" / "virtualbox" / "id").write_text(UUIDS["halab-web1"] + "\n")
    found = virtualbox.VIRTUALBOX.survey(lab, machines_dir)
    assert {i.name: (i.owner, i.path) for i in found.items} == {
        "halab-lb1": (MINE, "/here"), "halab-lb2": (FOREIGN, THERE), "halab-web1": (MINE, ""),
        "halab-db1": (UNKNOWN, "")}
    db1 = UUIDS["halab-db1"]
    assert found.by_hand == [f"VBoxManage controlvm {db1} poweroff; VBoxManage unregistervm {db1} --delete"]
    assert not any(UUIDS["my-own-vm"] in argv for argv in calls), "not even asked about"
    assert found.orphans == {"halab-lb1": UUIDS["halab-lb1"]}
    with pytest.raises(LabError) as caught:
        virtualbox.VIRTUALBOX.prepare(Machines(lab), ["lb1"])
    assert f"at {THERE} (VirtualBox VM halab-lb2)" in str(caught.value)
    assert f"VBoxManage unregistervm {db1} --delete" in caught.value.fix
    calls.clear()
    assert virtualbox.VIRTUALBOX.remove_leftovers(lab, machines_dir, found) == [
        "VirtualBox VM halab-lb1", "VirtualBox VM halab-web1"]
    removed = [argv[2] for argv in calls if argv[1] == "unregistervm"]
    assert removed == [UUIDS["halab-lb1"], UUIDS["halab-web1"]], "never lb2 (theirs) or db1 (unknown)"


def test_the_vagrantfile_marks_containers_and_vms():
    text = (Path(docker.__file__).resolve().parents[3] / "Vagrantfile").read_text()
    assert '"--label", "halab.checkout=#{checkout_id}"' in text
    assert '"--label", "halab.checkout-path=#{checkout_dir}"' in text
    assert 'vb.customize ["guestproperty", "set", :id, "/halab/checkout", checkout_id]' in text
    assert 'vb.customize ["guestproperty", "set", :id, "/halab/checkout-path", checkout_dir]' in text
    assert '".lab", "checkout-id"' in text


# --- the facade: up refuses, destroy touches only what is mine -------------------------------------------

class SurveyedProvider(Provider):
    def __init__(self, name, found):
        self.name, self.found, self.removed_with = name, found, []

    def usable(self):
        return True, "fake"

    def survey(self, lab, machines_dir):
        return self.found

    def remove_leftovers(self, lab, machines_dir, found=None):
        self.removed_with.append(found)
        return [str(i) for i in found.mine if not i.known]


class FakeVagrant:
    def __init__(self, *args, **kwargs):
        self.calls = []

    def destroy(self, hosts=None):
        self.calls.append(("destroy", list(hosts or [])))


def test_destroy_leaves_another_checkouts_machines_and_names_them(monkeypatch, lab, capsys):
    found = Survey([Item("container", "halab-lb1", "aaa", MINE, known=True, host="lb1"),
                    Item("container", "halab-lb2", "bbb", FOREIGN, THERE, known=True, host="lb2"),
                    Item("container", "halab-extra", "ccc", MINE),
                    Item("network", "halab", "halab", FOREIGN, THERE)])
    provider = SurveyedProvider("docker", found)
    monkeypatch.setattr(providers, "PROVIDERS", {"docker": provider})
    vagrant = FakeVagrant()
    monkeypatch.setattr(facade, "Vagrant", lambda *a, **k: vagrant)
    machines = Machines(lab)
    monkeypatch.setattr(machines, "states", lambda: {"lb1": ("running", "docker"), "lb2": ("running", "docker"),
                                                     "web1": ("not created", "docker")})
    with pytest.raises(LabError) as caught:
        machines.destroy()
    assert vagrant.calls == [("destroy", ["lb1"])], "lb2 is another checkout's, whatever Vagrant knows"
    assert provider.removed_with == [found], "the survey taken before Vagrant destroyed"
    assert "removed container halab-extra" in capsys.readouterr().out
    assert f"at {THERE} (container halab-lb2, network halab)" in str(caught.value)
    assert "destroys none of it" in str(caught.value)


def test_refuse_leftovers_puts_another_checkout_before_this_ones_orphans(lab):
    machines = Machines(lab)
    theirs = Survey([Item("container", "halab-lb1", "a", FOREIGN, THERE)])
    with pytest.raises(LabError, match=f"at {THERE}"):
        machines.refuse_leftovers("containers", {"halab-web1": "b"}, theirs)
    with pytest.raises(LabError) as caught:
        machines.refuse_leftovers("containers", {"halab-web1": "b"}, Survey())
    assert "this checkout made but its Vagrant does not know" in str(caught.value)
    assert "invoke destroy --yes" in caught.value.fix
    machines.refuse_leftovers("containers", {}, Survey())


# --- reset -----------------------------------------------------------------------------------------------

LISTED = "==> lb1: \nbare\nprovisioned\n==> lb2: \nbare\n==> web1: \nbare\nprovisioned\n==> db1: \nbare\n"
EVERY_HOST_PROVISIONED = "".join(f"==> {h}: \nprovisioned\n" for h in ("lb1", "lb2", "web1", "app1", "db1"))


class ResetMachines:
    def __init__(self, provider, snapshots=""):
        self.lab = parse_lab(GOOD)
        self._provider = provider
        self.events = []
        self.inventory = SimpleNamespace(invalidate=lambda hosts=None: self.events.append(("invalidate", hosts)),
                                         refresh=lambda running=None, only=None: None)
        self.vagrant = SimpleNamespace(
            snapshot=lambda action, hosts, name=None, force=False:
                self.events.append(("snapshot", action, hosts, name)) or (snapshots if action == "list" else ""),
            destroy=lambda hosts: self.events.append(("destroy", hosts)))

    def provider(self, requested=None):
        return self._provider

    def up(self, names=None, provider=None):
        self.events.append(("up", names, provider))


@pytest.fixture
def no_provision(monkeypatch):
    """No provisioning, and a lab that serves again at once after the reset."""
    calls = []
    monkeypatch.setattr(reset_module, "live", lambda machines: {"vip_holder": "lb1", "backends": {"web1": "UP"}})
    monkeypatch.setattr(reset_module, "provision",
                        lambda machines, hosts: calls.append([h.name for h in hosts]) or
                        SimpleNamespace(failed=[], verdict=lambda: "ok"))
    return calls


def test_reset_on_a_provider_without_snapshots_says_it_recreates(monkeypatch):
    from fabfile.machines.providers.base import Provider
    plain = Provider()
    plain.name = "plain"
    monkeypatch.setitem(providers.PROVIDERS, "plain", plain)
    plan = reset_module.plan_reset(ResetMachines("plain"), ["web1", "db1"])
    assert plan.recreate == ("web1", "db1") and plan.restore == ()
    question = plan.question()
    assert question.startswith("Reset web1, db1 of lab halab (plain) to provisioned?")
    assert "the plain provider has no snapshots" in question
    assert "everything on them is lost, the notes in db1's database included" in question
    assert "The other hosts are provisioned again too" in question


def test_reset_refuses_to_recreate_hosts_without_the_snapshot_unasked(no_provision):
    machines = ResetMachines("virtualbox", LISTED)
    with pytest.raises(LabError) as caught:
        reset_module.reset(machines, ["lb1", "lb2", "db1"])
    assert "no snapshot 'provisioned' on lb2, db1 (lab halab, virtualbox)" in str(caught.value)
    assert "`invoke provision --hosts lb2,db1` saves it" in caught.value.fix
    assert "`invoke reset --hosts lb1,lb2,db1 --recreate` destroys lb2, db1" in caught.value.fix
    assert not [e for e in machines.events if e[0] in ("destroy", "up") or e[1] == "restore"]
    with pytest.raises(LabError) as caught:
        reset_module.plan_reset(machines, None, "bare", False)
    assert "no snapshot 'bare' on app1" in str(caught.value)
    assert "`invoke reset --to bare --recreate`" in caught.value.fix


def test_reset_with_recreate_restores_what_it_can_and_recreates_the_rest(no_provision, capsys):
    machines = ResetMachines("virtualbox", LISTED)
    plan = reset_module.plan_reset(machines, ["lb1", "lb2"], recreate=True)
    assert (plan.restore, plan.recreate) == (("lb1",), ("lb2",))
    assert "no snapshot 'provisioned'; --recreate asked for it" in plan.question()
    reset_module.reset(machines, plan=plan)
    assert ("snapshot", "restore", ["lb1"], "provisioned") in machines.events
    assert ("destroy", ["lb2"]) in machines.events and ("up", ["lb2"], "virtualbox") in machines.events
    assert no_provision == [machines.lab.host_names]
    assert "lab halab: resetting lb1, lb2 to provisioned: lb1 goes back to snapshot" in capsys.readouterr().out


def test_reset_where_every_snapshot_exists_needs_no_recreate(no_provision):
    plan = reset_module.plan_reset(ResetMachines("libvirt", LISTED), ["lb1", "web1"])
    assert (plan.restore, plan.recreate) == (("lb1", "web1"), ())
    assert "snapshot 'provisioned' (everything on them is lost since it was taken)" in plan.question()


# --- the tasks: reset asks as destroy does ---------------------------------------------------------------

@pytest.fixture
def tasks_module(monkeypatch):
    import tasks
    monkeypatch.setattr(tasks, "machines", lambda: ResetMachines("libvirt", EVERY_HOST_PROVISIONED))
    ran = []
    monkeypatch.setattr(reset_module, "reset", lambda machines, plan=None: ran.append(plan.hosts))
    return SimpleNamespace(tasks=tasks, ran=ran)


def test_reset_task_asks_naming_the_hosts_and_stops_on_no(monkeypatch, tasks_module, capsys):
    asked = []
    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: True))
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    with pytest.raises(invoke.Exit, match="not reset"):
        tasks_module.tasks.reset(invoke.Context(), hosts="web1")
    assert tasks_module.ran == [] and len(asked) == 1
    assert asked[0].startswith("Reset web1 of lab halab (libvirt) to provisioned?") and asked[0].endswith("[y/N] ")
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    tasks_module.tasks.reset(invoke.Context(), hosts="web1")
    assert tasks_module.ran == [("web1",)]


def test_reset_task_asks_nothing_with_yes_or_without_a_terminal(monkeypatch, tasks_module):
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked"))
    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: True))
    tasks_module.tasks.reset(invoke.Context(), hosts="web1", yes=True)
    monkeypatch.setattr("sys.stdin", io.StringIO())
    tasks_module.tasks.reset(invoke.Context())
    assert tasks_module.ran == [("web1",), tuple(parse_lab(GOOD).host_names)]
