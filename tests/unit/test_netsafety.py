"""The route check that guards every client loop."""
import ipaddress

import pytest

from fabfile.core.errors import LabError
from fabfile.checks.netsafety import ensure_local_route, route_verdict

DEFAULT = "default via 192.0.2.1 dev eth0 \n"


def bridges(*names):
    return lambda device: device in names


def test_route_through_the_labs_bridge_is_allowed():
    route = "192.168.56.10 dev br-halab src 192.168.56.1 uid 0 \n    cache \n"
    assert route_verdict("192.168.56.10", route, DEFAULT, bridges("br-halab")) is None


def test_route_through_a_gateway_is_refused():
    route = "192.168.56.10 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \n"
    assert "gateway 192.0.2.1" in route_verdict("192.168.56.10", route, DEFAULT, bridges("eth0"))


def test_route_on_the_default_interface_is_refused():
    route = "192.168.56.10 dev eth0 src 192.0.2.2 uid 0 \n"
    assert "default route's interface" in route_verdict("192.168.56.10", route, DEFAULT, bridges("eth0"))


def test_route_on_a_non_bridge_interface_is_refused():
    route = "192.168.56.10 dev wlan0 src 10.0.0.2 \n"
    assert "not a local bridge" in route_verdict("192.168.56.10", route, DEFAULT, bridges())


def test_target_outside_the_lab_network_is_refused_before_any_lookup():
    with pytest.raises(LabError, match="not in the lab's network"):
        ensure_local_route("192.0.2.1", ipaddress.ip_network("192.168.56.0/24"))
