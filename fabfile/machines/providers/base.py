"""What a provider is to the lab: a small strategy object. Callers never branch on the
provider's name; they ask it."""
import ipaddress
import re
import subprocess

from ...core.errors import LabError
from ...remote.connection import scan_host_key
from ...remote.parallel import in_parallel
from ..ownership import Survey

SNAPSHOT_HEADER = re.compile(r"^==> ([\w-]+):\s*(.*)$")
NO_SNAPSHOTS = "No snapshots have been taken yet!"


def run_cli(program, args, *, options=(), timeout, fix, check=True):
    """One bounded call of a provider's command-line tool. A hang or (with check) a failure
    raises a LabError that names the command, `program args`, and the `fix`."""
    shown = f"`{program} {' '.join(args)}`"
    try:
        result = subprocess.run([program, *options, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{shown} did not answer within {timeout}s", fix) from None
    if check and result.returncode != 0:
        raise LabError(f"{shown} failed: {result.stderr.strip()}", fix)
    return result


def parse_snapshot_list(text):
    """{host: [snapshot names]} from `vagrant snapshot list` on several machines: a
    `==> host:` line, then one name a line, or a line that says there are none."""
    found, current = {}, None
    for line in text.splitlines():
        header = SNAPSHOT_HEADER.match(line)
        if header:
            current, rest = header.groups()
            found.setdefault(current, [])
            continue
        name = line.strip()
        if current is None or not name or line.startswith("    " + current + ":"):
            continue
        if NO_SNAPSHOTS not in name:
            found[current].append(name)
    return found


class VagrantSnapshots:
    """Vagrant's own snapshots (`vagrant snapshot`), for every provider that has them:
    one Vagrant call for all the hosts of a verb. Listing costs a Vagrant call (about a
    second), so `cheap_list` is False: a no-op provision does not ask."""
    cheap_list = False

    def __init__(self, machines):
        self.machines = machines

    def save(self, hosts, name, everything=False):
        self.machines.vagrant.snapshot("save", None if everything else hosts, name, force=True)

    def restore(self, hosts, name, everything=False):
        """Restored without provisioning; the SSH endpoints asked again (a restored machine
        may come back on another port)."""
        self.machines.inventory.invalidate(hosts)
        try:
            self.machines.vagrant.snapshot("restore", None if everything else hosts, name)
        finally:
            self.machines.inventory.refresh(only=hosts)

    def delete(self, hosts, name, everything=False):
        self.machines.vagrant.snapshot("delete", None if everything else hosts, name)

    def list(self):
        return parse_snapshot_list(self.machines.vagrant.snapshot("list", None))


def route_source(output):
    """The `src` address of `ip route get` output, or ""."""
    found = re.search(r"\bsrc (\S+)", output)
    return found.group(1) if found else ""


def local_source(address):
    """The address this machine sends from to reach `address`: where a guest sees our SSH
    come from when nothing translates it ("" when there is no route)."""
    try:
        ipaddress.ip_address(address)
        output = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True,
                                timeout=5).stdout
    except (ValueError, OSError, subprocess.TimeoutExpired):
        return ""
    return route_source(output)


class Provider:
    name = ""
    has_snapshots = False  # True: Vagrant's own snapshots serve, unless `snapshots()` says otherwise
    install_fix = ""

    def timer_profile(self):
        """The key of this provider's VRRP timers in roles/loadbalancer.TIMERS_BY_PROVIDER."""
        return self.name

    def slowness(self):
        """How many times slower than a container this provider's hosts answer: every
        SSH timeout is scaled by it (remote.connection.set_slowness)."""
        return 1

    def usable(self):
        """(ok, why): whether this machine can run the provider now."""
        raise NotImplementedError

    def prepare(self, machines, hosts):
        """Before `vagrant up`: what the provider needs (a box, a network), and a refusal
        when leftovers of the lab stand in the way."""

    def states(self, machines):
        """{host: (state, provider)} when the provider can tell faster than Vagrant; else None."""
        return None

    def snapshots(self, machines):
        """The store of the lab's snapshots on this provider (save, restore, delete, list
        by host), or None when it has none. Vagrant's by default, where it has them."""
        return VagrantSnapshots(machines) if self.has_snapshots else None

    def survey(self, lab, machines_dir):
        """What carries the lab's name on this provider, by owner (ownership.Survey)."""
        return Survey()

    def remove_leftovers(self, lab, machines_dir, found=None):
        """After `vagrant destroy`: remove what the lab left behind and `found` (the survey
        taken before) says is this checkout's; returns what was removed."""
        return []

    def host_keys(self, machines, hosts):
        """{host: "keytype base64"}: the SSH host keys of hosts just created. Without a
        channel to the guest beside the network, the key is trusted on first use, over the
        private network, right after the machine was created."""
        endpoints = machines.inventory.endpoints()
        keys = in_parallel(lambda host: scan_host_key(endpoints[host]), hosts)
        return dict(zip(hosts, keys))

    def ssh_source(self, endpoint):
        """The address a guest sees the lab's SSH come from, given its ssh-config endpoint
        (the firewall lets it in): this machine's own address on the way to the guest."""
        return local_source(endpoint.hostname)

    def console_argv(self, lab, host, command=None):
        """The command line of a shell on `host` that goes through neither the lab's network
        nor SSH; a LabError saying what the provider offers instead when it has none."""
        raise NotImplementedError

    def crash(self, machines, host):
        """Power `host` off at once, without a clean shutdown."""
        machines.halt([host], force=True)
