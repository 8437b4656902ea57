"""The docker provider: each host a container with systemd as PID 1, built from a box
image made locally; the lab's own Docker network; leftovers found by the lab's label."""
import contextlib
import ipaddress
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ...core.config import PROJECT_DIR
from ...core.console import say
from ...core.errors import LabError
from ...remote.parallel import in_parallel
from ..ownership import (CHECKOUT_LABEL, FOREIGN, LAB_LABEL, PATH_LABEL, UNKNOWN, Item, Survey, checkout_id,
                         checkout_path, owner_of)
from .base import Provider, run_cli
from .docker_snapshots import SNAPSHOT_LABEL, DockerSnapshots

BOX_SCRIPT = PROJECT_DIR / "scripts" / "build-docker-box.sh"
LABEL = LAB_LABEL


DOCKER_TIMEOUT_S = 120
DOCKER_FIX = "check the docker daemon: `invoke doctor`"
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"  # made at the container's first boot
CGROUP_ROOT = Path("/sys/fs/cgroup")


def docker(*args, check=True):
    return run_cli("docker", args, timeout=DOCKER_TIMEOUT_S, fix=DOCKER_FIX, check=check)


def cgroup_v1_host(root=CGROUP_ROOT):
    """Whether the host mounts cgroup v1's name=systemd hierarchy (v1 or hybrid), where the
    Vagrantfile delegates each container a tree of its own."""
    return (root / "systemd").is_dir()


def box_image():
    return subprocess.run([str(BOX_SCRIPT), "--name"], capture_output=True, text=True,
                          check=True).stdout.strip()


def box_built():
    return docker("image", "inspect", box_image(), check=False).returncode == 0


def build_box(echo):
    """Build the box when its recipe changed; stream the script's progress to `echo`."""
    proc = subprocess.Popen([str(BOX_SCRIPT)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stderr:
        echo(line.rstrip())
    if proc.wait() != 0:
        raise LabError("building the docker box failed (see the lines above)",
                       "run scripts/build-docker-box.sh as root to see the whole output")


def bridge_name(lab):
    return f"br-{lab.name}"


def networks():
    """Every Docker network with its subnets and labels."""
    ids = docker("network", "ls", "-q").stdout.split()
    if not ids:
        return []
    found = []
    for net in json.loads(docker("network", "inspect", *ids).stdout):
        subnets = [c.get("Subnet") for c in (net.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
        found.append({"name": net["Name"], "subnets": subnets, "labels": net.get("Labels") or {},
                      "containers": len(net.get("Containers") or {})})
    return found


def network_conflicts(lab, all_networks, me=None):
    """Networks that stand in the way of this lab's: another network overlapping its subnet,
    or a network with the lab's name on another subnet. A network with the lab's name that
    another checkout made is the refusal of `survey`, not repeated here. Pure, for unit
    tests; `me` is this checkout's id."""
    problems = []
    for net in all_networks:
        labels = net.get("labels") or {}
        foreign_checkout = labels.get(CHECKOUT_LABEL) and labels.get(CHECKOUT_LABEL) != me
        for subnet in net["subnets"]:
            try:
                overlaps = ipaddress.ip_network(subnet, strict=False).overlaps(lab.network)
            except ValueError:
                continue
            if net["name"] == lab.name:
                if str(ipaddress.ip_network(subnet, strict=False)) != str(lab.network) and not foreign_checkout:
                    problems.append(LabError(
                        f"Docker network {lab.name!r} exists on {subnet}, but lab.yml says {lab.network}",
                        "run `invoke destroy --yes` to remove the old lab, then `invoke up`"))
            elif overlaps:
                owner = labels.get(LABEL)
                where = labels.get(PATH_LABEL) if foreign_checkout else None
                what = (f"the network of lab {owner!r}" + (f" of the checkout at {where}" if where else "")
                        if owner else "not a network of this lab")
                if owner and where:
                    fix = (f"destroy that lab from its checkout (cd {where} && .venv/bin/invoke "
                           f"destroy --yes, with LAB={owner} or its LAB_FILE), or choose another "
                           "network in lab.yml")
                elif owner:
                    fix = (f"destroy that lab (LAB={owner} invoke destroy --yes), "
                           "or choose another network in lab.yml")
                else:
                    fix = (f"remove it: docker network rm {net['name']} (Vagrant names its own "
                           f"vagrant_network_*), or choose another network in lab.yml")
                problems.append(LabError(
                    f"Docker network {net['name']!r} ({subnet}) overlaps this lab's {lab.network}: {what}",
                    fix))
    return problems


def ensure_network(lab):
    """Create the lab's Docker network, named after the lab and marked with this checkout's
    identity, unless it is already there."""
    problems = network_conflicts(lab, networks(), checkout_id())
    if problems:
        raise problems[0]
    if docker("network", "inspect", lab.name, check=False).returncode == 0:
        return False
    docker("network", "create", "--driver", "bridge", "--subnet", str(lab.network),
           "--gateway", lab.gateway, "--label", f"{LABEL}={lab.name}",
           "--label", f"{CHECKOUT_LABEL}={checkout_id()}", "--label", f"{PATH_LABEL}={checkout_path()}",
           "-o", f"com.docker.network.bridge.name={bridge_name(lab)}", lab.name)
    return True


# One line per container, tab-separated (a checkout's path may hold spaces).
PS_FIELDS = ("{{.ID}}", "{{.Names}}", "{{.State}}", '{{.Label "' + LABEL + '"}}',
             '{{.Label "' + CHECKOUT_LABEL + '"}}', '{{.Label "' + PATH_LABEL + '"}}')
PS_FORMAT = "\t".join(PS_FIELDS)


@dataclass(frozen=True)
class Container:
    id: str
    state: str
    checkout: str = ""  # the halab.checkout label: the checkout that made it
    path: str = ""      # the halab.checkout-path label: where that checkout was


def lab_containers(lab):
    """{container name: Container} of every container that carries the lab's label or name."""
    out = docker("ps", "-a", "--format", PS_FORMAT).stdout
    names = {container_name(lab, h) for h in lab.host_names}
    found = {}
    for line in out.splitlines():
        parts = line.split("\t") + [""] * 6
        cid, name, status, lab_label, checkout, path = (p.strip() for p in parts[:6])
        if cid and name and (name in names or lab_label == lab.name):
            found[name] = Container(cid, status, checkout, path)
    return found


def lab_network(lab):
    """The Docker network named after the lab, as {"id", "labels", "containers": [ids]} (every
    container attached, stopped ones included), or None."""
    inspected = docker("network", "inspect", lab.name, check=False)
    if inspected.returncode != 0:
        return None
    try:
        net = json.loads(inspected.stdout)[0]
    except (ValueError, IndexError, KeyError):
        return None
    attached = docker("ps", "-a", "-q", "--no-trunc", "--filter", f"network={lab.name}", check=False).stdout
    return {"id": net.get("Id", ""), "labels": net.get("Labels") or {}, "containers": attached.split()}


def known_container_ids(machines_dir):
    """The container ids this checkout's Vagrant knows, from its data folder."""
    return [p.read_text().strip() for p in machines_dir.glob("*/docker/id")]


def survey_lab(lab, containers, network, known_ids, me):
    """Who owns each container and the network of the lab's name. A container without a
    checkout mark is this checkout's when its Vagrant knows its id; a network without one
    belongs to the single owner of the containers on it, else to nobody known. Pure, for
    unit tests."""
    def known(cid):
        return any(k.startswith(cid) or cid.startswith(k) for k in known_ids if k)

    hosts = {container_name(lab, h): h for h in lab.host_names}
    items = []
    for name, c in sorted(containers.items()):
        owner = owner_of(c.checkout, known(c.id), me)
        items.append(Item("container", name, c.id, owner, c.path, known(c.id), hosts.get(name, "")))
    if network is not None:
        labels = network["labels"]
        if labels.get(CHECKOUT_LABEL):
            owner, path = owner_of(labels[CHECKOUT_LABEL], False, me), labels.get(PATH_LABEL, "")
        else:
            on_it = [i for i in items if any(i.ref.startswith(cid) or cid.startswith(i.ref)
                                             for cid in network["containers"])]
            owners = {(i.owner, i.path if i.owner == FOREIGN else "") for i in on_it}
            everyone = len(on_it) == len(network["containers"])
            owner, path = next(iter(owners)) if len(owners) == 1 and on_it and everyone else (UNKNOWN, "")
        items.append(Item("network", lab.name, lab.name, owner, path))
    unknown = [i for i in items if i.owner == UNKNOWN]
    by_hand = []
    if [i for i in unknown if i.kind == "container"]:
        by_hand.append("docker rm -f " + " ".join(i.name for i in unknown if i.kind == "container"))
    if [i for i in unknown if i.kind == "network"]:
        by_hand.append(f"docker network rm {lab.name}")
    return Survey(items, by_hand)


def survey(lab, machines_dir):
    """What carries the lab's name on Docker, by owner."""
    return survey_lab(lab, lab_containers(lab), lab_network(lab), known_container_ids(machines_dir),
                      checkout_id())


def orphan_containers(lab, known_ids):
    """This checkout's containers of this lab that its Vagrant does not know (an
    interrupted run): Vagrant would fail on their names."""
    return survey_lab(lab, lab_containers(lab), None, known_ids, checkout_id()).orphans


def delegated_cgroups(lab, host, root=CGROUP_ROOT):
    """The cgroup folders of a host's container (the Vagrantfile's --cgroup-parent,
    /halab/<container>) in every hierarchy of the host, deepest first."""
    folders = []
    for hierarchy in sorted(root.iterdir()) if root.is_dir() else []:
        top = hierarchy / "halab" / container_name(lab, host)
        if not hierarchy.is_symlink() and top.is_dir():
            folders += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            folders.append(top)
    return folders


def remove_delegated_cgroups(lab, hosts, root=CGROUP_ROOT):
    """Remove the cgroup folders left by the hosts' containers, which are gone: the empty
    cgroups systemd made in its delegated tree, and Docker's parent folders. A cgroup that
    still holds a process stays (rmdir refuses it)."""
    for host in hosts:
        for folder in delegated_cgroups(lab, host, root):
            with contextlib.suppress(OSError):
                folder.rmdir()


def snapshot_images(lab, me):
    """The ids and names of this checkout's snapshot images of the lab."""
    out = docker("images", "--filter", f"label={LABEL}={lab.name}", "--filter", f"label={CHECKOUT_LABEL}={me}",
                 "--filter", f"label={SNAPSHOT_LABEL}", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout
    return [line.split() for line in out.splitlines() if len(line.split()) == 2]


def remove_lab_leftovers(lab, found):
    """Remove what `found` (a survey taken before `vagrant destroy`) says is this checkout's
    and is still there: containers, the network, then the snapshot images (found by the
    lab's and this checkout's labels). Returns what was removed."""
    removed = []
    mine = {i.ref for i in found.mine if i.kind == "container"}
    for name, c in lab_containers(lab).items():
        if c.id in mine:
            docker("rm", "-f", c.id)
            removed.append(f"container {name}")
    remaining = lab_containers(lab)
    remove_delegated_cgroups(lab, [h for h in lab.host_names if container_name(lab, h) not in remaining])
    if any(i.kind == "network" for i in found.mine) and \
            docker("network", "inspect", lab.name, check=False).returncode == 0:
        docker("network", "rm", lab.name)
        removed.append(f"network {lab.name}")
    images = snapshot_images(lab, checkout_id())
    if images:
        docker("image", "rm", "-f", *dict.fromkeys(image_id for image_id, _ in images))
        removed.append(f"{len(images)} snapshot image(s) ({', '.join(sorted(ref for _, ref in images))})")
    return removed


def machine_states(lab, machines_dir):
    """{host: (state, "docker")} as Vagrant's docker provider would report it, from the
    container ids in Vagrant's data folder and one `docker ps`."""
    containers = {cid: state for cid, state in
                  (line.split() for line in docker("ps", "-a", "--no-trunc", "--format",
                                                   "{{.ID}} {{.State}}").stdout.splitlines())}
    states = {}
    for host in lab.host_names:
        id_file = machines_dir / host / "docker" / "id"
        cid = id_file.read_text().strip() if id_file.exists() else None
        state = containers.get(cid) if cid else None
        if state is None:
            states[host] = ("not created", "docker")
        else:
            states[host] = ("running" if state == "running" else "stopped", "docker")
    return states


def public_key_of(pub_file_text, host):
    """"keytype base64" of an OpenSSH .pub file's text (its comment dropped)."""
    fields = pub_file_text.split()
    if len(fields) < 2 or not fields[0].startswith("ssh-"):
        raise LabError(f"{host} has no readable SSH host key in {HOST_KEY_FILE}",
                       f"recreate it: invoke reset --recreate --hosts {host}", host=host)
    return f"{fields[0]} {fields[1]}"


def container_name(lab, host):
    return f"{lab.name}-{host}"


class DockerProvider(Provider):
    name = "docker"
    has_snapshots = True  # images committed from the containers, not Vagrant's
    install_fix = "run scripts/setup.sh (installs docker.io and starts the daemon)"

    def usable(self):
        if not shutil.which("docker"):
            return False, "the docker command is not installed"
        try:
            ok = subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            return False, "the docker daemon is not running (start it: sudo dockerd & or systemctl start docker)"
        if not cgroup_v1_host():
            return False, ("this host has cgroup v2 only: the lab's containers get no cgroup tree systemd "
                           "may write without the host's (see the Vagrantfile); boot the host with "
                           "systemd.unified_cgroup_hierarchy=0, or use libvirt or virtualbox")
        return True, "the docker daemon answers"

    def prepare(self, machines, hosts):
        lab = machines.lab
        if not box_built():
            build_box(lambda line: say("box", line.removeprefix("[box] ")))
        found = self.survey(lab, machines.machines_dir)
        machines.refuse_leftovers("containers", found.orphans, found)
        if ensure_network(lab):
            say("net", f"created Docker network {lab.name} ({lab.network}, bridge {bridge_name(lab)})")

    def states(self, machines):
        return machine_states(machines.lab, machines.machines_dir)

    def snapshots(self, machines):
        return DockerSnapshots(machines, docker, container_name)

    def survey(self, lab, machines_dir):
        return survey(lab, machines_dir)

    def remove_leftovers(self, lab, machines_dir, found=None):
        return remove_lab_leftovers(lab, found if found is not None else self.survey(lab, machines_dir))

    def host_keys(self, machines, hosts):
        """Read out of band, from each container's own file, not over the network."""
        def read(host):
            out = docker("exec", container_name(machines.lab, host), "cat", HOST_KEY_FILE).stdout
            return public_key_of(out, host)
        return dict(zip(hosts, in_parallel(read, hosts)))

    def console_argv(self, lab, host, command=None):
        """`docker exec`: a root shell straight into the container, no network involved."""
        name = container_name(lab, host)
        if command:
            return ["docker", "exec", name, "bash", "-c", command]
        return ["docker", "exec", "-it", name, "bash", "-l"]

    def crash(self, machines, host):
        docker("kill", container_name(machines.lab, host))
        machines.inventory.invalidate([host])


DOCKER = DockerProvider()
