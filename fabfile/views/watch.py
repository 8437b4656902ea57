"""What `invoke watch` shows: one frame of the live lab as a rich table, and the traffic
through the VIP from the probe's last second."""
from rich.console import Group
from rich.table import Table
from rich.text import Text

STATE_STYLES = {"up": "green", "UP": "green", "MASTER": "bold green", "BACKUP": "cyan",
                "FAULT": "bold red", "DOWN": "bold red", "unreachable": "bold red"}


def traffic(samples, now, window=1.0):
    """Requests, failures and answers per balancer among the probe's samples that finished
    in the last `window` seconds, as rates per second."""
    recent = [s for s in samples if now - window <= s.finished <= now]
    by_balancer = {}
    for s in recent:
        if s.ok:
            by_balancer[s.balancer] = by_balancer.get(s.balancer, 0) + 1
    return {"rps": round(len(recent) / window, 1), "errors": round(sum(1 for s in recent if not s.ok) / window, 1),
            "by_balancer": {b: round(n / window, 1) for b, n in sorted(by_balancer.items())}}


def styled(value):
    return Text(str(value), style=STATE_STYLES.get(str(value), "yellow" if value not in ("", "-") else ""))


def frame(snapshot, flow=None, elapsed=None):
    """A rich renderable of one snapshot (see checks.live.snapshot) and the traffic."""
    holders = snapshot["vip_holders"]
    if len(holders) > 1:
        vip = Text(f"VIP {snapshot['vip']} on {', '.join(holders)}: SPLIT BRAIN", style="bold red")
    elif holders:
        vip = Text(f"VIP {snapshot['vip']} on {holders[0]}",
                   style="bold green" if holders[0] == snapshot["preferred_master"] else "bold yellow")
    else:
        vip = Text(f"VIP {snapshot['vip']} on no balancer", style="bold red")

    balancers = Table(title="balancers", title_justify="left")
    for column in ("balancer", "VRRP", "holds VIP", "services"):
        balancers.add_column(column)
    for name, state in snapshot["vrrp"].items():
        services = ", ".join(f"{u} {s}" for u, s in snapshot["services"].get(name, {}).items())
        balancers.add_row(name, styled(state), "yes" if name in holders else "", services)

    backends = Table(title=f"backends (HAProxy on {snapshot['backends_from'] or 'no balancer'})", min_width=34,
                     title_justify="left")
    backends.add_column("backend")
    backends.add_column("state")
    for name, state in snapshot["backends"].items():
        backends.add_row(name, styled(state))

    hosts = Table(title="other hosts", title_justify="left")
    hosts.add_column("host")
    hosts.add_column("services")
    for name, services in snapshot["services"].items():
        if name not in snapshot["vrrp"]:
            hosts.add_row(name, Text(", ".join(f"{u} {s}" for u, s in services.items()),
                                     style="green" if all(s == "up" for s in services.values()) else "bold red"))

    parts = [vip, balancers, backends, hosts]
    if flow is not None:
        answered = ", ".join(f"{b or '?'} {r}/s" for b, r in flow["by_balancer"].items()) or "none"
        parts.append(Text(f"through the VIP: {flow['rps']} requests/s, {flow['errors']} errors/s; answered by "
                          f"{answered}", style="bold red" if flow["errors"] else ""))
    if elapsed is not None:
        parts.append(Text(f"{elapsed:.0f}s; Ctrl-C stops", style="dim"))
    return Group(*parts)
