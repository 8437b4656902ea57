"""What a provider is to the lab: a small strategy object. Callers never branch on the
provider's name; they ask it."""
import ipaddress
import re
import subprocess

from ..ownership import Survey


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
    has_snapshots = False
    install_fix = ""

    def usable(self):
        """(ok, why): whether this machine can run the provider now."""
        raise NotImplementedError

    def prepare(self, machines, hosts):
        """Before `vagrant up`: what the provider needs (a box, a network), and a refusal
        when leftovers of the lab stand in the way."""

    def states(self, machines):
        """{host: (state, provider)} when the provider can tell faster than Vagrant; else None."""
        return None

    def survey(self, lab, machines_dir):
        """What carries the lab's name on this provider, by owner (ownership.Survey)."""
        return Survey()

    def remove_leftovers(self, lab, machines_dir, found=None):
        """After `vagrant destroy`: remove what the lab left behind and `found` (the survey
        taken before) says is this checkout's; returns what was removed."""
        return []

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
