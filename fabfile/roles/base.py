"""What a role is: everything about one kind of server in one place. Its settings (the
defaults, which lab.yml's `settings:` may override), packages, files, services and
listeners, the steps that build it, and the checks that prove it."""
from dataclasses import dataclass
from types import SimpleNamespace

from ..converge.steps import Packages, Service, loaded_files
from ..core.errors import LabError
from ..core.lab import ROLES
from ..remote import facts as F
from . import common, exporters


@dataclass(frozen=True)
class Check:
    """One verification: named for what it proves, with a line a student understands."""
    name: str
    host: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Inbound:
    """One way into a host that its firewall opens: which service answers, on which
    protocol and port, and from where. The firewall's ruleset and verify's port matrix are
    both made from these, so a port a role opens is a port the matrix proves."""
    service: str              # who answers, as a student reads it ("HAProxy stats", "MariaDB")
    proto: str                # "tcp", "udp" or "vrrp" (IP protocol 112, no port)
    port: int | None          # None for VRRP
    sources: tuple = ()       # addresses or networks (strings) allowed in; () means anywhere


@dataclass
class RoleContext:
    """What a role needs to build a host's steps."""
    lab: object
    host: object
    settings: dict
    secrets: dict
    ssh_source: str = ""  # the address this host sees the lab's SSH come from (the firewall lets it in)

    def template_context(self, **extra):
        """What every template sees: lab, host, hosts (role -> hosts), the role's settings."""
        lab = self.lab
        return {"lab": SimpleNamespace(name=lab.name, network=str(lab.network), prefixlen=lab.network.prefixlen,
                                       vip=lab.vip, gateway=lab.gateway, site=lab.site, tls=lab.tls),
                "host": self.host,
                "hosts": {role: lab.with_role(role) for role in ROLES},
                "settings": self.settings, **extra}


class _Placeholders(dict):
    """Secrets for steps that are only looked at, never planned or run: the checks build a
    host's steps to learn which files each service runs on, and render nothing."""

    def __missing__(self, key):
        return ("", "")  # a key pair unpacks; nothing reads the value


def runs_current(step, loaded):
    """(passed, detail) of a Service step's `loaded:<unit>` fact: the hashes recorded when
    provision last started, restarted or reloaded the unit, against its files' hashes now."""
    if len(loaded) != 4 or loaded[0] == "none":
        return False, "no record of what it loaded: `invoke provision` (re)starts it and records it"
    reload_, restart = loaded[0] != loaded[2], loaded[1] != loaded[3]
    if not (reload_ or restart):
        return True, "its files are as it last loaded them"
    paths = (step.reload_on if reload_ else ()) + (step.restart_on if restart else ())
    what = paths[0] if len(paths) == 1 else f"{', '.join(paths[:-1])} or {paths[-1]}"  # hashed together
    verb = "restarts" if restart or not step.can_reload else "reloads"
    return False, f"{what} changed since it last loaded them: `invoke provision` {verb} it"


def loaded_fact(step):
    """What a Service step plans from: the hashes its unit last loaded and its files' now."""
    return loaded_files(step.unit, step.reload_on, step.restart_on)[0]


def listening(listeners, address, port):
    """Whether `ss` showed a socket on address:port ('*': on every address)."""
    return f"{address}:{port}" in listeners


class Role:
    name = ""
    summary = ""
    defaults = {}     # the role's settings, each explained where it is defined
    services = ()     # the systemd units it runs

    def shared(self, lab):
        """Settings this role takes from another role (the port it connects to): the other
        role owns them, so the two cannot drift apart."""
        return {}

    def settings(self, lab):
        """A new dict: the defaults, lab.yml's `settings: {role: {...}}` over them, and the
        settings shared with the roles this one talks to."""
        overrides = lab.settings.get(self.name, {})
        shared = self.shared(lab)
        borrowed = sorted(set(overrides) & set(shared))
        if borrowed:
            raise LabError(f"{lab.path.name}: settings.{self.name}: {', '.join(borrowed)} belongs to "
                           f"another role", "set it under that role (settings.db for db_*, settings.app for app_port)")
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise LabError(f"{lab.path.name}: settings.{self.name}: unknown setting {', '.join(unknown)}",
                           f"use one of: {', '.join(sorted(self.defaults))}")
        return {**self.defaults, **overrides, **shared}

    def listeners(self, host, settings):
        """[(address, port)] the role listens on; '*' means every address."""
        return []

    def inbound(self, lab, host, settings):
        """[Inbound]: what the host's firewall lets in for this role's services (the common
        role adds SSH); every other inbound packet is dropped."""
        return []

    # --- building ---------------------------------------------------------------------
    def facts(self, ctx):
        """Facts the steps need beyond their own (the private interface, say)."""
        return []

    def steps(self, ctx):
        return []

    # --- proving ----------------------------------------------------------------------
    def service_steps(self, lab, host):
        """The host's Service steps (the common ones, then the role's), as provision builds them."""
        ctx = RoleContext(lab, host, self.settings(lab), _Placeholders())
        return [s for s in self.host_steps(ctx) if isinstance(s, Service)]

    def host_steps(self, ctx, firewall_steps=()):
        """Every step of a host of this role: the common ones, the role's, the firewall's,
        the exporters', with one apt-get run for all their packages."""
        return one_install(exporters.with_exporters(ctx, common.steps(ctx) + self.steps(ctx) + list(firewall_steps)))

    def loaded_facts(self, lab, host):
        return [loaded_fact(s) for s in self.service_steps(lab, host)]

    def check_facts(self, lab, host):
        """What the checks of a host of this role read, gathered with every other fact."""
        return [*(F.service(s) for s in all_services() + list(exporters.services(self.name))),
                F.listeners(), F.addresses(),
                *self.loaded_facts(lab, host)]

    def checks(self, lab, host, facts):
        """Its services active and enabled, no other role's service running, its ports
        on the right addresses."""
        checks = []
        for unit in all_services():
            state = F.value(facts, F.service(unit))
            if unit in self.services:
                checks.append(Check(f"{unit} active and enabled", host.name,
                                    state.running and state.is_enabled, f"{state.active}, {state.enabled}"))
            elif state.running:
                checks.append(Check(f"{unit} not running here", host.name, False,
                                    f"{unit} runs on a {host.role} host"))
        for unit in exporters.services(self.name):
            state = F.value(facts, F.service(unit))
            checks.append(Check(f"{unit} active and enabled", host.name,
                                state.running and state.is_enabled, f"{state.active}, {state.enabled}"))
        for step in self.service_steps(lab, host):
            passed, detail = runs_current(step, F.value(facts, loaded_fact(step), ()))
            checks.append(Check(f"{step.unit} runs its current configuration", host.name, passed, detail))
        sockets = F.value(facts, F.listeners(), frozenset())
        for address, port in self.listeners(host, self.settings(lab)) + exporters.listeners(host):
            where = "all addresses" if address == "*" else address
            ok = listening(sockets, address, port)
            seen = ", ".join(sorted(s for s in sockets if s.endswith(f":{port}"))) or "none"
            checks.append(Check(f"port {port} on {where}", host.name, ok,
                                f"listening on {where}:{port}" if ok else f"not on {where}:{port}; sockets: {seen}"))
            if address != "*" and listening(sockets, "*", port):
                checks.append(Check(f"port {port} not on 0.0.0.0", host.name, False, "bound to every address"))
        return checks

    def lab_checks(self, lab, facts_by_host):
        """Checks across the hosts of this role (the VIP on exactly one balancer)."""
        return []


def one_install(steps):
    """The steps with every Packages step's names moved into the first one: one apt-get
    run per host. Packages only move earlier, never after a step that needs them."""
    first = next((i for i, s in enumerate(steps) if isinstance(s, Packages)), None)
    if first is None:
        return steps
    names = [n for s in steps if isinstance(s, Packages) for n in s.names]
    return [Packages(tuple(dict.fromkeys(names))) if i == first else s
            for i, s in enumerate(steps) if i == first or not isinstance(s, Packages)]


_registry = {}


def register(role):
    _registry[role.name] = role
    return role


def registered(name):
    """The role module registered under `name` (for a role that reads another's settings)."""
    return _registry[name]


def all_services():
    return sorted({unit for role in _registry.values() for unit in role.services})
