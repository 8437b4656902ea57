"""Snapshots on docker, which Vagrant gives none: a snapshot is the container committed to
an image named after the checkout, the lab, the host and the snapshot, carrying the lab's
ownership labels. A restore recreates the container from that image with the old
container's own settings, read back from `docker inspect` and handed to the Engine API
as they are (so nothing here repeats the Vagrantfile's create arguments), on the same
name, labels, networks and addresses, and tells Vagrant the new container's id. The SSH
host keys and Vagrant's key live in the container's files, so they come back with it."""
import http.client
import json
import os
import socket
import time
from urllib.parse import quote

from ...core.errors import LabError
from ...remote.parallel import in_parallel
from ..ownership import CHECKOUT_LABEL, LAB_LABEL, checkout_id

SNAPSHOT_LABEL = "halab.snapshot"
HOST_LABEL = "halab.host"
REPOSITORY_ROOT = "halab-snapshots"
ENGINE_SOCKET = "/var/run/docker.sock"
ENGINE_TIMEOUT_S = 60
SSH_TIMEOUT_S = 60


def repository(lab, host, checkout):
    return f"{REPOSITORY_ROOT}/{checkout}/{lab.name}-{host}"


def image_ref(lab, host, name, checkout):
    return f"{repository(lab, host, checkout)}:{name}"


def parse_image_list(lab, text, checkout):
    """{host: [snapshot names]} from `docker images --format '{{.Repository}} {{.Tag}}'`,
    keeping this checkout's images of this lab's hosts. Pure, for unit tests."""
    hosts = {repository(lab, h, checkout): h for h in lab.host_names}
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in hosts and parts[1] != "<none>":
            found.setdefault(hosts[parts[0]], []).append(parts[1])
    return {h: sorted(names) for h, names in found.items()}


def clone_request(inspected, image):
    """The Engine API's create body for a container like `inspected` (one `docker inspect`
    record) but from `image`, and the networks to connect afterwards as {network:
    endpoint config}: API 1.41 takes one network at create, so the first one (the
    container's network mode) comes with the create and the others are connected with
    their addresses and aliases before the start. Pure, for unit tests."""
    config = dict(inspected["Config"], Image=image)
    host_config = dict(inspected["HostConfig"])
    networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
    first = host_config.get("NetworkMode") or "default"
    first = "bridge" if first == "default" else first
    later = {}
    for network, endpoint in networks.items():
        if network == first:
            continue
        wanted = {}
        if endpoint.get("IPAMConfig"):
            wanted["IPAMConfig"] = endpoint["IPAMConfig"]
        aliases = [a for a in endpoint.get("Aliases") or [] if not inspected["Id"].startswith(a)]
        if aliases:
            wanted["Aliases"] = aliases
        later[network] = wanted
    return {**config, "HostConfig": host_config}, later


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def engine(method, path, body=None):
    """One call to the Docker Engine API on its local socket; the decoded JSON answer."""
    host = os.environ.get("DOCKER_HOST", "unix://" + ENGINE_SOCKET)
    if not host.startswith("unix://"):
        raise LabError(f"DOCKER_HOST is {host}: snapshot restores talk to a local docker socket",
                       "unset DOCKER_HOST (or point it at unix:///path/to/docker.sock)")
    connection = _UnixConnection(host[len("unix://"):], ENGINE_TIMEOUT_S)
    try:
        connection.request(method, "/v1.41" + path, body=json.dumps(body) if body is not None else None,
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        data = answer.read().decode(errors="replace")
    except OSError as exc:
        raise LabError(f"the docker daemon did not answer {method} {path}: {exc}",
                       "check the docker daemon: `invoke doctor`") from None
    finally:
        connection.close()
    if answer.status >= 300:
        try:
            message = json.loads(data).get("message", data)
        except ValueError:
            message = data
        raise LabError(f"docker refused {method} {path}: {message.strip()}",
                       "check the docker daemon: `invoke doctor`")
    return json.loads(data) if data.strip() else None


def wait_for_ssh(address, port=22, timeout=SSH_TIMEOUT_S):
    """Until `address:port` accepts a connection (sshd is up), bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


class DockerSnapshots:
    """The store behind `invoke snapshot.*` and `reset` on docker. Listing is one
    `docker images` (about 30 ms), so `cheap_list` is True."""
    cheap_list = True

    def __init__(self, machines, docker, container_name):
        self.machines = machines
        self.lab = machines.lab
        self.docker = docker
        self.container_name = container_name
        self.checkout = checkout_id()

    def _ref(self, host, name):
        return image_ref(self.lab, host, name, self.checkout)

    def _id_file(self, host):
        return self.machines.machines_dir / host / "docker" / "id"

    def _each(self, hosts, work):
        """work(host) for every host in parallel; one LabError naming each host that failed."""
        failures = {}

        def guarded(host):
            try:
                work(host)
            except LabError as exc:
                failures[host] = str(exc)
        in_parallel(guarded, hosts)
        if failures:
            raise LabError("; ".join(f"{h}: {why}" for h, why in failures.items()),
                           "run the same command again: each host starts from where it is")

    # --- save ---------------------------------------------------------------------------
    def save(self, hosts, name, everything=False):
        self._each(hosts, lambda host: self._commit(host, name))

    def _commit(self, host, name):
        ref = self._ref(host, name)
        before = self.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False).stdout.strip()
        self.docker("commit", "--change", f"LABEL {SNAPSHOT_LABEL}={name}", "--change", f"LABEL {HOST_LABEL}={host}",
                    self.container_name(self.lab, host), ref)
        self._drop_if_untagged(before)

    def _drop_if_untagged(self, image_id):
        """Remove an image that a new commit or a restore left without a name, unless a
        container still runs from it (docker refuses; `invoke destroy` takes it later)."""
        if not image_id:
            return
        tags = self.docker("image", "inspect", "--format", "{{len .RepoTags}}", image_id, check=False)
        if tags.returncode == 0 and tags.stdout.strip() == "0":
            self.docker("image", "rm", image_id, check=False)

    # --- list and delete -----------------------------------------------------------------
    def list(self):
        out = self.docker("images", "--filter", f"label={LAB_LABEL}={self.lab.name}",
                          "--filter", f"label={CHECKOUT_LABEL}={self.checkout}",
                          "--filter", f"label={SNAPSHOT_LABEL}",
                          "--format", "{{.Repository}} {{.Tag}}").stdout
        return parse_image_list(self.lab, out, self.checkout)

    def delete(self, hosts, name, everything=False):
        for host in hosts:  # untagged only, while a container restored from it still runs
            self.docker("image", "rm", "--force", self._ref(host, name))

    # --- restore -------------------------------------------------------------------------
    def restore(self, hosts, name, everything=False):
        addresses = {}

        def restore_one(host):
            addresses[host] = self._recreate(host, name)
        try:
            self._each(hosts, restore_one)
        except BaseException:
            self.machines.inventory.invalidate(hosts)  # asked of Vagrant again next time
            raise
        for host, address in addresses.items():
            self.machines.inventory.update_address(host, address)
        slow = [h for h, address in addresses.items() if not wait_for_ssh(address)]
        if slow:
            raise LabError(f"restored, but SSH does not answer on {', '.join(slow)} after {SSH_TIMEOUT_S}s",
                           f"look at the container: docker logs {self.container_name(self.lab, slow[0])}")

    def _template(self, host):
        """The `docker inspect` record of the host's container: the one Vagrant knows, else
        one left by an interrupted restore, under the host's name or the temporary one."""
        name = self.container_name(self.lab, host)
        known = self._id_file(host).read_text().strip() if self._id_file(host).exists() else ""
        for ref in filter(None, (known, name, name + "-restoring")):
            found = self.docker("inspect", "--type", "container", ref, check=False)
            if found.returncode == 0:
                return json.loads(found.stdout)[0]
        raise LabError(f"no container of {host} to restore into",
                       f"boot it first: invoke up --hosts {host}")

    def _recreate(self, host, name):
        """The host's container made again from the snapshot image; its bridge address."""
        name_now = self.container_name(self.lab, host)
        temporary = name_now + "-restoring"
        old = self._template(host)
        body, networks = clone_request(old, self._ref(host, name))
        # Made beside the old one under a temporary name, unless an interrupted restore
        # left the temporary one as the only container (then the host's name is free).
        making = name_now if old["Name"].lstrip("/") == temporary else temporary
        if making == temporary:
            self.docker("rm", "-f", temporary, check=False)
        created = engine("POST", f"/containers/create?name={quote(making)}", body)["Id"]
        self.docker("rm", "-f", old["Id"], check=False)
        self._drop_if_untagged(old["Image"])
        if making != name_now:
            self.docker("rename", created, name_now)
        id_file = self._id_file(host)
        id_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = id_file.with_suffix(".tmp")
        tmp.write_text(created)
        tmp.replace(id_file)
        for network, endpoint in networks.items():
            engine("POST", f"/networks/{quote(network)}/connect", {"Container": created, "EndpointConfig": endpoint})
        engine("POST", f"/containers/{created}/start")
        started = engine("GET", f"/containers/{created}/json")
        return started["NetworkSettings"]["IPAddress"] or next(
            n["IPAddress"] for n in started["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))
