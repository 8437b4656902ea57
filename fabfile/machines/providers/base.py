"""What a provider is to the lab: a small strategy object. Callers never branch on the
provider's name; they ask it."""
from ...remote.connection import scan_host_key
from ...remote.parallel import in_parallel
from ..ownership import Survey


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

    def host_keys(self, machines, hosts):
        """{host: "keytype base64"}: the SSH host keys of hosts just created. Without a
        channel to the guest beside the network, the key is trusted on first use, over the
        private network, right after the machine was created."""
        endpoints = machines.inventory.endpoints()
        keys = in_parallel(lambda host: scan_host_key(endpoints[host]), hosts)
        return dict(zip(hosts, keys))

    def crash(self, machines, host):
        """Power `host` off at once, without a clean shutdown."""
        machines.halt([host], force=True)
