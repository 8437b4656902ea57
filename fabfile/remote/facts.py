"""Facts about a host: one fact is a shell command and a parser with a typed result.

Every fact that the steps and checks of a host need is gathered in one SSH round trip:
`script(facts)` prints each fact's output base64-encoded on a line of its own, and
`parse(facts, output)` turns those lines into {fact key: typed value}. Provisioning,
verify, status and the drills ask the same facts the same way."""
import base64
import hashlib
import shlex
from dataclasses import dataclass
from typing import Callable, Optional

FACTS_TIMEOUT_S = 30  # a facts round trip reads state; it never waits on a network or a lock


@dataclass(frozen=True)
class Fact:
    key: str
    command: str
    parse: Callable[[str], object]


# --- typed results -----------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceState:
    enabled: str   # enabled | disabled | masked | static | missing
    active: str    # active | inactive | failed | activating | unknown

    @property
    def running(self):
        return self.active == "active"

    @property
    def is_enabled(self):
        return self.enabled == "enabled"

    @property
    def words(self):
        return "up" if self.running else (self.active or "missing")


@dataclass(frozen=True)
class PathState:
    """What `stat` (and, for files, sha256sum) says of a path; None when it does not exist."""
    mode: str
    owner: str
    group: str
    sha256: str = ""

    def matches(self, mode, owner, group, sha256=""):
        return (self.mode, self.owner, self.group, self.sha256) == (mode, owner, group, sha256)


@dataclass(frozen=True)
class Addresses:
    """The host's IPv4 addresses, each on its interface."""
    pairs: tuple  # ((iface, ip), ...)

    @property
    def ips(self):
        return {ip for _, ip in self.pairs}

    def interface_of(self, ip):
        return next((iface for iface, have in self.pairs if have == ip), None)

    def holds(self, ip):
        return ip in self.ips


# --- parsers --------------------------------------------------------------------------------

def parse_service(text):
    words = text.split()
    enabled = words[0] if words else "missing"
    active = words[1] if len(words) > 1 else "unknown"
    return ServiceState(enabled, active)


def parse_path(text):
    words = text.split()
    if len(words) == 3:
        return PathState(*words)
    if len(words) == 4:
        return PathState(words[1], words[2], words[3], sha256=words[0])
    return None


def parse_addresses(text):
    pairs = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] == "inet":
            pairs.append((words[1], words[3].split("/")[0]))
    return Addresses(tuple(pairs))


def parse_listeners(text):
    """{'address:port', ...} from `ss -Hltn`; IPv6 wildcards read as '*'."""
    found = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4:
            address, _, port = words[3].rpartition(":")
            found.add(f"{'*' if address in ('0.0.0.0', '*', '[::]') else address}:{port}")
    return frozenset(found)


def parse_packages(text):
    """{package: installed?} from dpkg-query's `name=status` words."""
    found = {}
    for word in text.split():
        name, _, status = word.partition("=")
        found[name] = status == "installed"
    return found


def parse_links(text):
    """{interface: administratively up?} from `ip -o link show`."""
    links = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[2].startswith("<"):
            links[words[1].rstrip(":").split("@")[0]] = "UP" in words[2].strip("<>").split(",")
    return links


def parse_words(text):
    return tuple(text.split())


def parse_present(text):
    return text.strip() == "yes"


def parse_text(text):
    return text.strip()


def parse_backends(text):
    """{server: status} of HAProxy's backend `web`, from its stats CSV."""
    states = {}
    for line in text.splitlines():
        cells = line.split(",")
        if len(cells) > 17 and cells[0] == "web" and cells[1] not in ("BACKEND", "FRONTEND"):
            states[cells[1]] = cells[17]
    return states


def parse_vrrp_state(text):
    """MASTER, BACKUP or FAULT from the keepalived notify log's last line that has a state.
    The last by position: one reader writes the lines in keepalived's order (its notify
    FIFO, see keepalived-notify.sh.j2). Not the latest by timestamp: when keepalived forked
    a notify script per transition, a MASTER and the BACKUP that ended it a few ms later
    could take their times in the wrong order, and a tie picked MASTER."""
    state = "unknown"
    for line in text.splitlines():
        states = [w.split("=", 1)[1] for w in line.split() if w.startswith("state=")]
        if states and states[0] in VRRP_STATES:
            state = states[0]
    return state


# What keepalived's notify reports as a state; its FIFO also carries events that are none
# (MASTER_RX_LOWER_PRI: the master heard a lower-priority advert).
VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


# --- the facts --------------------------------------------------------------------------------

def service(unit):
    return Fact(f"service:{unit}", f"e=$(systemctl is-enabled {unit}); a=$(systemctl is-active {unit}); "
                                   f"echo \"${{e:-missing}} ${{a:-unknown}}\"", parse_service)


def file(path):
    return Fact(f"file:{path}", f"sha256sum {path} | cut -c1-64; stat -c '%a %U %G' {path}", parse_path)


def directory(path):
    return Fact(f"dir:{path}", f"stat -c '%a %U %G' {path}", parse_path)


def link(path):
    return Fact(f"link:{path}", f"readlink {path}", parse_text)


def exists(path):
    return Fact(f"exists:{path}", f"test -e {path} -o -L {path} && echo yes", parse_present)


def line_in(path, line):
    digest = hashlib.sha256(line.encode()).hexdigest()[:12]
    return Fact(f"line:{path}:{digest}", f"grep -qxF -e {shlex.quote(line)} {path} && echo yes", parse_present)


def user(name):
    return Fact(f"user:{name}", f"id -u {name} >/dev/null && echo yes", parse_present)


def packages(names):
    return Fact(f"packages:{' '.join(names)}",
                f"dpkg-query -W -f='${{Package}}=${{db:Status-Status}}\\n' {' '.join(names)}",
                parse_packages)


APT_LISTS_MAX_AGE_MIN = 24 * 60


def apt_lists_fresh():
    return Fact("apt_lists_fresh", f"find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' "
                                   f"-mmin -{APT_LISTS_MAX_AGE_MIN} | head -n 1 | grep -q . && echo yes",
                parse_present)


def addresses():
    return Fact("addresses", "ip -o -4 addr show", parse_addresses)


def links():
    return Fact("links", "ip -o link show", parse_links)


def listeners():
    return Fact("listeners", "ss -Hltn", parse_listeners)


def container():
    return Fact("container", "systemd-detect-virt --container >/dev/null && echo yes", parse_present)


def haproxy_backends(ip, stats_port):
    return Fact("haproxy_backends", f"curl -s --max-time 2 'http://{ip}:{stats_port}/stats;csv'",
                parse_backends)


def vrrp_state(log_path):
    return Fact("vrrp_state", f"tail -n 5 {log_path}", parse_vrrp_state)


def config_words(path, pattern):
    """The lines of a configuration file that match `pattern` (grep -E), as words."""
    return Fact(f"grep:{path}:{pattern}", f"grep -E {shlex.quote(pattern)} {path}", parse_words)


def sql_value(sql):
    """One value from the local MariaDB server, asked as root through its socket."""
    return Fact(f"sql:{sql}", f"mariadb -N -e {shlex.quote(sql)}", parse_text)


# --- one round trip ----------------------------------------------------------------------------

def unique(facts):
    """The facts by key, each once, in the order first asked."""
    return list({f.key: f for f in facts}.values())


def script(facts):
    """One shell script that prints `key<TAB>base64(output)` for every fact."""
    lines = []
    for fact in unique(facts):
        lines.append(f"printf '%s\\t%s\\n' {shlex.quote(fact.key)} "
                     f"\"$({{ {fact.command}; }} 2>/dev/null | base64 -w0)\"")
    return "\n".join(lines)


def parse(facts, output):
    """{key: typed value} from the script's output; a fact the output lacks parses as ''."""
    raw = {}
    for line in output.splitlines():
        key, tab, encoded = line.partition("\t")
        if tab:
            raw[key] = base64.b64decode(encoded).decode(errors="replace")
    return parse_raw(facts, raw)


def parse_raw(facts, raw):
    """{key: typed value} from {key: the command's output}: what tests feed as data."""
    return {fact.key: fact.parse(raw.get(fact.key, "")) for fact in unique(facts)}


def gather(connection, facts, timeout=FACTS_TIMEOUT_S):
    """Every fact in one SSH round trip, as root. Raises what Fabric raises when the host
    cannot be reached or does not answer within `timeout`."""
    facts = unique(facts)
    if not facts:
        return {}
    result = connection.run("sudo -n sh -c " + shlex.quote(script(facts)), hide=True, warn=True,
                            in_stream=False, timeout=timeout)
    if result.exited != 0 and not result.stdout:
        raise RuntimeError(f"gathering facts failed (exit {result.exited}): {result.stderr.strip()}")
    return parse(facts, result.stdout)


def value(facts, fact: Fact, default: Optional[object] = None):
    """The typed value of `fact` in gathered `facts`."""
    return facts.get(fact.key, default)
