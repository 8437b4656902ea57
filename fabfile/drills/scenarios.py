"""The failover scenarios, as a table: what breaks the MASTER balancer, what undoes it,
and what the backup should see. Each fault takes the drill's `Target` (the broken host,
an open connection to it, its private interface) and the lab's machines."""
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str          # what the README and the report say was done
    undo: str
    effect: str         # what the backup sees
    inject: Callable    # (drills, target) -> None
    restore: Callable   # (drills, target) -> None


def _sudo(command):
    return lambda drills, target: drills.sudo(target.host, command.format(iface=target.iface), target.connection)


def _sudo_fresh(command):
    return lambda drills, target: drills.sudo(target.host, command.format(iface=target.iface))


def _halt(drills, target):
    drills.power_off(target)


def _crash(drills, target):
    drills.machines.crash(target.host.name)


def _boot(drills, target):
    drills.machines.up([target.host.name], drills.provider, quiet=True)


SCENARIOS = {s.name: s for s in (
    Scenario("haproxy", "systemctl stop haproxy", "systemctl start haproxy",
             "keepalived's tracked file says HAProxy stopped; the MASTER gives up the VIP at once",
             _sudo("systemctl stop haproxy"), _sudo_fresh("systemctl start haproxy")),
    Scenario("keepalived", "systemctl stop keepalived", "systemctl start keepalived",
             "the MASTER sends a priority-0 advert on its way out; the backup takes over at once",
             _sudo("systemctl stop keepalived"), _sudo_fresh("systemctl start keepalived")),
    Scenario("halt", "a clean shutdown from inside the machine (systemctl poweroff)", "the machine booted again",
             "keepalived stops with the machine and says so (priority 0)", _halt, _boot),
    Scenario("crash", "the machine powered off at once", "the machine booted again",
             "silence: the backup waits 3 adverts + skew", _crash, _boot),
    Scenario("network", "the private interface taken down", "the interface brought up",
             "silence: the backup waits 3 adverts + skew", _sudo("ip link set {iface} down"),
             _sudo_fresh("ip link set {iface} up")),
)}
