"""The lab's machines: boot, status, halt, destroy, through Vagrant (and Docker's leftovers)."""
import re
import time
from concurrent.futures import ThreadPoolExecutor

from . import docker, virtualbox
from .errors import LabError
from .inventory import Inventory
from .lab import check_provider_network
from .output import info, say, table
from .state import machines_dir
from .remote import HostResult, run_one, run_parallel
from .providers import choose_provider, provider_in_use, usable
from .settings import ROLE_SERVICES
from .snapshots import supports_snapshots, take_stage_snapshot
from .vagrant import Vagrant

VAGRANT_LINE = re.compile(r"^(==>|\s{4})\s?([\w-]+): ?(.*)$")


class Machines:
    def __init__(self, lab):
        self.lab = lab
        self._vagrant = None
        self.inventory = Inventory(lab, lambda: self.vagrant, self.states)
        self.machines_dir = machines_dir(lab)

    @property
    def vagrant(self):
        if self._vagrant is None:
            in_use = provider_in_use(self.lab.host_names, self.machines_dir)
            self._vagrant = Vagrant(self.lab, next(iter(in_use)) if len(in_use) == 1 else None)
        return self._vagrant

    def provider(self, requested=None):
        provider = choose_provider(requested, provider_in_use(self.lab.host_names, self.machines_dir), usable)
        check_provider_network(self.lab, provider)
        return provider

    def up(self, names=None, requested_provider=None, verbose=False, quiet=False):
        started = time.monotonic()
        hosts = [h.name for h in self.lab.select(names)]
        provider = self.provider(requested_provider)
        info(f"lab {self.lab.name}: booting {', '.join(hosts)} on {provider}")
        if provider == "docker":
            self._prepare_docker(hosts)
        elif provider == "virtualbox":
            self._refuse_leftovers("VirtualBox VMs", self._virtualbox_orphans())
        new_hosts = [n for n, (state, _) in self.states().items() if n in hosts and state == "not created"] \
            if supports_snapshots(provider) else []
        self.inventory.invalidate(hosts)
        for line in self.vagrant.up(hosts, provider):
            if not quiet:
                echo_vagrant_line(line, verbose)
        everything = len(hosts) == len(self.lab.hosts)
        self.inventory.refresh(running=hosts if everything else None, only=None if everything else hosts)
        take_stage_snapshot(self, "bare", new_hosts)
        info(f"lab {self.lab.name}: {len(hosts)} host(s) up on {provider} in "
             f"{time.monotonic() - started:.1f}s")

    def _prepare_docker(self, hosts):
        if not docker.box_built():
            docker.build_box(lambda line: say("box", line.removeprefix("[box] ")))
        known = [p.read_text().strip() for p in self.machines_dir.glob("*/docker/id")]
        self._refuse_leftovers("containers", docker.orphan_containers(self.lab, known))
        if docker.ensure_network(self.lab):
            say("net", f"created Docker network {self.lab.name} ({self.lab.network}, "
                       f"bridge {docker.bridge_name(self.lab)})")

    def _virtualbox_orphans(self):
        known = {p.read_text().strip() for p in self.machines_dir.glob("*/virtualbox/id")}
        return virtualbox.lab_vm_orphans(self.lab, virtualbox.list_vms(), known)

    def _refuse_leftovers(self, kind, orphans):
        if orphans:
            raise LabError(
                f"{kind} of lab {self.lab.name!r} exist that this checkout's Vagrant does not "
                f"know (an earlier checkout or an interrupted run): {', '.join(sorted(orphans))}",
                "clear them with `invoke destroy --yes`, then `invoke up`")

    def states(self):
        """{host: (state, provider)}. On docker, read from Docker in one call (Vagrant's
        status takes seconds there); elsewhere one `vagrant status`."""
        in_use = provider_in_use(self.lab.host_names, self.machines_dir)
        if in_use == {"docker"}:
            return docker.machine_states(self.lab, self.machines_dir)
        return {s.name: (s.state.replace("_", " "), s.provider or "-") for s in self.vagrant.status()}

    def status_rows(self):
        states = self.states()
        running = [name for name, (state, _) in states.items() if state == "running"]
        endpoints = self.inventory.endpoints(running) if running else {}
        live = self._services_and_vip([h for h in self.lab.hosts if h.name in running and h.name in endpoints])
        rows = []
        for host in self.lab.hosts:
            state, provider = states.get(host.name, ("unknown", "-"))
            endpoint = endpoints.get(host.name) if state == "running" else None
            ssh = f"{endpoint.user}@{endpoint.hostname}:{endpoint.port}" if endpoint else "-"
            services, vip = live.get(host.name, ("-", ""))
            rows.append([host.name, host.role, host.ip, state, provider, ssh, services, vip])
        return rows

    def _services_and_vip(self, hosts):
        """{host: ("haproxy up, keepalived up", "VIP" or "")}: one round trip per host."""
        if not hosts:
            return {}
        connections, _ = self.inventory.connections(hosts)
        commands = {h.name: f"systemctl is-active {' '.join(ROLE_SERVICES[h.role])}; ip -o -4 addr show"
                    for h in hosts}
        results = {}
        with ThreadPoolExecutor(max_workers=len(connections)) as pool:
            futures = {name: pool.submit(run_one, name, conn, commands[name], timeout=10)
                       for name, conn in connections.items()}
        for host in hosts:
            result = futures[host.name].result()
            if result.error:
                results[host.name] = ("unreachable", "")
                continue
            lines = result.stdout.split("\n")
            states = lines[:len(ROLE_SERVICES[host.role])]
            services = ", ".join(f"{svc} {'up' if st == 'active' else st or 'missing'}"
                                 for svc, st in zip(ROLE_SERVICES[host.role], states))
            results[host.name] = (services, "VIP" if f" {self.lab.vip}/" in result.stdout else "")
        return results

    def ssh_argv(self, host, command=None, tty=False):
        """The `ssh` command line that reaches HOST through the cached SSH config."""
        self.lab.host(host)
        if host not in self.inventory.endpoints():
            raise LabError(f"{host} is not running", f"boot it: invoke up --hosts {host}")
        argv = ["ssh", "-F", str(self.inventory.cache_path)] + (["-t"] if tty else []) + [host]
        return argv + (["--", command] if command else [])

    def connections(self, hosts):
        """{name: Connection} of hosts; LabError naming the hosts that are not running."""
        connections, down = self.inventory.connections(hosts)
        if down:
            raise LabError(f"not running: {', '.join(down)}",
                           f"boot them: invoke up --hosts {','.join(down)}")
        return connections

    def run(self, hosts, command, sudo=False):
        """Run command on hosts in parallel; a host that is not running counts as failed."""
        connections, down = self.inventory.connections(hosts)
        results = run_parallel(connections, command, sudo=sudo)
        for name in down:
            say(name, "not running")
            results[name] = HostResult(name, -1, error="not running")
        return results

    def status(self):
        rows = self.status_rows()
        holders = [r[0] for r in rows if r[7] == "VIP"]
        if len(holders) > 1:
            where = f"on {', '.join(holders)}: SPLIT BRAIN"
        else:
            where = f"on {holders[0]}" if holders else "on no balancer"
        return (table(["host", "role", "ip", "state", "provider", "ssh", "services", "vip"], rows)
                + f"\nvirtual IP {self.lab.vip} {where}")

    def halt(self, names=None, force=False):
        hosts = [h.name for h in self.lab.select(names)]
        self.inventory.invalidate(hosts)
        for host in hosts:
            say(host, "halting" + (" (forced)" if force else ""))
        self.vagrant.halt(hosts, force=force)
        for host in hosts:
            say(host, "halted")

    def destroy(self):
        self.inventory.invalidate()
        info(f"lab {self.lab.name}: destroying every host")
        # Only the machines that exist: for the others Vagrant would pick a provider of
        # its own, and fail if that one (libvirt, say) is installed but not running.
        created = [name for name, (state, _) in self.states().items() if state != "not created"]
        if created:
            self.vagrant.destroy(created)
        removed = []
        if usable("docker")[0]:
            removed = docker.remove_lab_leftovers(self.lab)
        if usable("virtualbox")[0]:
            for name, uuid in self._virtualbox_orphans().items():
                virtualbox.remove_vm(uuid)
                removed.append(f"VirtualBox VM {name}")
        for item in removed:
            say("leftover", f"removed {item}")
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
    if marker == "==>" or verbose:
        if message.strip():
            say(host, message.strip())
