"""Snapshots on docker: committed images named after the checkout, lab, host and snapshot;
a restore that recreates the container from its own `docker inspect` settings. Canned
docker output and Engine API answers; no daemon."""
import json
from types import SimpleNamespace

import pytest

import fabfile.machines.providers.docker_snapshots as snaps
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.machines.providers.docker import DOCKER, container_name
from tests.unit.fakes import FakeDocker
from tests.unit.test_lab import GOOD

ME = "0123456789abcdef"
LAB = parse_lab(GOOD)
REPO = f"halab-snapshots/{ME}/halab"

INSPECTED = {
    "Id": "old0123456789",
    "Name": "/halab-web1",
    "Image": "sha256:oldimage",
    "Config": {"Hostname": "web1", "Image": "halab-box:abc", "Labels": {"halab.lab": "halab"},
               "StopSignal": "SIGRTMIN+3", "Cmd": ["/sbin/init"]},
    "HostConfig": {"NetworkMode": "default", "CapAdd": ["SYS_ADMIN", "NET_ADMIN"], "CgroupnsMode": "host",
                   "Binds": ["/sys/fs/cgroup:/sys/fs/cgroup:rw", "/x/apt-cache/web1:/var/cache/apt/archives"],
                   "Tmpfs": {"/run": "", "/run/lock": ""}, "Memory": 536870912},
    "NetworkSettings": {"Networks": {
        "bridge": {"IPAddress": "172.17.0.5", "Aliases": None},
        "halab": {"IPAMConfig": {"IPv4Address": "192.168.56.21"}, "Aliases": ["old012345678", "web1"],
                  "IPAddress": "192.168.56.21"}}},
}


def test_images_are_named_after_the_checkout_lab_host_and_snapshot():
    assert snaps.image_ref(LAB, "web1", "provisioned", ME) == f"{REPO}-web1:provisioned"


def test_the_list_keeps_this_checkouts_images_of_this_labs_hosts():
    text = (f"{REPO}-web1 provisioned\n{REPO}-web1 bare\n{REPO}-db1 exercise-1\n"
            f"halab-snapshots/ffff/halab-web1 provisioned\n{REPO}-web9 bare\n{REPO}-lb1 <none>\n")
    assert snaps.parse_image_list(LAB, text, ME) == {"web1": ["bare", "provisioned"], "db1": ["exercise-1"]}


def test_a_clone_keeps_every_setting_but_the_image_and_connects_the_other_networks_after():
    body, later = snaps.clone_request(INSPECTED, f"{REPO}-web1:provisioned")
    assert body["Image"] == f"{REPO}-web1:provisioned"
    assert body["HostConfig"] == INSPECTED["HostConfig"], "the Vagrantfile's settings, as docker kept them"
    assert body["Labels"] == {"halab.lab": "halab"} and body["Hostname"] == "web1"
    assert later == {"halab": {"IPAMConfig": {"IPv4Address": "192.168.56.21"}, "Aliases": ["web1"]}}, \
        "the same address; the old container's short id is no alias of the new one"
    assert INSPECTED["Config"]["Image"] == "halab-box:abc", "the inspected record is not changed"


class Machines:
    def __init__(self, tmp_path):
        self.lab = LAB
        self.machines_dir = tmp_path
        self.addresses = {}
        self.invalidated = []
        self.inventory = SimpleNamespace(update_address=self.addresses.__setitem__,
                                         invalidate=self.invalidated.append)


@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setattr(snaps, "checkout_id", lambda: ME)
    fake = FakeDocker({})
    machines = Machines(tmp_path)
    return SimpleNamespace(fake=fake, machines=machines, store=snaps.DockerSnapshots(machines, fake, container_name))


def test_the_docker_provider_has_snapshots_of_its_own():
    assert DOCKER.has_snapshots and isinstance(DOCKER.snapshots(SimpleNamespace(lab=LAB)), snaps.DockerSnapshots)


def test_save_commits_each_host_labelled_and_drops_the_image_it_replaces(store):
    store.fake.answers[("image", "inspect", "--format", "{{.Id}}", f"{REPO}-web1:provisioned")] = "sha256:before\n"
    store.fake.answers[("image", "inspect", "--format", "{{.Id}}", f"{REPO}-db1:provisioned")] = (1, "")
    store.fake.answers[("image", "inspect", "--format", "{{len .RepoTags}}", "sha256:before")] = "0\n"
    store.store.save(["web1", "db1"], "provisioned")
    commits = sorted(c for c in store.fake.calls if c[0] == "commit")
    assert commits == [
        ("commit", "--change", "LABEL halab.snapshot=provisioned", "--change", "LABEL halab.host=db1",
         "halab-db1", f"{REPO}-db1:provisioned"),
        ("commit", "--change", "LABEL halab.snapshot=provisioned", "--change", "LABEL halab.host=web1",
         "halab-web1", f"{REPO}-web1:provisioned")]
    assert ("image", "rm", "sha256:before") in store.fake.calls
    assert not [c for c in store.fake.calls if c[:2] == ("image", "rm") and c[2] != "sha256:before"]


def test_a_failed_commit_names_the_host(store):
    store.fake.answers[("commit",)] = (1, "")
    with pytest.raises(LabError) as caught:
        store.store.save(["db1"], "x")
    assert str(caught.value).startswith("db1: `docker commit") and "again" in caught.value.fix


def test_list_asks_for_this_checkouts_images_of_the_lab(store):
    store.fake.answers[("images",)] = f"{REPO}-lb1 bare\n"
    assert store.store.list() == {"lb1": ["bare"]}
    asked = store.fake.calls[-1]
    assert "label=halab.lab=halab" in asked and f"label=halab.checkout={ME}" in asked


def test_restore_recreates_the_container_from_its_inspect_and_tells_vagrant(store, monkeypatch):
    id_file = store.machines.machines_dir / "web1" / "docker" / "id"
    id_file.parent.mkdir(parents=True)
    id_file.write_text("old0123456789")
    store.fake.answers[("inspect", "--type", "container", "old0123456789")] = json.dumps([INSPECTED])
    store.fake.answers[("image", "inspect", "--format", "{{len .RepoTags}}", "sha256:oldimage")] = "1\n"
    calls = []

    def engine(method, path, body=None):
        calls.append((method, path, body))
        if path.startswith("/containers/create"):
            return {"Id": "new9876543210"}
        if path.endswith("/json"):
            return {"NetworkSettings": {"IPAddress": "172.17.0.9", "Networks": {}}}
        return None

    monkeypatch.setattr(snaps, "engine", engine)
    monkeypatch.setattr(snaps, "wait_for_ssh", lambda address: address == "172.17.0.9")
    store.store.restore(["web1"], "provisioned")
    create = calls[0]
    assert create[:2] == ("POST", "/containers/create?name=halab-web1-restoring")
    assert create[2]["Image"] == f"{REPO}-web1:provisioned" and create[2]["HostConfig"] == INSPECTED["HostConfig"]
    assert [c[:2] for c in calls[1:]] == [("POST", "/networks/halab/connect"),
                                          ("POST", "/containers/new9876543210/start"),
                                          ("GET", "/containers/new9876543210/json")]
    assert calls[1][2] == {"Container": "new9876543210",
                           "EndpointConfig": {"IPAMConfig": {"IPv4Address": "192.168.56.21"}, "Aliases": ["web1"]}}
    docker_calls = [c for c in store.fake.calls if c[0] in ("rm", "rename")]
    assert docker_calls == [("rm", "-f", "halab-web1-restoring"), ("rm", "-f", "old0123456789"),
                            ("rename", "new9876543210", "halab-web1")]
    assert id_file.read_text() == "new9876543210", "Vagrant knows the new container"
    assert store.machines.addresses == {"web1": "172.17.0.9"}
    assert not [c for c in store.fake.calls if c[:2] == ("image", "rm")], "the old image has a name: kept"


def test_delete_untags_even_an_image_a_restored_container_runs_from(store):
    store.store.delete(["lb1"], "m5")
    assert store.fake.calls == [("image", "rm", "--force", f"{REPO}-lb1:m5")]


def test_a_restore_interrupted_after_the_old_container_went_is_finished_by_the_next(store, monkeypatch):
    left = dict(INSPECTED, Id="half5555", Name="/halab-web1-restoring")
    store.fake.answers[("inspect", "--type", "container", "halab-web1")] = (1, "")
    store.fake.answers[("inspect", "--type", "container", "halab-web1-restoring")] = json.dumps([left])
    paths = []

    def engine(method, path, body=None):
        paths.append(path)
        return {"Id": "new1"} if "create" in path else {"NetworkSettings": {"IPAddress": "172.17.0.3"}}
    monkeypatch.setattr(snaps, "engine", engine)
    monkeypatch.setattr(snaps, "wait_for_ssh", lambda address: True)
    store.store.restore(["web1"], "provisioned")
    assert paths[0] == "/containers/create?name=halab-web1", "the host's own name is free"
    assert [c for c in store.fake.calls if c[0] in ("rm", "rename")] == [("rm", "-f", "half5555")]


def test_restore_without_a_container_says_to_boot_it_and_forgets_the_endpoint(store):
    store.fake.answers[("inspect",)] = (1, "")
    with pytest.raises(LabError) as caught:
        store.store.restore(["db1"], "provisioned")
    assert "no container of db1 to restore into" in str(caught.value)
    assert "invoke up --hosts db1" in str(caught.value)
    assert store.machines.invalidated == [["db1"]]


def test_the_engine_api_is_only_asked_on_a_local_socket(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    with pytest.raises(LabError, match="DOCKER_HOST is tcp://10.0.0.1:2375"):
        snaps.engine("GET", "/containers/json")
