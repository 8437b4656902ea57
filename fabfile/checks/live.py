"""The lab as it is right now, in one round trip per running host: who holds the VIP,
each balancer's VRRP state, each role's services, each web backend's state in HAProxy.
`invoke graph --live` draws it, `invoke watch` refreshes it a few times a second."""
from ..remote import facts as F
from ..remote.parallel import in_parallel
from ..roles import ROLES, role_of
from ..roles.loadbalancer import TRANSITIONS_LOG, balancers, preferred_master, vip_holders

LIVE_TIMEOUT_S = 3


def wanted_facts(lab, host):
    wanted = [F.addresses(), *(F.service(u) for u in role_of(host).services)]
    if host.role == "loadbalancer":
        stats_port = ROLES["loadbalancer"].settings(lab)["stats_port"]
        wanted += [F.vrrp_state(TRANSITIONS_LOG), F.haproxy_backends(host.ip, stats_port)]
    return wanted


def gather_all(lab, connections, wanted=wanted_facts, timeout=LIVE_TIMEOUT_S):
    """{host: facts or None (did not answer)} for the hosts in `connections`, in parallel:
    `wanted(lab, host)` says which. Each connection serves one thread at a time."""
    def ask(host):
        try:
            return host.name, F.gather(connections[host.name], wanted(lab, host), timeout=timeout)
        except Exception:
            return host.name, None
    return dict(in_parallel(ask, [h for h in lab.hosts if h.name in connections]))


def snapshot(lab, facts_by_host):
    """The live state as plain data (what `graph --live` and `watch --json` show)."""
    answered = {n: f for n, f in facts_by_host.items() if f is not None}
    holders = vip_holders(lab, answered)
    stats_port = ROLES["loadbalancer"].settings(lab)["stats_port"]
    vrrp, backends, backends_from = {}, {}, None
    for host in balancers(lab):
        facts = answered.get(host.name)
        if facts is None:
            vrrp[host.name] = "unreachable"
            continue
        vrrp[host.name] = F.value(facts, F.vrrp_state(TRANSITIONS_LOG))
        seen = F.value(facts, F.haproxy_backends(host.ip, stats_port), {})
        # HAProxy's view from the balancer that serves (holds the VIP), else any that answers
        if seen and (backends_from is None or host.name in holders):
            backends, backends_from = seen, host.name
    services = {}
    for host in lab.hosts:
        facts = facts_by_host.get(host.name)
        if host.name not in facts_by_host:
            services[host.name] = {u: "not running" for u in role_of(host).services}
        elif facts is None:
            services[host.name] = {u: "unreachable" for u in role_of(host).services}
        else:
            services[host.name] = {u: F.value(facts, F.service(u)).words for u in role_of(host).services}
    return {"vip": lab.vip, "vip_holder": holders[0] if len(holders) == 1 else None, "vip_holders": holders,
            "preferred_master": preferred_master(lab).name, "vrrp": vrrp, "services": services,
            "backends": {w.name: backends.get(w.name, "absent") for w in lab.with_role("web")},
            "backends_from": backends_from}


def live(machines):
    """One snapshot of the running lab."""
    connections, _ = machines.inventory.connections(list(machines.lab.hosts))
    try:
        return snapshot(machines.lab, gather_all(machines.lab, connections))
    finally:
        for connection in connections.values():
            connection.close()
