"""verify's port matrix: from every lab host and from this machine (the lab's host), to
every service port of every host, whether it should be open and whether it is.

What should be open comes from the roles' own data: a port is expected open from a source
when the host's role listens on it (SSH always listens) and one of the host's Inbound
records lets the source in. A port another role adds (HTTPS, an exporter) therefore shows
up here with no change to this module. The probes are TCP connects, bounded in time: from
each lab host all at once in its one facts round trip (one bash, a fork per connect to
/dev/tcp, under `timeout`),
from this machine in threads, after the route check."""
import ipaddress
import shlex
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..remote import facts as F
from ..roles import exporters, role_of
from ..roles.firewall import SSH_PORT, host_inbound
from .netsafety import ensure_local_route

# An open port answers a connect in well under a millisecond and the firewall refuses a
# closed one at once (TCP reset), so the bound only matters for a host that does not answer
# at all; it is generous because a loaded host may take a while to start the probe's bash.
PROBE_TIMEOUT_S = 3
LAB_HOST = "host"     # the lab's host (this machine) as a source


@dataclass(frozen=True)
class Target:
    host: str
    ip: str
    port: int
    service: str
    sources: tuple     # who the firewall lets in; () anywhere; None nobody
    listening: bool    # the role listens on it

    @property
    def address(self):
        return f"{self.ip}:{self.port}"

    def allows(self, source_ip):
        if not self.listening or self.sources is None:
            return False
        address = ipaddress.ip_address(source_ip)
        return not self.sources or any(address in ipaddress.ip_network(s, strict=False) for s in self.sources)


def joined(seen, inbound):
    """(service, sources) of a port two Inbound records open (HAProxy's stats page for the
    lab's host, its metrics for the monitoring server): both names, every source."""
    if seen is None:
        return inbound.service, inbound.sources
    service, sources = seen
    names = service if inbound.service in service.split(", ") else f"{service}, {inbound.service}"
    return names, () if not sources or not inbound.sources else tuple(dict.fromkeys(sources + inbound.sources))


def targets(lab):
    """Every TCP port of every host the roles speak of, by their Inbound records and listeners."""
    found = []
    for host in lab.hosts:
        role = role_of(host)
        listened = {port for _, port in role.listeners(host, role.settings(lab)) + exporters.listeners(host)}
        listened.add(SSH_PORT)
        ports = {}
        for inbound in host_inbound(lab, host):
            if inbound.proto == "tcp":
                ports[inbound.port] = joined(ports.get(inbound.port), inbound)
        for port in listened - set(ports):
            ports[port] = (exporters.SERVICE_NAMES.get(port, f"{role.name} port {port}"), None)
        for port in sorted(ports):
            service, sources = ports[port]
            found.append(Target(host.name, host.ip, port, service, sources, port in listened))
    return found


def sources(lab):
    """[(name, address)] of the probes' sources: the lab's hosts, then this machine."""
    return [(h.name, h.ip) for h in lab.hosts] + [(LAB_HOST, lab.gateway)]


def parse_probes(text):
    """{'ip:port': exit status} from the probe script's `ip:port status` lines."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[1].lstrip("-").isdigit():
            found[words[0]] = int(words[1])
    return found


def probe_command(addresses):
    """One bash that forks a TCP connect per `ip:port` (no program started per probe) and
    prints `ip:port 0` when it connected, `ip:port 1` when refused; the whole is bounded by
    PROBE_TIMEOUT_S, and an address with no line did not answer."""
    script = ("for t in " + " ".join(addresses) + "; do "
              '( (: > "/dev/tcp/${t%:*}/${t#*:}") 2>/dev/null && echo "$t 0" || echo "$t 1" ) & done; wait')
    return f"timeout {PROBE_TIMEOUT_S} bash -c {shlex.quote(script)}"


def probe_fact(lab, host):
    """Every port of the other hosts probed from `host` at once."""
    return F.Fact("port_probes", probe_command([t.address for t in targets(lab) if t.host != host.name]),
                  parse_probes)


def words(status):
    return {0: "open", 124: "no answer"}.get(status, "refused")


@dataclass(frozen=True)
class Path:
    source: str
    to: str
    port: int
    service: str
    expected: str   # open | closed
    observed: str   # open | closed
    how: str        # what the probe saw: open, refused, no answer, not probed (...)

    @property
    def passed(self):
        return self.expected == self.observed

    def as_json(self):
        return {"from": self.source, "to": self.to, "port": self.port, "service": self.service,
                "expected": self.expected, "observed": self.observed, "passed": self.passed, "how": self.how}


def judge(lab, source, source_ip, statuses):
    """The paths from one source, from its probes' exit statuses (None: the source could
    not be asked: every path from it fails)."""
    paths = []
    for target in targets(lab):
        if target.host == source:
            continue
        expected = "open" if target.allows(source_ip) else "closed"
        status = None if statuses is None else statuses.get(target.address, 124)
        how = "not probed (source unreachable)" if status is None else words(status)
        observed = "open" if status == 0 else "closed"
        paths.append(Path(source, target.host, target.port, target.service, expected, observed, how))
    return paths


def connect_status(ip, port, timeout=PROBE_TIMEOUT_S):
    """What a TCP connect from this machine saw, as the guests' probe reports it."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return 0
    except socket.timeout:
        return 124
    except OSError:
        return 1


def probe_from_here(lab):
    """{'ip:port': status} of every target probed from this machine, after checking that
    each host's address is routed to the lab's local bridge."""
    every = targets(lab)
    for ip in sorted({t.ip for t in every}):
        ensure_local_route(ip, lab.network)
    with ThreadPoolExecutor(max_workers=len(every)) as pool:
        statuses = pool.map(lambda t: connect_status(t.ip, t.port), every)
    return {t.address: s for t, s in zip(every, statuses)}


def matrix(lab, probes_by_host, local_statuses):
    """Every path: from each lab host (its probes, or None when it could not be asked) and
    from this machine."""
    paths = []
    for name, address in sources(lab):
        statuses = local_statuses if name == LAB_HOST else probes_by_host.get(name)
        paths += judge(lab, name, address, statuses)
    return paths


def as_json(paths):
    return [p.as_json() for p in paths]


def rows(lab, paths):
    """(columns, [[target, cell per source]]) for a table: a row per host port, a column per
    source; a cell says open or closed, and what was expected when it differs."""
    columns = [name for name, _ in sources(lab)]
    by_target = {(t.host, t.port): {} for t in targets(lab)}
    services = {}
    for p in paths:
        by_target.setdefault((p.to, p.port), {})[p.source] = p
        services[(p.to, p.port)] = p.service
    table = []
    for (to, port), cells in by_target.items():
        if not cells:
            continue
        row = [f"{to}:{port} {services[(to, port)]}"]
        for column in columns:
            path = cells.get(column)
            if path is None:
                row.append("-")
            elif path.passed:
                row.append(path.observed)
            else:
                row.append(f"{path.observed.upper()}! want {path.expected}")
        table.append(row)
    return ["to \\ from", *columns], table


def rich_table(lab, paths):
    """The matrix as a rich Table: green where a path is as expected, red where it is not."""
    from rich.table import Table
    from rich.text import Text
    columns, table_rows = rows(lab, paths)
    table = Table(title="port matrix (TCP connects, from each column to each row)",
                  title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in table_rows:
        cells = [Text(row[0])]
        for cell in row[1:]:
            style = "red bold" if "!" in cell else ("green" if cell == "open" else "dim")
            cells.append(Text(cell, style=style))
        table.add_row(*cells)
    return table
