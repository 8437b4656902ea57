"""Network safety: client traffic goes only to the lab's own addresses on this machine.
Before any request from the host, the route to the target must go through a local bridge
or host-only interface, never through a gateway or the default route's interface."""
import ipaddress
import os
import re
import subprocess

from ..core.errors import LabError

LOCAL_INTERFACE_PREFIXES = ("br-", "docker", "vboxnet", "virbr")


def parse_route(output):
    """(device, gateway or None) from `ip route get` output."""
    dev = re.search(r"\bdev (\S+)", output)
    via = re.search(r"\bvia (\S+)", output)
    return (dev.group(1) if dev else None), (via.group(1) if via else None)


def is_local_bridge(device, sys_class_net="/sys/class/net"):
    if os.path.isdir(os.path.join(sys_class_net, device, "bridge")):
        return True
    return device.startswith(LOCAL_INTERFACE_PREFIXES)


def route_verdict(target, route_output, default_output, bridge_check=is_local_bridge):
    """None when the route to `target` is local to this machine; else the reason to refuse."""
    device, gateway = parse_route(route_output)
    default_device, _ = parse_route(default_output)
    if device is None:
        return f"no route to {target}"
    if gateway:
        return f"the route to {target} goes through the gateway {gateway} (dev {device})"
    if device == default_device:
        return f"the route to {target} uses {device}, the default route's interface"
    if not bridge_check(device):
        return f"the route to {target} uses {device}, which is not a local bridge or host-only interface"
    return None


def ensure_local_route(target, lab_network):
    """Refuse (LabError) unless `target` is in the lab's network and routed to a local bridge."""
    if ipaddress.ip_address(target) not in lab_network:
        raise LabError(f"refusing to send traffic to {target}: not in the lab's network {lab_network}")
    route = subprocess.run(["ip", "route", "get", target], capture_output=True, text=True).stdout
    default = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True).stdout
    reason = route_verdict(target, route, default)
    if reason:
        raise LabError(f"refusing to send traffic: {reason}",
                       "boot the lab on this machine first (`invoke up`); test traffic only ever "
                       "goes to the lab's own bridge")
    return parse_route(route)[0]
