"""`invoke verify`: the lab checked from inside (each host's role says what proves it) and
from outside as a user would (a page and a note through the VIP). Every check is named
for what it proves and says in one line what it found."""
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from ..core.console import table
from ..remote import facts as F
from ..roles import ROLES, Check, firewall, role_of
from ..roles.db import notes_table
from . import portmatrix
from .http import lab_tls, request
from .netsafety import ensure_local_route
from .tls import https_checks

INSIDE_TIMEOUT_S = 15


def host_facts(lab, host):
    """Everything verify asks a host, in one round trip: its role's facts, its firewall's,
    and its probes of the other hosts' ports."""
    return [*role_of(host).check_facts(lab, host), *firewall.check_facts(), portmatrix.probe_fact(lab, host)]


def host_checks(lab, host, connection):
    """(checks, facts) of one host: its facts and its probes of the other hosts' ports in
    one round trip, judged by its role and its firewall."""
    role = role_of(host)
    started = time.monotonic()
    try:
        facts = F.gather(connection, host_facts(lab, host), timeout=INSIDE_TIMEOUT_S)
    except Exception as exc:  # unreachable, frozen: this host's row says so
        return [Check("host reachable", host.name, False, f"{type(exc).__name__}: {exc}".strip(),
                      time.monotonic() - started)], None
    reachable = Check("host reachable", host.name, True, "SSH answered", time.monotonic() - started)
    return [reachable, *role.checks(lab, host, facts), *firewall.checks(host, facts)], facts


def outside_checks(lab, find_note, tls):
    """Through the VIP from this machine, over HTTPS (`tls`: checks.http.lab_tls): a page,
    and a note written and read back. `find_note(id)` returns the note's text as the
    database has it."""
    names = set(lab.host_names)
    checks = []
    started = time.monotonic()
    try:
        page = request(lab.vip, "GET", "/", timeout=3, tls=tls)
        ok = page.status == 200 and page.headers.get("x-lb") in names and page.headers.get("x-served-by") in names
        checks.append(Check("page through the VIP over HTTPS", page.headers.get("x-lb", "-"), ok,
                            f"HTTP {page.status}, X-LB {page.headers.get('x-lb')}, "
                            f"X-Served-By {page.headers.get('x-served-by')}", time.monotonic() - started))
    except OSError as exc:
        checks.append(Check("page through the VIP over HTTPS", "-", False, f"{lab.vip}: {exc}", time.monotonic() - started))
        return checks
    started = time.monotonic()
    text = f"verify {time.time():.3f}"
    name = "note written via HTTPS to the VIP -> HAProxy -> Nginx -> Gunicorn -> MySQL"
    answered = "-"  # the app host behind the last answer (X-App): a failure names it
    try:
        written = request(lab.vip, "POST", "/api/notes", {"text": text}, timeout=3, tls=tls)
        answered = written.headers.get("x-app", "-")
        if written.status != 201:
            raise OSError(f"POST answered {written.status}: {written.body[:200]!r}")
        note = written.json()
        read = request(lab.vip, "GET", f"/api/notes/{int(note['id'])}", timeout=3, tls=tls)
        reader = answered = read.headers.get("x-app", "-")
        found = find_note(int(note["id"]))
        ok = read.status == 200 and read.json().get("text") == text and found == text
        checks.append(Check(name, note.get("app", "-") if read.status == 200 else reader, ok,
                            f"id {note['id']} by {note.get('app')}, read back {read.status}"
                            f"{'' if reader == note.get('app') else f' by {reader}'}, "
                            f"{'in' if found == text else 'NOT in'} the table on the database host",
                            time.monotonic() - started))
        headers = {written.headers.get("x-lb"), written.headers.get("x-served-by"), written.headers.get("x-app")}
        checks.append(Check("X-LB, X-Served-By and X-App name lab hosts", "-", headers <= names,
                            ", ".join(sorted(str(h) for h in headers))))
    except (OSError, ValueError, KeyError) as exc:
        checks.append(Check(name, answered, False, str(exc), time.monotonic() - started))
    return checks


def verify(machines):
    lab = machines.lab
    started = time.monotonic()
    ensure_local_route(lab.vip, lab.network)
    connections, down = machines.inventory.connections(list(lab.hosts))
    checks = [Check("host reachable", name, False, "not running") for name in down]
    db = lab.with_role("db")[0]
    table_name = notes_table(ROLES["db"].settings(lab))
    # A connection of its own: one fabric Connection must never serve two threads at once.
    db_connection = machines.inventory.connections([db])[0].get(db.name)

    def find_note(note_id):
        if db_connection is None:
            return None
        fact = F.sql_value(f"SELECT text FROM {table_name} WHERE id={int(note_id)}")
        try:
            return F.value(F.gather(db_connection, [fact], timeout=10), fact)
        except Exception:
            return None

    facts_by_host = {}
    hosts = [h for h in lab.hosts if h.name in connections]
    with ThreadPoolExecutor(max_workers=len(hosts) + 2) as pool:
        tls = lab_tls(lab)
        encrypted = pool.submit(https_checks, lab, tls)
        outside = pool.submit(outside_checks, lab, find_note, tls)
        from_here = pool.submit(portmatrix.probe_from_here, lab)
        for host, (produced, facts) in zip(hosts, pool.map(lambda h: host_checks(lab, h, connections[h.name]),
                                                             hosts)):
            if facts is not None:
                facts_by_host[host.name] = facts
            checks += produced
        for role in ROLES.values():
            checks += role.lab_checks(lab, facts_by_host)
        checks += encrypted.result() + outside.result()
        probes = {name: F.value(facts, portmatrix.probe_fact(lab, lab.host(name)))
                  for name, facts in facts_by_host.items()}
        paths = portmatrix.matrix(lab, probes, from_here.result())
    return Verdict(checks, time.monotonic() - started, paths, lab)


@dataclass
class Verdict:
    checks: list
    seconds: float
    matrix: list = field(default_factory=list)  # portmatrix.Path, every one probed
    lab: object = None

    @property
    def passed(self):
        return all(c.passed for c in self.checks) and all(p.passed for p in self.matrix)

    def matrix_table(self):
        """The port matrix as a rich renderable (None when there is none)."""
        return portmatrix.rich_table(self.lab, self.matrix) if self.matrix else None

    def table(self):
        rows = [["PASS" if c.passed else "FAIL", c.host, c.name, c.detail] for c in self.checks]
        return table(["", "host", "check", "detail"], rows)

    def summary(self):
        failed = [c for c in self.checks if not c.passed]
        wrong = [p for p in self.matrix if not p.passed]
        paths = f", {len(self.matrix)} paths as expected" if self.matrix and not wrong else ""
        if not failed and not wrong:
            return f"verify: all {len(self.checks)} checks passed{paths} in {self.seconds:.1f}s"
        problems = [f"{c.host}: {c.name}" for c in failed] + \
            [f"{p.source} -> {p.to}:{p.port} {p.observed}, expected {p.expected}" for p in wrong]
        counts = [f"{len(failed)} of {len(self.checks)} checks FAILED"] if failed else []
        counts += [f"{len(wrong)} of {len(self.matrix)} paths not as expected"] if wrong else []
        return f"verify: {' and '.join(counts)} in {self.seconds:.1f}s: " + "; ".join(problems)

    def as_json(self):
        return {"passed": self.passed, "seconds": round(self.seconds, 2),
                "checks": [dict(asdict(c), seconds=round(c.seconds, 3)) for c in self.checks],
                "matrix": portmatrix.as_json(self.matrix)}
