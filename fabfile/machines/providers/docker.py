"""The docker provider: each host a container with systemd as PID 1, built from a box
image made locally; the lab's own Docker network; leftovers found by the lab's label."""
import ipaddress
import json
import shutil
import subprocess

from ...core.config import PROJECT_DIR
from ...core.console import say
from ...core.errors import LabError
from .base import Provider

BOX_SCRIPT = PROJECT_DIR / "scripts" / "build-docker-box.sh"
LABEL = "halab.lab"


DOCKER_TIMEOUT_S = 120


def docker(*args, check=True):
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LabError(f"`docker {' '.join(args)}` did not answer within {DOCKER_TIMEOUT_S}s",
                       "check the docker daemon: `invoke doctor`") from None
    if check and result.returncode != 0:
        raise LabError(f"`docker {' '.join(args)}` failed: {result.stderr.strip()}",
                       "check the docker daemon: `invoke doctor`")
    return result


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


def network_conflicts(lab, all_networks):
    """Networks that stand in the way of this lab's: another network overlapping its subnet,
    or a network with the lab's name on another subnet. Pure, for unit tests."""
    problems = []
    for net in all_networks:
        for subnet in net["subnets"]:
            try:
                overlaps = ipaddress.ip_network(subnet, strict=False).overlaps(lab.network)
            except ValueError:
                continue
            if net["name"] == lab.name and str(ipaddress.ip_network(subnet)) != str(lab.network):
                problems.append(LabError(
                    f"Docker network {lab.name!r} exists on {subnet}, but lab.yml says {lab.network}",
                    "run `invoke destroy --yes` to remove the old lab, then `invoke up`"))
            elif net["name"] != lab.name and overlaps:
                owner = net["labels"].get(LABEL)
                what = f"the network of lab {owner!r}" if owner else "not a network of this lab"
                fix = (f"destroy that lab (LAB={owner} invoke destroy --yes), "
                       "or choose another network in lab.yml" if owner else
                       f"remove it: docker network rm {net['name']} (Vagrant names its own "
                       f"vagrant_network_*), or choose another network in lab.yml")
                problems.append(LabError(
                    f"Docker network {net['name']!r} ({subnet}) overlaps this lab's {lab.network}: {what}",
                    fix))
    return problems


def ensure_network(lab):
    """Create the lab's Docker network, named after the lab, unless it is already there."""
    problems = network_conflicts(lab, networks())
    if problems:
        raise problems[0]
    if docker("network", "inspect", lab.name, check=False).returncode == 0:
        return False
    docker("network", "create", "--driver", "bridge", "--subnet", str(lab.network),
           "--gateway", lab.gateway, "--label", f"{LABEL}={lab.name}",
           "-o", f"com.docker.network.bridge.name={bridge_name(lab)}", lab.name)
    return True


def lab_containers(lab):
    """{container name: (id, state)} of every container that carries the lab's label or name."""
    out = docker("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.State}} {{.Label \"" + LABEL + "\"}}").stdout
    names = {f"{lab.name}-{h}" for h in lab.host_names}
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and (parts[1] in names or parts[3:] == [lab.name]):
            found[parts[1]] = (parts[0], parts[2])
    return found


def orphan_containers(lab, known_ids):
    """Containers of this lab that this checkout's Vagrant does not know (an earlier
    checkout, an interrupted run): Vagrant would fail on their names."""
    return {name: cid for name, (cid, _) in lab_containers(lab).items()
            if not any(k.startswith(cid) for k in known_ids)}


def remove_lab_leftovers(lab):
    """Remove the lab's containers and network; returns what was removed."""
    removed = []
    for name, (cid, _) in lab_containers(lab).items():
        docker("rm", "-f", cid)
        removed.append(f"container {name}")
    if docker("network", "inspect", lab.name, check=False).returncode == 0:
        docker("network", "rm", lab.name)
        removed.append(f"network {lab.name}")
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


def container_name(lab, host):
    return f"{lab.name}-{host}"


class DockerProvider(Provider):
    name = "docker"
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
        return True, "the docker daemon answers"

    def prepare(self, machines, hosts):
        lab = machines.lab
        if not box_built():
            build_box(lambda line: say("box", line.removeprefix("[box] ")))
        known = [p.read_text().strip() for p in machines.machines_dir.glob("*/docker/id")]
        machines.refuse_leftovers("containers", orphan_containers(lab, known))
        if ensure_network(lab):
            say("net", f"created Docker network {lab.name} ({lab.network}, bridge {bridge_name(lab)})")

    def states(self, machines):
        return machine_states(machines.lab, machines.machines_dir)

    def remove_leftovers(self, lab, machines_dir):
        return remove_lab_leftovers(lab)

    def crash(self, machines, host):
        docker("kill", container_name(machines.lab, host))
        machines.inventory.invalidate([host])


DOCKER = DockerProvider()
