"""The lab's topology, loaded from lab.yml and validated before anything runs."""
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import config
from .config import PROJECT_DIR
from .errors import LabError

DEFAULT_LAB_FILE = PROJECT_DIR / "lab.yml"

# The roles a lab.yml may name, and how many hosts of each a lab has (min, max; None: any).
# What each role does lives in its module under fabfile/roles/.
ROLE_COUNTS = {"loadbalancer": (2, 2), "web": (1, None), "app": (1, None), "db": (1, 1), "monitor": (0, 1)}
ROLES = tuple(ROLE_COUNTS)
VIRTUALBOX_DEFAULT_RANGE = ipaddress.ip_network("192.168.56.0/21")
VBOX_NETWORKS_CONF = Path("/etc/vbox/networks.conf")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
# Names Docker (and libvirt) give their own networks: a lab of that name would take them over.
RESERVED_NAMES = {"bridge", "host", "none", "default"}
# The private ranges a lab's network may be carved from (RFC 1918); not link-local
# (169.254/16, cloud metadata lives there), loopback or other special ranges.
PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
LARGEST_PREFIX = 16  # a lab needs a handful of addresses: /16 at most, /29 at least
HOST_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# The site's DNS name: lower-case labels of letters, digits and inner dashes, two or more,
# the last one not all digits (that would read as an address).
SITE_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SITE_SUFFIX = ".test"  # the default site is <lab>.test: .test is reserved for testing (RFC 2606)
# Where HTTPS ends: at the balancers (terminate), or again at the web servers (reencrypt).
TLS_MODES = ("terminate", "reencrypt")


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    ip: str
    memory: int = 512
    cpus: int = 1


@dataclass(frozen=True)
class Lab:
    name: str
    network: ipaddress.IPv4Network
    vip: str
    box: str
    hosts: tuple
    path: Path
    settings: dict = field(default_factory=dict)  # {role: {setting: value}} from lab.yml
    site: str = ""            # the site's DNS name; "" means <name>.test
    tls: str = "terminate"    # one of TLS_MODES

    def __post_init__(self):
        if not self.site:
            object.__setattr__(self, "site", self.name + SITE_SUFFIX)

    @property
    def gateway(self):
        """The host machine's own address on the private network (Docker, VirtualBox: .1)."""
        return str(self.network.network_address + 1)

    @property
    def host_names(self):
        return [h.name for h in self.hosts]

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no host named {name!r} in {self.path.name}",
                       f"use one of: {', '.join(self.host_names)}")

    def with_role(self, role):
        return [h for h in self.hosts if h.role == role]

    def select(self, names=None, roles=None):
        """Hosts named in `names` or having one of `roles`; every host when both are empty."""
        names = [n for n in (names or []) if n]
        roles = [r for r in (roles or []) if r]
        for role in roles:
            if role not in ROLES:
                raise LabError(f"unknown role {role!r}", f"use one of: {', '.join(ROLES)}")
        if not names and not roles:
            return list(self.hosts)
        wanted = {self.host(n).name for n in names}
        return [h for h in self.hosts if h.name in wanted or h.role in roles]


class _StrictLoader(yaml.SafeLoader):
    """YAML mappings silently keep the last of two equal keys; a lab file must not."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise LabError(f"line {key_node.start_mark.line + 1}: {key!r} is declared twice",
                               "give every key (every host name) its own entry")
            seen.add(key)
        return super().construct_mapping(node, deep)


LABS_DIR = PROJECT_DIR / "labs"
GENERATED_DIR = PROJECT_DIR / ".lab"


def lab_file_path():
    """LAB_FILE names a lab file; LAB=NAME names a lab: labs/NAME.yml when it exists,
    else one made from lab.yml with that name on a /24 of its own (kept in .lab/NAME/)."""
    settings = config.current()
    if settings.lab_file:
        return Path(settings.lab_file)
    name = settings.lab_name
    if not name:
        return DEFAULT_LAB_FILE
    if not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
        raise LabError(f"LAB={name!r} is not a valid lab name",
                       "use 1-12 lower-case letters, digits or dashes, starting with a letter, "
                       f"and none of {', '.join(sorted(RESERVED_NAMES))}")
    for candidate in (LABS_DIR / f"{name}.yml", GENERATED_DIR / name / "lab.yml"):
        if candidate.exists():
            return candidate
    base = load_lab(DEFAULT_LAB_FILE)
    if name == base.name:
        return DEFAULT_LAB_FILE
    return write_derived_lab(base, name)


def known_lab_networks():
    """{lab name: network} of the labs this checkout knows: lab.yml, labs/, .lab/*/."""
    files = [DEFAULT_LAB_FILE, *LABS_DIR.glob("*.yml"), *GENERATED_DIR.glob("*/lab.yml")]
    networks = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text())
            networks[str(data["name"])] = ipaddress.ip_network(str(data["network"]), strict=False)
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            continue
    return networks


def derive_lab_text(base, name, taken):
    """lab.yml's topology under another name, on the first /24 of 192.168.56.0/21 that no
    known lab uses (VirtualBox accepts that range without configuration)."""
    for network in VIRTUALBOX_DEFAULT_RANGE.subnets(new_prefix=24):
        if not any(network.overlaps(t) for t in taken):
            break
    else:
        raise LabError(f"no free /24 left in {VIRTUALBOX_DEFAULT_RANGE} for lab {name!r}",
                       "destroy a lab you no longer need, or write labs/<name>.yml by hand")

    def moved(ip):
        return str(network.network_address + (int(ipaddress.ip_address(ip)) - int(base.network.network_address)))

    hosts = {h.name: {"role": h.role, "ip": moved(h.ip), "memory": h.memory, "cpus": h.cpus}
             for h in base.hosts}
    return (f"# Lab {name}: made from {base.path.name} by LAB={name}; edit it freely.\n" +
            yaml.safe_dump({"name": name, "network": str(network), "vip": moved(base.vip),
                            "box": base.box, "hosts": hosts}, sort_keys=False))


def write_derived_lab(base, name):
    taken = list(known_lab_networks().values())
    text = derive_lab_text(base, name, taken)
    path = GENERATED_DIR / name / "lab.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_lab(path=None, provider=None):
    """Read and validate lab.yml; raise LabError naming the field and the fix."""
    path = Path(path) if path else lab_file_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LabError(f"{path}: no such lab file", "create it from the lab.yml in the repository")
    return parse_lab(text, path, provider)


def parse_lab(text, path=Path("lab.yml"), provider=None):
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LabError(f"{path.name}: invalid YAML{where}: {getattr(exc, 'problem', exc)}",
                       "fix the syntax (indentation, colons, quotes)")
    if not isinstance(data, dict):
        raise LabError(f"{path.name}: expected a mapping with name, network, vip and hosts")
    return _validate(data, path, provider)


def _fail(path, field, problem, fix):
    raise LabError(f"{path.name}: {field}: {problem}", fix)


def _require(data, path, field):
    if field not in data or data[field] in (None, ""):
        _fail(path, field, "is missing", f"add `{field}:` (see the lab.yml in the repository)")
    return data[field]


def _validate(data, path, provider):
    known = {"name", "network", "vip", "box", "hosts", "settings", "site", "tls"}
    for key in data:
        if key not in known:
            _fail(path, key, "unknown field", f"remove it; fields are {', '.join(sorted(known))}")

    name = str(_require(data, path, "name"))
    if not NAME_PATTERN.match(name):
        _fail(path, "name", f"{name!r} is not a valid lab name",
              "use 1-12 lower-case letters, digits or dashes, starting with a letter")
    if name in RESERVED_NAMES:
        _fail(path, "name", f"{name!r} is the name of one of Docker's or libvirt's own networks",
              "give the lab a name of its own, e.g. halab2")

    try:
        network = ipaddress.ip_network(str(_require(data, path, "network")), strict=True)
    except ValueError as exc:
        _fail(path, "network", str(exc), "write it as an IPv4 network, e.g. 192.168.56.0/24")
    if network.version != 4 or not any(network.subnet_of(r) for r in PRIVATE_RANGES):
        _fail(path, "network", f"{network} is not inside a private IPv4 range "
                               f"({', '.join(map(str, PRIVATE_RANGES))})",
              "use a private range such as 192.168.56.0/24")
    if not LARGEST_PREFIX <= network.prefixlen <= 29:
        _fail(path, "network", f"{network} is a /{network.prefixlen}; a lab's network is a /{LARGEST_PREFIX} "
                               f"to a /29", "use a /24 such as 192.168.56.0/24")
    if provider == "virtualbox":
        _check_virtualbox_range(network, path)

    gateway = network.network_address + 1
    reserved = {network.network_address: "the network address",
                network.broadcast_address: "the broadcast address",
                gateway: "the gateway (the host machine's own address)"}

    def address(field, value):
        try:
            ip = ipaddress.ip_address(str(value))
        except ValueError:
            _fail(path, field, f"{value!r} is not an IPv4 address", "write it as 192.168.56.11")
        if ip not in network:
            _fail(path, field, f"{ip} is outside the network {network}",
                  f"pick an address inside {network}")
        if ip in reserved:
            _fail(path, field, f"{ip} is {reserved[ip]} of {network}",
                  f"pick a host address between {gateway + 1} and {network.broadcast_address - 1}")
        return ip

    vip = address("vip", _require(data, path, "vip"))
    box = str(data.get("box") or "debian/bookworm64")

    raw_hosts = _require(data, path, "hosts")
    if not isinstance(raw_hosts, dict):
        _fail(path, "hosts", "must map host names to {role, ip, memory, cpus}",
              "see the lab.yml in the repository")
    hosts, seen_ips = [], {}
    for host_name, spec in raw_hosts.items():
        field = f"hosts.{host_name}"
        host_name = str(host_name)
        if not HOST_PATTERN.match(host_name):
            _fail(path, field, "is not a valid host name",
                  "use lower-case letters, digits and dashes, starting with a letter")
        if not isinstance(spec, dict):
            _fail(path, field, "must be a mapping", "write {role: web, ip: 192.168.56.21}")
        for key in spec:
            if key not in ("role", "ip", "memory", "cpus"):
                _fail(path, f"{field}.{key}", "unknown field", "fields are role, ip, memory, cpus")
        role = spec.get("role")
        if role not in ROLES:
            _fail(path, f"{field}.role", f"unknown role {role!r}", f"use one of: {', '.join(ROLES)}")
        ip = address(f"{field}.ip", spec.get("ip"))
        if ip == vip:
            _fail(path, f"{field}.ip", f"{ip} is the virtual IP", "give the host its own address")
        if ip in seen_ips:
            _fail(path, f"{field}.ip", f"{ip} is also the address of {seen_ips[ip]}",
                  "give every host its own address")
        seen_ips[ip] = host_name
        memory, cpus = spec.get("memory", 512), spec.get("cpus", 1)
        if not isinstance(memory, int) or memory < 256:
            _fail(path, f"{field}.memory", f"{memory!r} is not a size in MiB of 256 or more",
                  "write e.g. memory: 512")
        if not isinstance(cpus, int) or cpus < 1:
            _fail(path, f"{field}.cpus", f"{cpus!r} is not a whole number of CPUs", "write e.g. cpus: 1")
        hosts.append(Host(host_name, role, str(ip), memory, cpus))

    counts = {role: sum(1 for h in hosts if h.role == role) for role in ROLES}
    if counts["loadbalancer"] != 2:
        _fail(path, "hosts", f"{counts['loadbalancer']} load balancer(s); the VRRP pair needs exactly 2",
              "declare two hosts with role: loadbalancer (lb1 MASTER, lb2 BACKUP)")
    for role in ("web", "app", "db"):
        if counts[role] == 0:
            _fail(path, "hosts", f"no host has role {role}; every tier needs one",
                  f"add a host with role: {role}")
    if counts["db"] > 1:
        _fail(path, "hosts", f"{counts['db']} database hosts; the lab runs a single MySQL server",
              "keep one host with role: db")
    if counts["monitor"] > 1:
        _fail(path, "hosts", f"{counts['monitor']} monitoring servers; a lab has at most one",
              "keep one host with role: monitor (see labs/monitored.yml)")

    return Lab(name, network, str(vip), box, tuple(hosts), path, _settings(data, path),
               _site(data, path, name), _tls_mode(data, path))


def _site(data, path, name):
    """lab.yml's `site:`, the DNS name the site certificate is made for (default <name>.test)."""
    site = data.get("site")
    if site is None:
        return name + SITE_SUFFIX
    site = str(site)
    labels = site.split(".")
    if (len(site) > 253 or len(labels) < 2 or not all(SITE_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):
        _fail(path, "site", f"{site!r} is not a DNS name for the site",
              f"write lower-case labels of letters, digits and dashes joined by dots, "
              f"e.g. site: {name}{SITE_SUFFIX} (.test is reserved for testing)")
    return site


def _tls_mode(data, path):
    """lab.yml's `tls:`: where HTTPS ends (default terminate: at the balancers)."""
    mode = data.get("tls", "terminate")
    if mode not in TLS_MODES:
        _fail(path, "tls", f"unknown mode {mode!r}",
              "write tls: terminate (HTTPS ends at the balancers) or tls: reencrypt "
              "(the balancers speak HTTPS to the web servers too)")
    return mode


def _settings(data, path):
    """lab.yml's `settings:` section: {role: {setting: value}} over the roles' defaults.
    The roles check the setting names; here only the shape and the role names."""
    raw = data.get("settings") or {}
    if not isinstance(raw, dict):
        _fail(path, "settings", "must map roles to settings", "write e.g. settings: {loadbalancer: {advert_int: 0.2}}")
    for role, values in raw.items():
        if role not in ROLES:
            _fail(path, f"settings.{role}", "unknown role", f"use one of: {', '.join(ROLES)}")
        if not isinstance(values, dict):
            _fail(path, f"settings.{role}", "must map setting names to values", "write e.g. advert_int: 0.2")
    return {role: dict(values) for role, values in raw.items()}


def _check_virtualbox_range(network, path):
    allowed = [VIRTUALBOX_DEFAULT_RANGE]
    if VBOX_NETWORKS_CONF.exists():
        allowed = []
        for line in VBOX_NETWORKS_CONF.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["*"]:
                for word in parts[1:]:
                    try:
                        allowed.append(ipaddress.ip_network(word, strict=False))
                    except ValueError:
                        pass
    if not any(network.subnet_of(r) for r in allowed if r.version == 4):
        _fail(path, "network",
              f"{network} is outside the ranges VirtualBox allows for host-only networks "
              f"({', '.join(map(str, allowed))})",
              f"use a network inside 192.168.56.0/21, or allow it: "
              f"echo '* {network}' | sudo tee -a {VBOX_NETWORKS_CONF}")


def check_provider_network(lab, provider):
    """Checks of lab.yml that depend on the provider (VirtualBox's host-only range)."""
    if provider == "virtualbox":
        _check_virtualbox_range(lab.network, lab.path)
