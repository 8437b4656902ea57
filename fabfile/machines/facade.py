"""The lab's machines, one facade over Vagrant and the providers: boot, states, halt,
destroy, connections. Provider differences live in the provider objects."""
import re
import time

from ..core.console import info, say
from ..core.errors import LabError
from ..core.lab import check_provider_network
from ..core.state import known_hosts_path, machines_dir, read_known_hosts, update_known_hosts
from ..remote.connection import fingerprint, set_slowness
from ..remote.parallel import HostResult, run_parallel
from . import providers
from .inventory import Inventory
from .ownership import Survey, refusal
from .snapshots import take_stage_snapshot
from .vagrant import Vagrant

VAGRANT_LINE = re.compile(r"^(==>|\s{4})\s?([\w-]+): ?(.*)$")
# vagrant-libvirt's domain settings (`-- Memory: 512M`) and Vagrant's advice about a local
# box without a version: shown with --verbose only.
DETAIL_LINE = re.compile(r"^(-- |No version detected for |generating a local metadata |See https://www\.vagrantup\.com/docs/boxes/format)")


class Machines:
    def __init__(self, lab):
        self.lab = lab
        self._vagrant = None
        self.inventory = Inventory(lab, lambda: self.vagrant, self.states)
        self.machines_dir = machines_dir(lab)
        in_use = providers.provider_in_use(lab.host_names, self.machines_dir)
        set_slowness(max((providers.get(p).slowness() for p in in_use), default=1))

    @property
    def vagrant(self):
        if self._vagrant is None:
            in_use = providers.provider_in_use(self.lab.host_names, self.machines_dir)
            self._vagrant = Vagrant(self.lab, next(iter(in_use)) if len(in_use) == 1 else None)
        return self._vagrant

    def provider(self, requested=None):
        provider = providers.choose_provider(
            requested, providers.provider_in_use(self.lab.host_names, self.machines_dir), providers.usable)
        check_provider_network(self.lab, provider)
        return provider

    def up(self, names=None, requested_provider=None, verbose=False, quiet=False):
        started = time.monotonic()
        hosts = [h.name for h in self.lab.select(names)]
        provider = self.provider(requested_provider)
        set_slowness(providers.get(provider).slowness())
        info(f"lab {self.lab.name}: booting {', '.join(hosts)} on {provider}")
        providers.get(provider).prepare(self, hosts)
        states = providers.get(provider).states(self)  # docker: one `docker ps`, not Vagrant's status
        states = self.states() if states is None else states
        created_now = [n for n, (state, _) in states.items() if n in hosts and state == "not created"]
        update_known_hosts(self.lab, forget=created_now)
        self.inventory.invalidate(hosts)
        for line in self.vagrant.up(hosts, provider):
            if not quiet:
                echo_vagrant_line(line, verbose)
        everything = len(hosts) == len(self.lab.hosts)
        self.inventory.refresh(running=hosts if everything else None, only=None if everything else hosts)
        self.record_host_keys(provider, created_now, hosts)
        take_stage_snapshot(self, "bare", created_now if providers.get(provider).has_snapshots else [])
        info(f"lab {self.lab.name}: {len(hosts)} host(s) up on {provider} in "
             f"{time.monotonic() - started:.1f}s")

    def record_host_keys(self, provider, created_now, hosts):
        """Record the host keys of the hosts just created, and of any booted host whose key
        is not recorded yet (an earlier run stopped before it could)."""
        known = read_known_hosts(self.lab)
        wanted = [h for h in hosts if h in created_now or h not in known]
        if not wanted:
            return
        keys = providers.get(provider).host_keys(self, wanted)
        update_known_hosts(self.lab, record=keys)
        for host, key in keys.items():
            say(host, f"host key recorded: {fingerprint(key)}")

    def refuse_leftovers(self, kind, orphans, found=None):
        """Before `vagrant up`: refuse what another checkout owns, or nobody vouches for
        (`found`, an ownership.Survey), then this checkout's own machines that its Vagrant
        does not know (`orphans`, {name: id}), which `invoke destroy` can clear."""
        problem = refusal(self.lab, found, "boots nothing") if found is not None else None
        if problem:
            raise problem
        if orphans:
            raise LabError(
                f"{kind} of lab {self.lab.name!r} exist that this checkout made but its Vagrant "
                f"does not know (an interrupted run): {', '.join(sorted(orphans))}",
                "clear them with `invoke destroy --yes` (it removes only this checkout's), "
                "then `invoke up`")

    def states(self):
        """{host: (state, provider)}. On docker, read from Docker in one call (Vagrant's
        status takes seconds there); elsewhere one `vagrant status`."""
        in_use = providers.provider_in_use(self.lab.host_names, self.machines_dir)
        if len(in_use) == 1:
            fast = providers.get(next(iter(in_use))).states(self)
            if fast is not None:
                return fast
        return {s.name: (s.state.replace("_", " "), s.provider or "-") for s in self.vagrant.status()}

    def ssh_argv(self, host, command=None, tty=False):
        """The `ssh` command line that reaches HOST through the cached SSH config."""
        self.lab.host(host)
        if host not in self.inventory.endpoints():
            raise LabError(f"{host} is not running", f"boot it: invoke up --hosts {host}")
        if host not in read_known_hosts(self.lab):
            raise LabError(f"no SSH host key is recorded for {host}", f"record it: invoke up --hosts {host}")
        # Options on the command line win over Vagrant's `StrictHostKeyChecking no` in the file.
        strict = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts_path(self.lab)}",
                  "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"HostKeyAlias={host}",
                  "-o", "LogLevel=ERROR"]  # a mismatch is shown in full
        argv = ["ssh", "-F", str(self.inventory.cache_path), *strict] + (["-t"] if tty else []) + [host]
        return argv + (["--", command] if command else [])

    def current_provider(self):
        """The provider object of the lab's machines (the default choice when none exist)."""
        in_use = providers.provider_in_use(self.lab.host_names, self.machines_dir)
        return providers.get(next(iter(in_use)) if len(in_use) == 1 else self.provider())

    def ssh_sources(self, hosts):
        """{host: the address it sees the lab's SSH come from} for the running hosts."""
        provider = self.current_provider()
        endpoints = self.inventory.endpoints()
        return {h.name: provider.ssh_source(endpoints[h.name]) for h in hosts if h.name in endpoints}

    def console_argv(self, host, command=None):
        """A shell on HOST that needs neither the lab's network nor SSH (see the providers)."""
        self.lab.host(host)
        provider = self.current_provider()
        argv = provider.console_argv(self.lab, host, command)
        state = self.states().get(host, ("not created",))[0]
        if state != "running":
            raise LabError(f"{host} is {state}", f"boot it: invoke up --hosts {host}")
        return argv

    def connections(self, hosts):
        """{name: Connection} of hosts; LabError naming the hosts that are not running."""
        connections, down = self.inventory.connections(hosts)
        if down:
            raise LabError(f"not running: {', '.join(down)}",
                           f"boot them: invoke up --hosts {','.join(down)}")
        return connections

    def run(self, hosts, command, sudo=False, timeout=None):
        """Run command on hosts in parallel; a host that is not running counts as failed."""
        connections, down = self.inventory.connections(hosts)
        results = run_parallel(connections, command, sudo=sudo, timeout=timeout)
        for name in down:
            say(name, "not running")
            results[name] = HostResult(name, -1, error="not running")
        return results

    def crash(self, host):
        """Power `host` off at once, the way the provider can."""
        providers.get(self.provider()).crash(self, host)

    def halt(self, names=None, force=False):
        hosts = [h.name for h in self.lab.select(names)]
        self.inventory.invalidate(hosts)
        for host in hosts:
            say(host, "halting" + (" (forced)" if force else ""))
        self.vagrant.halt(hosts, force=force)
        for host in hosts:
            say(host, "halted")

    def destroy(self):
        """Destroy what this checkout owns of the lab: its machines, then its leftovers.
        What another checkout owns, or nobody vouches for, is left alone and named (a
        LabError at the end)."""
        self.inventory.invalidate()
        info(f"lab {self.lab.name}: destroying every host")
        update_known_hosts(self.lab, forget=self.lab.host_names)
        usable = [p for p in providers.PROVIDERS.values() if p.usable()[0]]
        # Who owns what, asked before Vagrant destroys: an unmarked machine is ours when
        # Vagrant knows it, which it no longer does afterwards.
        found = {p.name: p.survey(self.lab, self.machines_dir) for p in usable}
        not_mine = set().union(*(s.hosts_not_mine for s in found.values()))
        # Only the machines that exist: for the others Vagrant would pick a provider of
        # its own, and fail if that one (libvirt, say) is installed but not running.
        created = [name for name, (state, _) in self.states().items()
                   if state != "not created" and name not in not_mine]
        if created:
            self.vagrant.destroy(created)
        removed = []
        for provider in usable:
            removed += provider.remove_leftovers(self.lab, self.machines_dir, found[provider.name])
        for item in removed:
            say("leftover", f"removed {item}")
        problem = refusal(self.lab, sum(found.values(), Survey()), "destroys none of it")
        if problem:
            raise problem
        info(f"lab {self.lab.name}: destroyed")


def echo_vagrant_line(line, verbose=False):
    """Vagrant's `==> host: message` lines, reprinted as `host | message`; its indented
    detail lines only when verbose."""
    line = line.rstrip()
    if not line.strip():
        return
    match = VAGRANT_LINE.match(line)
    if not match:
        if verbose:
            info(line)
        return
    marker, host, message = match.groups()
    if "--no-provision" in message and not verbose:
        return  # the lab has no Vagrant provisioners; `invoke provision` does that work
    if DETAIL_LINE.match(message.strip()) and not verbose:
        return
    if marker == "==>" or verbose:
        if message.strip():
            say(host, message.strip())
