"""The lab's topology, drawn from the lab model: an SVG for a browser and Mermaid text for
Markdown. Pure: the lab (and, optionally, what was observed of it) in, text out.

`live` is what a status check saw, every part optional:
    {"vip_holder": "lb1" or None, "services": {host: {service: "up" | "down"}},
     "backends": {"web1": "UP", ...}}
"""
import re
from dataclasses import dataclass, field

from ..core.lab import Lab  # the one place this module names the lab model
from ..roles import ROLES
from ..roles.web import port_of
from .templating import render

VRRP_PROTOCOL = 112
KNOWN_TIERS = ("loadbalancer", "web", "app", "db")
TIER_TITLES = {"loadbalancer": "load balancers", "web": "web (Nginx)", "app": "app (Gunicorn)",
               "db": "database (MariaDB)"}
# Who talks to which tier, and on which port
def tier_links(lab):
    """(from role, to role, label) of each tier's calls, with the ports the roles use."""
    app_port = ROLES["app"].settings(lab)["app_port"]
    db_port = ROLES["db"].settings(lab)["db_port"]
    web_port = port_of(ROLES["web"].settings(lab))
    to_web = f"{'HTTPS' if lab.tls == 'reencrypt' else 'HTTP'} :{web_port}"
    return (("loadbalancer", "web", to_web), ("web", "app", f"HTTP :{app_port}"),
            ("app", "db", f"MySQL :{db_port}"))

BOX_WIDTH = 176
BOX_GAP = 40
BALANCER_GAP = 150          # room for the VRRP link's label between the two balancers
LINE_HEIGHT = 16
TIER_LABEL_WIDTH = 150      # the left column naming each tier
MARGIN = 28
MIN_CONTENT_WIDTH = 560
TIER_SPACING = 100          # between one row's bottom and the next row's top: arrows and labels
VIP_HEIGHT = 36
VIP_WIDTH = 200
YOU_WIDTH = 220
YOU_HEIGHT = 56
LEGEND_HEIGHT = 70          # below the drawing, only with live data


@dataclass
class Box:
    name: str
    lines: list
    x: float = 0
    y: float = 0
    width: float = BOX_WIDTH
    height: float = 0
    css: list = field(default_factory=list)

    @property
    def centre(self):
        return self.x + self.width / 2

    @property
    def bottom(self):
        return self.y + self.height


# --- what the live data says ---------------------------------------------------------------

class Live:
    """Partial live data made safe to ask: unknown parts answer None."""

    def __init__(self, live):
        live = live if isinstance(live, dict) else {}
        self.given = bool(live)
        self.knows_holder = "vip_holder" in live
        self.vip_holder = live.get("vip_holder")
        self.services = live.get("services") if isinstance(live.get("services"), dict) else {}
        self.backends = live.get("backends") if isinstance(live.get("backends"), dict) else {}

    def host_state(self, name):
        """'down', 'degraded', 'up', or None when nothing was reported."""
        services = self.services.get(name)
        if not isinstance(services, dict) or not services:
            return None
        states = [str(s).lower() for s in services.values()]
        if "down" in states:
            return "down"
        return "up" if all(s == "up" for s in states) else "degraded"

    def services_not_up(self, name):
        """['nginx down', 'halab-app activating'] for the host's services not up."""
        services = self.services.get(name)
        if not isinstance(services, dict):
            return []
        return [f"{service} {state}" for service, state in services.items() if str(state).lower() != "up"]

    def backend(self, name):
        state = self.backends.get(name)
        return None if state is None else str(state)


def backend_css(state):
    upper = state.upper()
    return "backend-up" if upper == "UP" else "backend-down" if upper.startswith("DOWN") else "backend-other"


# --- layout --------------------------------------------------------------------------------

def tiers(lab):
    """[(role, [hosts])] top to bottom: the known tiers first, then any other role."""
    roles = [r for r in KNOWN_TIERS if lab.with_role(r)]
    roles += sorted({h.role for h in lab.hosts} - set(KNOWN_TIERS))
    return [(role, lab.with_role(role)) for role in roles]


def host_lines(host, live, stats_port):
    lines = [(host.name, "name"), (host.role, "role"), (host.ip, "ip")]
    if host.role == "loadbalancer":
        lines.append((f"stats :{stats_port}", "detail"))
    if live.vip_holder == host.name:
        lines.append(("holds the VIP", "holder"))
    not_up = live.services_not_up(host.name)
    if not_up:
        lines.append((", ".join(not_up), "problem"))
    return lines


def host_css(host, live):
    css = ["host", f"role-{re.sub(r'[^a-z0-9-]', '', host.role)}"]
    state = live.host_state(host.name)
    if state:
        css.append(f"state-{state}")
    if live.vip_holder == host.name:
        css.append("vip-holder")
    return css


def row_width(count, gap):
    return count * BOX_WIDTH + max(count - 1, 0) * gap


def layout(lab, live):
    """Where everything goes: `you` on top, the VIP, then one centred row per tier."""
    stats_port = ROLES["loadbalancer"].settings(lab)["stats_port"]
    boxes = {role: [Box(h.name, host_lines(h, live, stats_port), css=host_css(h, live)) for h in hosts]
             for role, hosts in tiers(lab)}
    gaps = {role: BALANCER_GAP if role == "loadbalancer" else BOX_GAP for role in boxes}
    content = max([MIN_CONTENT_WIDTH] + [row_width(len(row), gaps[role]) for role, row in boxes.items()])
    left = MARGIN + TIER_LABEL_WIDTH

    you = Box("you", [("you (host machine)", "name"), (f"gateway {lab.gateway}", "ip")],
              x=left + (content - YOU_WIDTH) / 2, y=MARGIN, width=YOU_WIDTH, height=YOU_HEIGHT, css=["you"])
    vip_y = you.bottom + TIER_SPACING * 0.8
    labels = [("host", you.y + you.height / 2), ("virtual IP", vip_y + VIP_HEIGHT / 2)]
    bottom = place_rows(boxes, gaps, left, content, vip_y + VIP_HEIGHT + TIER_SPACING * 0.8, labels)

    holder = next((b for b in boxes.get("loadbalancer", []) if b.name == live.vip_holder), None)
    vip_centre = holder.centre if holder else you.centre
    vip = {"x": vip_centre - VIP_WIDTH / 2, "y": vip_y, "width": VIP_WIDTH, "height": VIP_HEIGHT,
           "centre": vip_centre, "address": lab.vip, "label": f"VIP {lab.vip}"}
    return {"width": round(left + content + MARGIN),
            "height": round(bottom + MARGIN + (LEGEND_HEIGHT if live.given else 0)),
            "you": you, "vip": vip, "entry": entry_label(lab), "rows": boxes, "left": left,
            "tier_labels": [{"text": text, "y": round(y, 1), "x": MARGIN} for text, y in labels]}


def place_rows(boxes, gaps, left, content, top, labels):
    """Give every box its place, one centred row per tier from `top` down; append each
    tier's label to `labels`; return the bottom of the last row."""
    box_height = 14 + LINE_HEIGHT * max(len(b.lines) for row in boxes.values() for b in row)
    y = top
    for role, row in boxes.items():
        x = left + (content - row_width(len(row), gaps[role])) / 2
        for box in row:
            box.x, box.y, box.height = x, y, box_height
            x += BOX_WIDTH + gaps[role]
        labels.append((TIER_TITLES.get(role, role), y + box_height / 2))
        y += box_height + TIER_SPACING
    return y - TIER_SPACING


# --- edges ---------------------------------------------------------------------------------

def arrow_head(x, y, dx, dy, size=8):
    """A triangle pointing along (dx, dy) with its tip at (x, y)."""
    length = (dx * dx + dy * dy) ** 0.5 or 1
    ux, uy = dx / length, dy / length
    back_x, back_y = x - ux * size, y - uy * size
    px, py = -uy * size / 2, ux * size / 2
    return " ".join(f"{px_:.1f},{py_:.1f}" for px_, py_ in
                    ((x, y), (back_x + px, back_y + py), (back_x - px, back_y - py)))


def straight_arrow(x1, y1, x2, y2, css, head_css="head"):
    return {"x1": round(x1, 1), "y1": round(y1, 1), "x2": round(x2, 1), "y2": round(y2, 1), "css": css,
            "head": arrow_head(x2, y2, x2 - x1, y2 - y1), "head_css": head_css}


def entry_label(lab):
    """What you speak to the VIP: HTTPS on the balancers' port (HTTP :80 only redirects)."""
    return f"HTTPS :{ROLES['loadbalancer'].settings(lab)['https_port']}"


def entry_links(drawing, live):
    """You -> VIP over HTTPS, and VIP -> the balancer(s) that may hold it."""
    you, vip = drawing["you"], drawing["vip"]
    links = [straight_arrow(you.centre, you.bottom, vip["centre"], vip["y"], "traffic")]
    labels = [{"x": (you.centre + vip["centre"]) / 2, "y": (you.bottom + vip["y"]) / 2,
               "text": drawing["entry"], "css": "port", "anchor": "middle"}]
    balancers = drawing["rows"].get("loadbalancer", [])
    for box in balancers:
        holds = live.vip_holder == box.name
        state = "holder" if holds else "idle" if live.knows_holder else "maybe"
        links.append(straight_arrow(vip["centre"], vip["y"] + vip["height"], box.centre, box.y,
                                    f"vip-link {state}", f"vip-head {state}"))
    beside_vip = {"x": vip["x"] + vip["width"] + 14, "y": vip["y"] + vip["height"] / 2, "anchor": "start"}
    if live.knows_holder and live.vip_holder is None:
        labels.append(dict(beside_vip, text="nobody holds the VIP", css="warning"))
    elif not live.knows_holder and balancers:
        labels.append(dict(beside_vip, text="held by one balancer (VRRP)", css="note"))
    return links, labels


def bus_links(sources, targets, text, live, show_backends):
    """Every source to every target: stubs down to a shared bus, then one arrow per target."""
    top = max(b.bottom for b in sources)
    bottom = min(b.y for b in targets)
    bus_y = top + 34
    xs = [b.centre for b in sources + targets]
    lines = [{"x1": round(b.centre, 1), "y1": round(b.bottom, 1), "x2": round(b.centre, 1), "y2": bus_y}
             for b in sources]
    lines.append({"x1": round(min(xs), 1), "y1": bus_y, "x2": round(max(xs), 1), "y2": bus_y})
    arrows = [straight_arrow(b.centre, bus_y, b.centre, bottom, "traffic") for b in targets]
    label_x = (min(xs) + max(xs)) / 2
    labels = [{"x": round(label_x, 1), "y": bus_y, "text": text, "css": "port", "anchor": "middle"}]
    badges = []
    if show_backends:
        for box in targets:
            state = live.backend(box.name)
            if state is not None:
                badges.append({"x": round(box.centre, 1), "y": round(bus_y + (bottom - bus_y) / 2, 1),
                               "text": state, "css": backend_css(state), "host": box.name})
    return {"lines": lines, "arrows": arrows, "labels": labels, "badges": badges}


def vrrp_links(balancers):
    links = []
    for left, right in zip(balancers, balancers[1:]):
        y = round(left.y + left.height / 2, 1)
        x1, x2 = left.x + left.width, right.x
        links.append({"x1": round(x1, 1), "x2": round(x2, 1), "y": y, "mid": round((x1 + x2) / 2, 1),
                      "text": "VRRP", "detail": f"IP protocol {VRRP_PROTOCOL}"})
    return links


# --- SVG -----------------------------------------------------------------------------------

def svg(lab: Lab, live=None) -> str:
    """The lab as a standalone SVG document (it also works inline in HTML)."""
    live = Live(live)
    drawing = layout(lab, live)
    entry, entry_labels = entry_links(drawing, live)
    rows = drawing["rows"]
    buses = [bus_links(rows[a], rows[b], text, live, show_backends=(a == "loadbalancer"))
             for a, b, text in tier_links(lab) if rows.get(a) and rows.get(b)]
    title = f"Topology of lab {lab.name}: {len(lab.hosts)} hosts behind the virtual IP {lab.vip}"
    return render("topology.svg.j2", title=title, drawing=drawing, entry=entry, entry_labels=entry_labels,
                  buses=buses, vrrp=vrrp_links(rows.get("loadbalancer", [])), live=live,
                  legend_y=drawing["height"] - MARGIN - LEGEND_HEIGHT + 30)


# --- Mermaid -------------------------------------------------------------------------------

def mermaid_id(name, taken):
    """A node id Mermaid accepts: letters, digits and underscores, never a keyword like `end`."""
    base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
    node_id, suffix = base, 2
    while node_id in taken:
        node_id, suffix = f"{base}_{suffix}", suffix + 1
    taken.add(node_id)
    return node_id


def mermaid_text(text):
    """Text safe inside a quoted Mermaid label. Mermaid 11 shows its own entity codes (#quot;)
    undecoded and treats < > as HTML, so the few characters that could break out are swapped for
    look-alikes; lab.yml's validated names never contain them anyway."""
    return text.translate(str.maketrans({'"': "'", "<": "‹", ">": "›"}))


def mermaid(lab: Lab, live=None) -> str:
    """The lab as a Mermaid flowchart, top to bottom, one subgraph per tier."""
    live = Live(live)
    stats_port = ROLES["loadbalancer"].settings(lab)["stats_port"]
    taken = {"you", "vip"}
    ids = {h.name: mermaid_id(h.name, taken) for h in lab.hosts}
    lines = ["flowchart TB",
             f'    you(["you (host machine)<br/>{mermaid_text(lab.gateway)}"])',
             f'    vip{{{{"VIP<br/>{mermaid_text(lab.vip)}"}}}}']
    for role, hosts in tiers(lab):
        tier_id = "tier_" + re.sub(r"[^A-Za-z0-9_]", "_", role)
        lines.append(f'    subgraph {tier_id}["{mermaid_text(TIER_TITLES.get(role, role))}"]')
        lines.append("        direction LR")
        for host in hosts:
            label = "<br/>".join(mermaid_text(text) for text, _ in host_lines(host, live, stats_port))
            lines.append(f'        {ids[host.name]}["{label}"]')
        lines.append("    end")

    lines.append(f'    you -->|"{entry_label(lab)}"| vip')
    balancers = lab.with_role("loadbalancer")
    for box in balancers:
        if live.vip_holder == box.name:
            lines.append(f'    vip ==>|"held by {mermaid_text(box.name)}"| {ids[box.name]}')
        else:
            lines.append(f"    vip -.-> {ids[box.name]}")
    for left, right in zip(balancers, balancers[1:]):
        lines.append(f'    {ids[left.name]} <-.->|"VRRP, IP protocol {VRRP_PROTOCOL}"| {ids[right.name]}')
    for source_role, target_role, text in tier_links(lab):
        # only the first source's edges carry labels: the same port on every edge is noise
        for index, source in enumerate(lab.with_role(source_role)):
            for target in lab.with_role(target_role):
                state = live.backend(target.name) if source_role == "loadbalancer" else None
                label = f"{text} {state}" if state else text
                arrow = f'-->|"{mermaid_text(label)}"|' if index == 0 else "-->"
                lines.append(f"    {ids[source.name]} {arrow} {ids[target.name]}")
    lines += mermaid_styles(lab, live, ids)
    return "\n".join(lines) + "\n"


def mermaid_styles(lab, live, ids):
    if not live.given:
        return []
    lines = ["    classDef down fill:#fee2e2,stroke:#dc2626,stroke-width:2px",
             "    classDef degraded fill:#fef3c7,stroke:#d97706,stroke-width:2px",
             "    classDef holder stroke:#1d4ed8,stroke-width:3px"]
    for host in lab.hosts:
        state = live.host_state(host.name)
        if state in ("down", "degraded"):
            lines.append(f"    class {ids[host.name]} {state}")
        if live.vip_holder == host.name:
            lines.append(f"    class {ids[host.name]} holder")
    return lines
