"""What a provider is to the lab: a small strategy object. Callers never branch on the
provider's name; they ask it."""
from ..ownership import Survey


class Provider:
    name = ""
    has_snapshots = False
    install_fix = ""

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

    def survey(self, lab, machines_dir):
        """What carries the lab's name on this provider, by owner (ownership.Survey)."""
        return Survey()

    def remove_leftovers(self, lab, machines_dir, found=None):
        """After `vagrant destroy`: remove what the lab left behind and `found` (the survey
        taken before) says is this checkout's; returns what was removed."""
        return []

    def crash(self, machines, host):
        """Power `host` off at once, without a clean shutdown."""
        machines.halt([host], force=True)
