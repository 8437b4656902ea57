"""`invoke status`: each host's machine state and SSH endpoint (from the machines layer),
its role's services and whether it holds the VIP (facts, one round trip per host)."""
from dataclasses import dataclass

from ..core.console import table
from ..remote import facts as F
from ..roles import role_of
from ..roles.loadbalancer import vip_holders
from .live import gather_all

STATUS_TIMEOUT_S = 10


@dataclass
class HostStatus:
    name: str
    role: str
    ip: str
    state: str
    provider: str
    ssh: str
    services: str
    vip: bool


def status_facts(lab, host):
    """What a status row shows: the role's services and whether the host holds the VIP."""
    return [F.addresses(), *(F.service(u) for u in role_of(host).services)]


def statuses(machines):
    lab = machines.lab
    states = machines.states()
    running = [h for h in lab.hosts if states.get(h.name, ("",))[0] == "running"]
    endpoints = machines.inventory.endpoints([h.name for h in running]) if running else {}
    connections, _ = machines.inventory.connections([h for h in running if h.name in endpoints])
    try:
        facts = gather_all(lab, connections, status_facts, timeout=STATUS_TIMEOUT_S)
    finally:
        for connection in connections.values():
            connection.close()
    holders = vip_holders(lab, {n: f for n, f in facts.items() if f is not None})
    rows = []
    for host in lab.hosts:
        state, provider = states.get(host.name, ("unknown", "-"))
        endpoint = endpoints.get(host.name) if state == "running" else None
        ssh = f"{endpoint.user}@{endpoint.hostname}:{endpoint.port}" if endpoint else "-"
        if host.name not in facts:
            services = "-"
        elif facts[host.name] is None:
            services = "unreachable"
        else:
            services = ", ".join(f"{u} {F.value(facts[host.name], F.service(u)).words}"
                                 for u in role_of(host).services)
        rows.append(HostStatus(host.name, host.role, host.ip, state, provider, ssh, services,
                               host.name in holders))
    return rows


def render(lab, rows):
    holders = [r.name for r in rows if r.vip]
    if len(holders) > 1:
        where = f"on {', '.join(holders)}: SPLIT BRAIN"
    else:
        where = f"on {holders[0]}" if holders else "on no balancer"
    lines = [[r.name, r.role, r.ip, r.state, r.provider, r.ssh, r.services, "VIP" if r.vip else ""] for r in rows]
    return (table(["host", "role", "ip", "state", "provider", "ssh", "services", "vip"], lines)
            + f"\nvirtual IP {lab.vip} {where}")
