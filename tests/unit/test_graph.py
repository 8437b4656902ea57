"""The topology drawn from the lab model: SVG and Mermaid."""
import dataclasses
import re
import xml.etree.ElementTree as ET

import pytest

from fabfile.core.lab import DEFAULT_LAB_FILE, Host, parse_lab
from fabfile.roles import ROLES

APP_PORT = ROLES["app"].defaults["app_port"]
DB_PORT = ROLES["db"].defaults["db_port"]
LOADBALANCER = ROLES["loadbalancer"].defaults
from fabfile.views.graph import mermaid, svg

SVG_NS = "{http://www.w3.org/2000/svg}"

SCALED_LAB = """
name: scaled
network: 192.168.60.0/24
vip: 192.168.60.10
hosts:
  lb1:  {role: loadbalancer, ip: 192.168.60.11}
  lb2:  {role: loadbalancer, ip: 192.168.60.12}
  web1: {role: web, ip: 192.168.60.21}
  web2: {role: web, ip: 192.168.60.22}
  app1: {role: app, ip: 192.168.60.31}
  app2: {role: app, ip: 192.168.60.32}
  db-main: {role: db, ip: 192.168.60.41}
"""


@pytest.fixture(scope="module")
def lab():
    return parse_lab(DEFAULT_LAB_FILE.read_text(), DEFAULT_LAB_FILE)


@pytest.fixture(scope="module")
def scaled():
    return parse_lab(SCALED_LAB)


def parsed(text):
    return ET.fromstring(text)


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]


def hosts_drawn(root):
    return {g.get("data-host"): g for g in root.iter(f"{SVG_NS}g") if g.get("data-host")}


def box_of(group):
    rect = group.find(f"{SVG_NS}rect")
    return float(rect.get("x")), float(rect.get("y")), float(rect.get("width")), float(rect.get("height"))


def test_the_svg_parses_as_xml_with_a_viewbox(lab):
    root = parsed(svg(lab))
    assert root.tag == f"{SVG_NS}svg"
    _, _, width, height = map(float, root.get("viewBox").split())
    assert width >= 500 and height >= 600


def test_every_host_and_the_vip_are_written_out(lab):
    root = parsed(svg(lab))
    shown = texts(root)
    for host in lab.hosts:
        assert host.name in shown
        assert host.ip in shown
    assert f"VIP {lab.vip}" in shown
    assert f"gateway {lab.gateway}" in shown
    [vip] = [g for g in root.iter(f"{SVG_NS}g") if g.get("data-vip")]
    assert vip.get("data-vip") == lab.vip


def test_every_host_has_a_box_with_its_name(lab):
    drawn = hosts_drawn(parsed(svg(lab)))
    assert set(drawn) == set(lab.host_names)
    for name, group in drawn.items():
        assert name in texts(group)


def test_tiers_go_top_to_bottom(lab):
    drawn = hosts_drawn(parsed(svg(lab)))
    top = {name: box_of(group)[1] for name, group in drawn.items()}
    assert top["lb1"] == top["lb2"] < top["web1"] < top["app1"] < top["db1"]


def test_arrows_carry_the_ports_from_settings(lab):
    shown = texts(parsed(svg(lab)))
    for label in ("HTTPS :443", "HTTP :80", f"HTTP :{APP_PORT}", f"MySQL :{DB_PORT}", f"stats :{LOADBALANCER['stats_port']}"):
        assert label in shown
    assert "VRRP" in shown and "IP protocol 112" in shown


def test_a_scaled_tier_is_a_wider_row(lab, scaled):
    small, large = parsed(svg(lab)), parsed(svg(scaled))
    drawn = hosts_drawn(large)
    assert {"web2", "app2", "db-main"} <= set(drawn)
    assert box_of(drawn["web1"])[1] == box_of(drawn["web2"])[1]
    assert box_of(drawn["web1"])[0] + box_of(drawn["web1"])[2] <= box_of(drawn["web2"])[0]
    assert float(large.get("width")) >= float(small.get("width"))


def test_boxes_never_overlap(scaled):
    boxes = [box_of(g) for g in hosts_drawn(parsed(svg(scaled))).values()]
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1:]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_an_unknown_role_becomes_a_tier_of_its_own_at_the_bottom(lab):
    with_monitor = dataclasses.replace(lab, hosts=lab.hosts + (Host("mon1", "monitor", "192.168.56.51"),))
    drawn = hosts_drawn(parsed(svg(with_monitor)))
    assert box_of(drawn["mon1"])[1] > box_of(drawn["db1"])[1]
    assert "monitor" in texts(parsed(svg(with_monitor)))
    assert "n_mon1" in mermaid(with_monitor)


def test_live_data_marks_the_holder_the_services_down_and_the_backends(scaled):
    live = {"vip_holder": "lb2", "services": {"web2": {"nginx": "down"}, "lb2": {"haproxy": "up"}},
            "backends": {"web1": "UP", "web2": "DOWN"}}
    root = parsed(svg(scaled, live))
    drawn = hosts_drawn(root)
    assert "vip-holder" in drawn["lb2"].get("class") and "vip-holder" not in drawn["lb1"].get("class")
    assert "state-down" in drawn["web2"].get("class")
    assert "nginx down" in texts(drawn["web2"])
    backends = {g.get("data-backend"): "".join(g.itertext()) for g in root.iter(f"{SVG_NS}g") if g.get("data-backend")}
    assert "UP" in backends["web1"] and "DOWN" in backends["web2"]
    [vip] = [g for g in root.iter(f"{SVG_NS}g") if g.get("data-vip")]
    vip_x, _, vip_width, _ = box_of(vip)
    lb2_x, _, lb2_width, _ = box_of(drawn["lb2"])
    assert vip_x + vip_width / 2 == pytest.approx(lb2_x + lb2_width / 2, abs=0.2)


@pytest.mark.parametrize("live", [{}, {"vip_holder": None}, {"services": {"ghost": {"x": "down"}}},
                                  {"services": {"web1": "not a dict"}, "backends": None},
                                  {"backends": {"web1": "MAINT"}}, {"vip_holder": "nobody-we-know"}])
def test_partial_or_odd_live_data_still_draws(scaled, live):
    root = parsed(svg(scaled, live))
    assert set(hosts_drawn(root)) == set(scaled.host_names)
    mermaid(scaled, live)


def test_nobody_holding_the_vip_is_said(scaled):
    assert "nobody holds the VIP" in texts(parsed(svg(scaled, {"vip_holder": None})))


def test_the_svg_references_nothing_outside_itself(scaled):
    text = svg(scaled, {"vip_holder": "lb1"})
    assert not re.search(r"""(?:src|href)\s*=|url\(|<script""", text, re.I)
    assert re.findall(r"https?://[^\"'\s]*", text) == ["http://www.w3.org/2000/svg"]  # the namespace, never fetched


def test_names_are_escaped(lab):
    odd = dataclasses.replace(lab, hosts=lab.hosts + (Host('x"><y', "<monitor>&", "192.168.56.51"),))
    root = parsed(svg(odd))
    assert 'x"><y' in hosts_drawn(root)
    assert "<monitor>&" in texts(root)


def test_mermaid_is_a_top_down_flowchart_with_every_host(lab):
    text = mermaid(lab)
    assert text.splitlines()[0] == "flowchart TB"
    for host in lab.hosts:
        assert re.search(rf'\bn_{host.name}\["{host.name}<br/>', text)
    assert lab.vip in text


def test_mermaid_subgraphs_are_balanced(scaled):
    lines = [line.strip() for line in mermaid(scaled).splitlines()]
    depth = 0
    for line in lines:
        depth += line.startswith("subgraph ") - (line == "end")
        assert depth in (0, 1)
    assert depth == 0
    assert sum(line.startswith("subgraph ") for line in lines) == 4


def test_mermaid_ids_are_safe_and_edges_carry_ports(scaled):
    text = mermaid(scaled)
    assert "n_db_main[" in text and "n_db-main" not in text
    assert f'-->|"HTTP :{APP_PORT}"|' in text and f'-->|"MySQL :{DB_PORT}"| n_db_main' in text
    assert 'n_lb1 <-.->|"VRRP, IP protocol 112"| n_lb2' in text
    node_ids = re.findall(r"^\s+(\w+)[\[({]", text, re.M)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) for i in node_ids)


def test_mermaid_marks_live_state(scaled):
    text = mermaid(scaled, {"vip_holder": "lb1", "services": {"web2": {"nginx": "down"}},
                            "backends": {"web2": "DOWN"}})
    assert 'vip ==>|"held by lb1"| n_lb1' in text
    assert "class n_web2 down" in text
    assert '-->|"HTTP :80 DOWN"| n_web2' in text


def test_mermaid_labels_cannot_break_out_of_their_quotes(lab):
    odd = dataclasses.replace(lab, hosts=lab.hosts + (Host("mon1", 'say "hi"', "192.168.56.51"),))
    line = next(line for line in mermaid(odd).splitlines() if "n_mon1[" in line)
    assert line.count('"') == 2 and "say 'hi'" in line
