"""What a provider is to the lab: a small strategy object. Callers never branch on the
provider's name; they ask it."""


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

    def remove_leftovers(self, lab, machines_dir):
        """After `vagrant destroy`: remove what the lab left behind; returns what was removed."""
        return []

    def crash(self, machines, host):
        """Power `host` off at once, without a clean shutdown."""
        machines.halt([host], force=True)
