"""`invoke verify`: the lab checked from inside (services, ports, VRRP, HAProxy's view)
and from outside as a user would (a page and a note through the VIP). Every check is
named for what it proves and says in one line what it found."""
import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from .client import request
from .netsafety import ensure_local_route
from .output import table
from .remote import run_one
from .settings import ROLE_SERVICES, ROLE_SETTINGS

ALL_SERVICES = sorted({s for names in ROLE_SERVICES.values() for s in names})


@dataclass
class Check:
    name: str
    host: str
    passed: bool
    detail: str
    seconds: float = 0.0


def expected_listeners(host):
    """(address, port) each role must listen on; '*' means every address."""
    if host.role == "loadbalancer":
        return [("*", 80), (host.ip, ROLE_SETTINGS["loadbalancer"]["stats_port"])]
    if host.role == "web":
        return [("*", 80)]
    if host.role == "app":
        return [(host.ip, ROLE_SETTINGS["app"]["app_port"])]
    return [(host.ip, 3306)]


def inside_script(host, lab):
    """One script per host: service states, listening sockets, addresses, role details."""
    lines = [f"for s in {' '.join(ALL_SERVICES)}; do echo \"svc $s $(systemctl is-active $s) "
             f"$(systemctl is-enabled $s 2>/dev/null || echo missing)\"; done",
             "ss -Hltn | awk '{print \"listen\", $4}'",
             "ip -o -4 addr show | awk '{print \"addr\", $4}'"]
    if host.role == "loadbalancer":
        stats = ROLE_SETTINGS["loadbalancer"]["stats_port"]
        lines += [f"curl -s --max-time 2 'http://{host.ip}:{stats}/stats;csv' | "
                  "awk -F, '$1==\"web\" && $2!=\"BACKEND\" {print \"backend\", $2, $18}'",
                  "grep -A3 unicast_peer /etc/keepalived/keepalived.conf | "
                  "grep -oE '([0-9]+\\.){3}[0-9]+' | sed 's/^/peer /'",
                  "grep -q '^ *vrrp_strict' /etc/keepalived/keepalived.conf && echo strict yes",
                  "echo vrrp $(tail -n 1 /var/log/keepalived-transitions.log 2>/dev/null | "
                  "grep -o 'state=[A-Z]*' | cut -d= -f2)"]
    return "\n".join(lines)


def parse_inside(output):
    facts = {"svc": {}, "listen": set(), "addr": set(), "backend": {}, "peer": set()}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        parts = rest.split()
        if kind == "svc" and len(parts) >= 3:
            facts["svc"][parts[0]] = (parts[1], parts[2])
        elif kind == "listen" and parts:
            facts["listen"].add(parts[0])
        elif kind == "addr" and parts:
            facts["addr"].add(parts[0].split("/")[0])
        elif kind == "backend" and len(parts) >= 2:
            facts["backend"][parts[0]] = parts[1]
        elif kind == "peer" and parts:
            facts["peer"].add(parts[0])
        elif kind == "strict":
            facts["strict"] = True
        elif kind == "vrrp":
            facts["vrrp"] = parts[0] if parts else "unknown"
    return facts


def listening(facts, address, port):
    wanted = {f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"} if address == "*" else {f"{address}:{port}"}
    return bool(wanted & facts["listen"])


def host_checks(lab, host, result, seconds):
    if not result.ok:
        return [Check("host reachable", host.name, False, result.error or result.stderr.strip(), seconds)], None
    facts = parse_inside(result.stdout)
    checks = [Check("host reachable", host.name, True, "SSH answered", seconds)]
    wanted = ROLE_SERVICES[host.role]
    for service in ALL_SERVICES:
        active, enabled = facts["svc"].get(service, ("unknown", "missing"))
        if service in wanted:
            ok = active == "active" and enabled == "enabled"
            checks.append(Check(f"{service} active and enabled", host.name, ok, f"{active}, {enabled}"))
        elif active == "active":
            checks.append(Check(f"{service} not running here", host.name, False,
                                f"{service} runs on a {host.role} host"))
    for address, port in expected_listeners(host):
        where = "all addresses" if address == "*" else address
        ok = listening(facts, address, port)
        detail = f"listening on {where}:{port}" if ok else \
            f"not on {where}:{port}; sockets: {', '.join(sorted(s for s in facts['listen'] if s.endswith(f':{port}'))) or 'none'}"
        checks.append(Check(f"port {port} on {where}", host.name, ok, detail))
        if address != "*" and (f"0.0.0.0:{port}" in facts["listen"] or f"*:{port}" in facts["listen"]):
            checks.append(Check(f"port {port} not on 0.0.0.0", host.name, False, "bound to every address"))
    if host.role == "loadbalancer":
        peer = next(h for h in lab.with_role("loadbalancer") if h != host)
        unicast = facts["peer"] == {peer.ip} and not facts.get("strict")
        checks.append(Check("VRRP unicast to the peer", host.name, unicast,
                            f"unicast_peer {', '.join(sorted(facts['peer'])) or 'missing'}"
                            + ("; vrrp_strict is set" if facts.get("strict") else "")))
        webs = {h.name for h in lab.with_role("web")}
        states = facts["backend"]
        up = all(states.get(w) == "UP" for w in webs)
        checks.append(Check("HAProxy sees every web backend UP", host.name, up,
                            ", ".join(f"{w} {states.get(w, 'absent')}" for w in sorted(webs))))
    return checks, facts


def vip_checks(lab, facts_by_host):
    balancers = lab.with_role("loadbalancer")
    holders = [h.name for h in balancers if h.name in facts_by_host and lab.vip in facts_by_host[h.name]["addr"]]
    healthy = all(h.name in facts_by_host and
                  facts_by_host[h.name]["svc"].get("haproxy", ("",))[0] == "active" and
                  facts_by_host[h.name]["svc"].get("keepalived", ("",))[0] == "active" for h in balancers)
    checks = [Check("VIP held by exactly one balancer", ",".join(holders) or "-", len(holders) == 1,
                    f"{lab.vip} on {', '.join(holders) or 'no balancer'}")]
    states = {h.name: facts_by_host[h.name].get("vrrp", "unknown") for h in balancers if h.name in facts_by_host}
    see_each_other = sorted(states.values()) == ["BACKUP", "MASTER"]
    checks.append(Check("keepalived peers agree: one MASTER, one BACKUP", "-", see_each_other,
                        ", ".join(f"{n} {s}" for n, s in states.items())))
    if healthy and ROLE_SETTINGS["loadbalancer"]["preempt"]:
        master = balancers[0].name
        checks.append(Check("VIP on the MASTER while both are healthy", master, holders == [master],
                            f"{lab.vip} on {', '.join(holders) or 'nobody'}, MASTER is {master}"))
    return checks


def outside_checks(lab, run_on_db):
    """Through the VIP from this machine: a page, and a note written and read back."""
    names = set(lab.host_names)
    checks = []
    started = time.monotonic()
    try:
        page = request(lab.vip, "GET", "/", timeout=3)
        ok = page.status == 200 and page.headers.get("x-lb") in names and page.headers.get("x-served-by") in names
        checks.append(Check("page through the VIP", page.headers.get("x-lb", "-"), ok,
                            f"HTTP {page.status}, X-LB {page.headers.get('x-lb')}, "
                            f"X-Served-By {page.headers.get('x-served-by')}", time.monotonic() - started))
    except OSError as exc:
        checks.append(Check("page through the VIP", "-", False, f"{lab.vip}: {exc}", time.monotonic() - started))
        return checks
    started = time.monotonic()
    text = f"verify {time.time():.3f}"
    try:
        written = request(lab.vip, "POST", "/api/notes", {"text": text}, timeout=3)
        if written.status != 201:
            raise OSError(f"POST answered {written.status}: {written.body[:200]!r}")
        note = written.json()
        read = request(lab.vip, "GET", f"/api/notes/{int(note['id'])}", timeout=3)
        found = run_on_db(f"SELECT text FROM notes.notes WHERE id={int(note['id'])}")
        ok = read.status == 200 and read.json().get("text") == text and found == text
        checks.append(Check("note written via VIP -> HAProxy -> Nginx -> Gunicorn -> MySQL",
                            note.get("app", "-"), ok,
                            f"id {note['id']} by {note.get('app')}, read back {read.status}, "
                            f"{'in' if found == text else 'NOT in'} the table on the database host",
                            time.monotonic() - started))
        headers = {written.headers.get("x-lb"), written.headers.get("x-served-by"), written.headers.get("x-app")}
        checks.append(Check("X-LB, X-Served-By and X-App name lab hosts", "-", headers <= names,
                            ", ".join(sorted(str(h) for h in headers))))
    except (OSError, ValueError, KeyError) as exc:
        checks.append(Check("note written via VIP -> HAProxy -> Nginx -> Gunicorn -> MySQL", "-", False,
                            str(exc), time.monotonic() - started))
    return checks


def verify(machines):
    lab = machines.lab
    started = time.monotonic()
    ensure_local_route(lab.vip, lab.network)
    connections, down = machines.inventory.connections(list(lab.hosts))
    checks = [Check("host reachable", name, False, "not running") for name in down]
    db = lab.with_role("db")[0]

    def inside(host):
        t0 = time.monotonic()
        script = "sudo -n bash -c " + shlex.quote(inside_script(host, lab))
        return host, run_one(host.name, connections[host.name], script, timeout=15), time.monotonic() - t0

    # A connection of its own: one fabric Connection must never serve two threads at once.
    db_connection = machines.inventory.connections([db])[0].get(db.name)

    def run_on_db(sql):
        if db_connection is None:
            return None
        result = run_one(db.name, db_connection, f"sudo -n mariadb -N -e \"{sql}\"", timeout=10)
        return result.stdout.strip() if result.ok else None

    facts_by_host = {}
    with ThreadPoolExecutor(max_workers=len(connections) + 1) as pool:
        outside = pool.submit(outside_checks, lab, run_on_db)
        for host, result, seconds in pool.map(inside, [h for h in lab.hosts if h.name in connections]):
            produced, facts = host_checks(lab, host, result, seconds)
            if facts is not None:
                facts_by_host[host.name] = facts
            checks += produced
        checks += vip_checks(lab, facts_by_host)
        checks += outside.result()
    return Verdict(checks, time.monotonic() - started)


@dataclass
class Verdict:
    checks: list
    seconds: float

    @property
    def passed(self):
        return all(c.passed for c in self.checks)

    def table(self):
        rows = [["PASS" if c.passed else "FAIL", c.host, c.name, c.detail] for c in self.checks]
        return table(["", "host", "check", "detail"], rows)

    def summary(self):
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return f"verify: all {len(self.checks)} checks passed in {self.seconds:.1f}s"
        return (f"verify: {len(failed)} of {len(self.checks)} checks FAILED in {self.seconds:.1f}s: "
                + "; ".join(f"{c.host}: {c.name}" for c in failed))

    def as_json(self):
        return {"passed": self.passed, "seconds": round(self.seconds, 2),
                "checks": [dict(asdict(c), seconds=round(c.seconds, 3)) for c in self.checks]}

    def write_json(self, path):
        with open(path, "w") as handle:
            json.dump(self.as_json(), handle, indent=2)
            handle.write("\n")
