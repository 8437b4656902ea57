"""Every host's firewall: an nftables table made from the roles' Inbound records (what each
role serves, to whom) and SSH from the lab's host and the lab's hosts. Everything else
coming in is refused.

A new ruleset is checked with `nft -c`, loaded in one transaction, and kept only when a
new SSH connection still gets in: before it loads, a transient systemd timer on the guest
is armed to put the previous table back after ROLLBACK_AFTER_S seconds, and the new
connection disarms it. A ruleset that cuts SSH therefore undoes itself, and provision
fails saying so. The confirmed ruleset is written to RULESET and loaded at every boot."""
import hashlib
import ipaddress
from dataclasses import dataclass

from ..converge.steps import Action, Change, File, Packages, Service
from ..core.errors import LabError
from ..remote import facts as F
from ..remote.connection import scaled
from . import exporters
from .base import Check, Inbound

TABLE = "inet halab"
RULESET = "/etc/halab/firewall.nft"
CANDIDATE = f"{RULESET}.halab-new"
UNIT = "/etc/systemd/system/halab-firewall.service"
PREVIOUS = "/var/lib/halab/firewall.previous.nft"  # the table as it was before the last load
LOADED = "/var/lib/halab/firewall.loaded"          # hash of the table as provision confirmed it
PENDING = "/run/halab-firewall.pending"            # hash of the table just loaded, unconfirmed
ROLLED_BACK = "/run/halab-firewall.rolled-back"    # the rollback fired
ROLLBACK = "halab-firewall-rollback"               # the transient timer and service
ROLLBACK_AFTER_S = 6       # a new SSH connection takes well under a second on a LAN
CONFIRM_CONNECT_TIMEOUT_S = 3
SSH_PORT = 22

UNIT_TEXT = f"""# Written by halab: loads the lab's firewall ({RULESET}) before the network comes up.
[Unit]
Description=The lab's firewall (nftables table {TABLE})
Wants=network-pre.target
Before=network-pre.target shutdown.target
Conflicts=shutdown.target
DefaultDependencies=no

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {RULESET}
ExecReload=/usr/sbin/nft -f {RULESET}
ExecStop=/usr/sbin/nft delete table {TABLE}

[Install]
WantedBy=sysinit.target
"""

LISTING_HASH = f"nft list table {TABLE} 2>/dev/null | sha256sum | cut -c1-64"
# What the kernel runs against what provision last confirmed: (recorded, now).
KERNEL_TABLE = F.Fact("firewall:loaded", f"r=$(cat {LOADED} 2>/dev/null); echo \"${{r:-none}}\"; {LISTING_HASH}",
                      F.parse_words)


def inbound_ssh(lab, host, ssh_source):
    """SSH from the lab's host (on the private network, and where Vagrant's SSH comes
    from) and from the other lab hosts."""
    sources = [lab.gateway] + ([ssh_source] if ssh_source and ssh_source != lab.gateway else [])
    sources += [h.ip for h in lab.hosts if h != host]
    return Inbound("SSH", "tcp", SSH_PORT, tuple(sources))


def host_inbound(lab, host, ssh_source=""):
    """Every Inbound of `host`: SSH, its role's, then its exporters' (from the monitoring
    server alone, when the lab has one)."""
    from . import role_of
    from .monitor import settings_of
    role = role_of(host)
    return [inbound_ssh(lab, host, ssh_source), *role.inbound(lab, host, role.settings(lab)),
            *exporters.inbound(lab, host, settings_of(lab))]


def source_names(lab, sources, ssh_source=""):
    """The sources as a student reads them: host names, the VIP, the lab's host."""
    if not sources:
        return "anywhere"
    names = {h.ip: h.name for h in lab.hosts}
    names.update({lab.vip: "the VIP", lab.gateway: "the lab's host"})
    if ssh_source and ssh_source != lab.gateway:
        names[ssh_source] = f"the lab's host via Vagrant's SSH ({ssh_source})"
    return ", ".join(names.get(s, s) for s in sources)


@dataclass(frozen=True)
class Rule:
    comment: str
    match: str
    service: str


def rules(lab, inbounds, ssh_source=""):
    """The template's accept rules, one per Inbound and address family."""
    found = []
    for inbound in inbounds:
        what = "VRRP (IP protocol 112)" if inbound.proto == "vrrp" else \
            f"{inbound.service} ({inbound.port}/{inbound.proto})"
        if inbound.proto == "vrrp":
            service_match = "ip protocol vrrp"
        elif inbound.proto in ("tcp", "udp"):
            service_match = f"{inbound.proto} dport {inbound.port}"
        else:
            raise LabError(f"Inbound {inbound.service}: unknown protocol {inbound.proto!r}", "use tcp, udp or vrrp")
        comment = f"{inbound.service if inbound.proto == 'vrrp' else what} from {source_names(lab, inbound.sources, ssh_source)}"
        if not inbound.sources:
            found.append(Rule(comment, service_match, inbound.service))
            continue
        by_family = {4: [], 6: []}
        for source in inbound.sources:
            by_family[ipaddress.ip_network(source, strict=False).version].append(source)
        for version, sources in by_family.items():
            if sources:
                family = "ip" if version == 4 else "ip6"
                listed = sources[0] if len(sources) == 1 else "{ " + ", ".join(sources) + " }"
                found.append(Rule(comment, f"{family} saddr {listed} {service_match}", inbound.service))
    return found


def render_ruleset(ctx, ssh_source):
    from ..converge.templates import render
    return render("common/firewall.nft.j2",
                  ctx.template_context(rules=rules(ctx.lab, host_inbound(ctx.lab, ctx.host, ssh_source), ssh_source)))


def load_actions(content, persist=True):
    """Write the candidate, check it, arm the rollback, load it, then confirm over a new
    SSH connection (which disarms the rollback) and, with `persist`, keep it for boot."""
    stop = f"systemctl stop {ROLLBACK}.timer {ROLLBACK}.service 2>/dev/null"
    rollback_s = round(scaled(ROLLBACK_AFTER_S))  # a starved TCG guest can take seconds to let SSH in
    arm_and_load = (
        f"set -e; {stop} || true; systemctl reset-failed {ROLLBACK}.timer {ROLLBACK}.service 2>/dev/null || true; "
        f"rm -f {ROLLED_BACK} {PENDING}; mkdir -p /var/lib/halab; "
        f"{{ printf 'table {TABLE}\\ndelete table {TABLE}\\n'; nft list table {TABLE} 2>/dev/null || true; }} > {PREVIOUS}; "
        f"systemd-run --quiet --unit={ROLLBACK} --on-active={rollback_s} --timer-property=AccuracySec=100ms "
        f"/bin/sh -c 'nft -f {PREVIOUS} && touch {ROLLED_BACK}'; "
        f"nft -f {CANDIDATE} || {{ {stop}; exit 1; }}; "
        f"{LISTING_HASH} > {PENDING}")
    keep = f"mv -f {CANDIDATE} {RULESET} && cp {PENDING} {LOADED} && " if persist else f"rm -f {CANDIDATE} && "
    confirm = (
        f"{stop}; "
        f"if [ -e {ROLLED_BACK} ] || [ \"$({LISTING_HASH})\" != \"$(cat {PENDING})\" ]; then "
        f"echo 'the confirmation came too late: the previous ruleset is back' >&2; exit 3; fi; "
        f"{keep}rm -f {PENDING} && echo confirmed")
    verdict = (f"rm -f {CANDIDATE}; if [ -e {ROLLED_BACK} ]; then echo 'rolled back to the previous one by itself'; "
               f"else echo 'NOT rolled back: see `invoke console`'; fi")
    return (
        Action(f"install -m 644 -o root -g root /dev/null {CANDIDATE} && cat > {CANDIDATE}",
               shown=f"write {CANDIDATE}", stdin=content.encode()),
        Action(f"nft -c -f {CANDIDATE}", cleanup=f"rm -f {CANDIDATE}",
               failure=f"the ruleset is invalid; the firewall was left as it was.\n`nft -c -f {CANDIDATE}` said:"),
        Action(arm_and_load, shown=f"arm the rollback ({rollback_s} s), nft -f {CANDIDATE}", timeout=30),
        Action(confirm, shown="confirm over a new SSH connection", timeout=10, fresh_connection=True,
               settle=rollback_s + 1.5, diagnose=verdict,
               failure="the new ruleset cut SSH (a new SSH connection could not get in and confirm it);"),
    )


@dataclass
class Ruleset(File):
    """The host's firewall table as wanted: in RULESET and in the kernel. Hand edits of
    either (a rule added by hand, the table deleted) are noticed and undone. Loaded with
    load_actions, never simply written."""

    @property
    def name(self):
        return "firewall ruleset"

    def facts(self):
        return [F.file(self.path), KERNEL_TABLE]

    def plan(self, facts, changed_paths):
        content = self.wanted(facts)
        digest = hashlib.sha256(content.encode()).hexdigest()
        have = F.value(facts, F.file(self.path))
        kernel = F.value(facts, KERNEL_TABLE, ())
        file_ok = bool(have) and have.matches("644", "root", "root", digest)
        kernel_ok = len(kernel) == 2 and kernel[0] == kernel[1]
        if file_ok and kernel_ok:
            return None
        if not have:
            detail = "loaded"
        elif not file_ok:
            detail = "changed, loaded"
        else:
            detail = "the loaded table differs from the lab's (changed by hand?): loaded again"
        return Change(self.name, detail, load_actions(content), path=RULESET, content=content)


def steps(ctx):
    """The firewall's steps; ctx.ssh_source is let in besides the lab's host and hosts
    (provision refuses to run without it: the firewall would shut Vagrant's SSH out)."""
    return [
        Packages(("nftables",)),
        Ruleset(RULESET, render_ruleset(ctx, ctx.ssh_source)),
        File(UNIT, UNIT_TEXT),
        Service("halab-firewall", restart_on=(UNIT,), can_reload=False),
    ]


def check_facts():
    return [KERNEL_TABLE, F.service("halab-firewall")]


def checks(host, facts):
    """The firewall's unit active and enabled, and its table in the kernel as provision
    loaded and confirmed it (a rule added or a table deleted by hand shows here)."""
    state = F.value(facts, F.service("halab-firewall"))
    kernel = F.value(facts, KERNEL_TABLE, ())
    if len(kernel) != 2 or kernel[0] == "none":
        loaded, detail = False, "never loaded by provision: `invoke provision` loads it"
    elif kernel[0] != kernel[1]:
        loaded, detail = False, (f"table {TABLE} differs from what provision loaded (changed by hand?): "
                                 "`invoke provision` loads it again")
    else:
        loaded, detail = True, f"table {TABLE} as provision loaded it"
    return [Check("halab-firewall active and enabled", host.name, state.running and state.is_enabled,
                  f"{state.active}, {state.enabled}"),
            Check("firewall loaded as provisioned", host.name, loaded, detail)]
