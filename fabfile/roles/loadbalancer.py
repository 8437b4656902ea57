"""The load balancers: HAProxy in front of the web tier, keepalived holding the virtual IP
for the pair (VRRP). The first balancer in lab.yml is the preferred MASTER.

How HAProxy is configured: templates/loadbalancer/haproxy.cfg.j2, rendered with the
settings below and lab.yml's web hosts, checked with `haproxy -c` before it replaces the
live file, reloaded when it changed. How it is proven: the checks at the end."""
from ..core.errors import LabError
from ..machines.providers import lab_timer_profile
from ..remote import facts as F
from ..converge.steps import Command, Directory, File, Packages, Service, Template
from . import exporters
from .base import Check, Inbound, Role, register

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
NOTIFY_SCRIPT = "/etc/keepalived/notify.sh"
HAPROXY_DROPIN = "/etc/systemd/system/haproxy.service.d/keepalived.conf"
TRANSITIONS_LOG = "/var/log/keepalived-transitions.log"
TLS_DIR = "/etc/haproxy/tls"
SITE_PEM = f"{TLS_DIR}/site.pem"   # the site's certificate, then its key: HAProxy's `crt`
LAB_CA = f"{TLS_DIR}/ca.crt"        # the lab's CA: HAProxy checks the web servers against it (reencrypt)
HEALTH_URI = "/haproxy-health"      # keepalived's chk_haproxy asks it on plain HTTP
VRRP_METRICS = F.exists(f"{exporters.TEXTFILE_DIR}/keepalived.prom")
# keepalived.conf's lines that say whom it talks to: `unicast_peer {`, the peers' addresses
# alone on their lines, and `vrrp_strict` (which would break unicast).
PEER_LINES = F.config_words(KEEPALIVED_CONF, r"^\s*(unicast_peer|vrrp_strict)|^\s*([0-9]+\.){3}[0-9]+\s*$")

DEFAULTS = {
    # HAProxy
    "stats_port": 8404,           # HAProxy's customary stats port; bound on the private IP only
    "check_inter_ms": 500,        # health-check a web server twice a second...
    "check_fall": 2,              # ...and take it out after 2 failures (~1 s)...
    "check_rise": 2,              # ...and back in after 2 successes: one lucky answer is not enough
    "timeout_connect_ms": 2000,   # a LAN connect takes < 1 ms; 2 s means "that server is gone"
    "timeout_client_ms": 30000,   # idle client (browser keep-alive, slow upload)
    "timeout_server_ms": 30000,   # must cover the slowest app answer (Gunicorn kills at 30 s)
    "timeout_http_request_ms": 10000,  # whole request headers within 10 s (slowloris guard)
    "https_port": 443,            # HTTPS on every address (the VIP moves); :80 only redirects
    "hsts_max_age_s": 31536000,   # Strict-Transport-Security: browsers use HTTPS only, for a year
    # keepalived (VRRP)
    "vrid": 51,                   # virtual router id 1-255, unique per network segment
    "advert_int": 1.0,            # VRRP adverts every second (keepalived's own default): the
                                  # backup declares the master dead after 3 x 1 + skew ~= 3.6 s of
                                  # silence. Only where the provider is unknown: each provider
                                  # has its own, measured, in TIMERS_BY_PROVIDER below
    "priority_master": 150,       # the higher priority wins the election (1-254)...
    "priority_backup": 100,       # ...and the gap leaves room for weights if you add them
    "preempt": True,              # the MASTER takes the VIP back when it recovers
    "garp_master_delay": 1,       # a second burst of gratuitous ARPs 1 s after becoming MASTER
    "garp_master_repeat": 3,      # 3 gratuitous ARPs per burst: one lost packet changes nothing
    "script_interval": 1,         # run chk_haproxy every second (keepalived wants whole seconds)
    "script_fall": 2,             # 2 failed checks in a row -> FAULT: one slow answer is no failure
    "script_rise": 2,             # 2 good checks in a row -> healthy again
    "script_timeout": 1,          # an HAProxy that needs more than 1 s to answer locally is sick
    "process_delay": 0.1,         # HAProxy must stay gone 100 ms before the node goes to FAULT
                                  # (a reload keeps the master process, so it never trips this)
    "haproxy_state_file": "/run/haproxy-state",  # 0 HAProxy runs, 1 it stopped: systemd writes,
                                  # keepalived watches (track_file), no polling delay
    "track_process": True,        # watch HAProxy through the kernel's process events. Turned
                                  # off on container guests (`systemd-detect-virt --container`
                                  # succeeds): the event connector lives only in the host's
                                  # network namespace, and keepalived would stay in FAULT
}

# The VRRP timers of each provider, over DEFAULTS (lab.yml's settings.loadbalancer still
# wins). A faster advert_int detects a silent master sooner (3 x advert_int + skew), but a
# guest that runs late on a busy machine misses adverts and the backup takes the VIP
# while the master is fine: a false failover. Each value is the fastest with no false
# transition in `invoke soak` with both cores busy; README "VRRP timers" has the figures.
TIMERS_BY_PROVIDER = {
    "docker": {"advert_int": 0.5},      # soaked: 0.1 flapped ~1000 times an hour, 0.2 once in
                                        # 10 min, 0.5 held (README "VRRP timers")
    "virtualbox": {"advert_int": 1.0},  # not soaked (no VirtualBox on our machines): a guest
                                        # kernel over a vCPU a loaded host deschedules; margin
    "libvirt": {"advert_int": 1.0},     # under KVM: not soaked (KVM hangs our guests); as VirtualBox
    # Under QEMU's software emulation a guest gets a fraction of a core, and its own work
    # starves keepalived: 0.1 held a 10-minute idle soak, but lb2 took the VIP 8 times in
    # 53 s of a cold provision; 1.0 took it never. HAProxy's health check (a process
    # started per check) runs every 2 s with 10 s to answer, and 3 failures in a row make a
    # FAULT; HAProxy's exit is still seen at once (track_process).
    "libvirt/tcg": {"advert_int": 1.0, "script_interval": 2, "script_timeout": 10, "script_fall": 3},
}
TUNED = sorted({k for chosen in TIMERS_BY_PROVIDER.values() for k in chosen})


def timers(provider):
    """The VRRP timers for `provider` (None: unknown), over DEFAULTS."""
    return {**{k: DEFAULTS[k] for k in TUNED}, **TIMERS_BY_PROVIDER.get(provider, {})}


def balancers(lab):
    return lab.with_role("loadbalancer")


def preferred_master(lab):
    """The balancer that holds the VIP while both are healthy: the first in lab.yml."""
    return balancers(lab)[0]


def peer_of(lab, host):
    return next(h for h in balancers(lab) if h != host)


def pair_facts():
    """What the drills and status read to judge the pair: addresses, services, VRRP state."""
    return [F.addresses(), F.service("haproxy"), F.service("keepalived"), F.vrrp_state(TRANSITIONS_LOG)]


def parse_transition(line):
    """{"at", "host", "state", ...} from a notify.sh line (its words key=value after the time)."""
    at, _, rest = line.strip().partition(" ")
    return {"at": at, **dict(w.split("=", 1) for w in rest.split() if "=" in w)}


def transitions_logged():
    """How many lines keepalived's notify script has logged: a bookmark to count from."""
    return F.Fact(f"lines:{TRANSITIONS_LOG}", f"wc -l < {TRANSITIONS_LOG}",
                  lambda text: int(text.strip() or 0))


def transitions_after(bookmark):
    """The transitions logged after the first `bookmark` lines, as parse_transition dicts."""
    return F.Fact(f"after:{bookmark}:{TRANSITIONS_LOG}", f"tail -n +{int(bookmark) + 1} {TRANSITIONS_LOG}",
                  lambda text: [parse_transition(line) for line in text.splitlines() if line.strip()])


def vip_holders(lab, facts_by_host):
    """The balancers whose addresses include the VIP."""
    return [h.name for h in balancers(lab)
            if h.name in facts_by_host and F.value(facts_by_host[h.name], F.addresses()).holds(lab.vip)]


def pair_health(lab, settings, facts_by_host):
    """(healthy, VIP holders, detail): both balancers' services up, one MASTER and one
    BACKUP, exactly one holding the VIP, and with preempt, the preferred MASTER."""
    holders = vip_holders(lab, facts_by_host)
    states = []
    for host in balancers(lab):
        facts = facts_by_host.get(host.name)
        if facts is None:
            return False, holders, f"{host.name}: not reachable"
        down = [u for u in ("haproxy", "keepalived") if not F.value(facts, F.service(u)).running]
        if down:
            return False, holders, f"{host.name}: {' and '.join(down)} not active"
        states.append(F.value(facts, F.vrrp_state(TRANSITIONS_LOG)))
    if len(holders) != 1 or sorted(states) != ["BACKUP", "MASTER"]:
        return False, holders, f"VIP on {holders or 'nobody'}, states {states}"
    master = preferred_master(lab).name
    if settings["preempt"] and holders != [master]:
        return False, holders, f"VIP on {holders[0]}, waiting for {master} to take it back (preempt)"
    return True, holders, "one MASTER, one BACKUP, VIP on " + holders[0]


class LoadBalancer(Role):
    name = "loadbalancer"
    summary = "HAProxy + keepalived: the virtual IP, HTTPS on :443 (HTTP :80 redirects), stats on the private IP"
    defaults = DEFAULTS
    services = ("haproxy", "keepalived")
    packages = ("haproxy", "keepalived", "curl")

    def settings(self, lab):
        """DEFAULTS, then the timers of the provider the lab runs on, then lab.yml's
        settings.loadbalancer: switching provider changes keepalived.conf and nothing else."""
        configured = lab.settings.get(self.name, {})
        chosen = {k: v for k, v in timers(lab_timer_profile(lab)).items() if k not in configured}
        return {**super().settings(lab), **chosen}

    def listeners(self, host, settings):
        return [("*", 80), ("*", settings["https_port"]), (host.ip, settings["stats_port"])]

    def inbound(self, lab, host, settings):
        return [Inbound("HTTP", "tcp", 80), Inbound("HAProxy (HTTPS)", "tcp", settings["https_port"]),
                Inbound("VRRP adverts of the peer", "vrrp", None, (peer_of(lab, host).ip,)),
                Inbound("HAProxy stats", "tcp", settings["stats_port"], (lab.gateway,))]

    def facts(self, ctx):
        return [F.addresses(), F.container()]

    def steps(self, ctx):
        lab, host, settings = ctx.lab, ctx.host, ctx.settings
        is_master = host == preferred_master(lab)

        def keepalived_context(facts):
            iface = F.value(facts, F.addresses()).interface_of(host.ip)
            if not iface:
                raise LabError(f"no interface carries {host.ip}; is the private network up?", host=host.name)
            # keepalived's process tracking needs the kernel's process-event connector,
            # which a container (its own network namespace) does not have.
            in_container = F.value(facts, F.container())
            return ctx.template_context(
                settings=dict(settings, track_process=settings["track_process"] and not in_container),
                peer=peer_of(lab, host), iface=iface, state="MASTER" if is_master else "BACKUP",
                priority=settings["priority_master"] if is_master else settings["priority_backup"])

        context = ctx.template_context(tls=lab.tls, site=lab.site, site_pem=SITE_PEM, lab_ca=LAB_CA,
                                       health_uri=HEALTH_URI)
        return [
            Packages(self.packages),
            Directory("/etc/systemd/system/haproxy.service.d"),
            Template(HAPROXY_DROPIN, template="loadbalancer/haproxy-keepalived.conf.j2", context=context),
            # The site's key reaches the host on standard input, readable by root alone:
            # HAProxy's master process (root) reads it before its workers drop to `haproxy`.
            Directory(TLS_DIR, "750", group="haproxy"),
            File(SITE_PEM, lambda facts: ctx.secrets["tls"].site_pem, mode="600", secret=True),
            File(LAB_CA, lambda facts: ctx.secrets["tls"].ca_cert),
            Template(HAPROXY_CFG, template="loadbalancer/haproxy.cfg.j2", context=context,
                     validate="haproxy -c -f {path}"),
            Template(NOTIFY_SCRIPT, template="loadbalancer/keepalived-notify.sh.j2",
                     context=ctx.template_context(textfile_dir=exporters.TEXTFILE_DIR),
                     mode="755", validate="sh -n {path}"),
            Template(KEEPALIVED_CONF, template="loadbalancer/keepalived.conf.j2", context=keepalived_context,
                     mode="640", validate="keepalived -t -f {path}"),
            Service("haproxy", reload_on=(HAPROXY_CFG, SITE_PEM, LAB_CA), restart_on=(HAPROXY_DROPIN,)),
            Service("keepalived", reload_on=(KEEPALIVED_CONF, NOTIFY_SCRIPT)),
            # The VRRP state for Prometheus is written at each transition; a balancer
            # provisioned before the metrics existed gets its file from the last state.
            Command("VRRP state metrics", f"{NOTIFY_SCRIPT} --metrics-only",
                    when=lambda facts, changed: not F.value(facts, VRRP_METRICS), needs=(VRRP_METRICS,)),
        ]

    def check_facts(self, lab, host):
        settings = self.settings(lab)
        return [*super().check_facts(lab, host), F.haproxy_backends(host.ip, settings["stats_port"]),
                PEER_LINES, F.vrrp_state(TRANSITIONS_LOG)]

    def checks(self, lab, host, facts):
        checks = super().checks(lab, host, facts)
        peer = peer_of(lab, host)
        words = F.value(facts, PEER_LINES, ())
        peers = {w for w in words if w.count(".") == 3}
        strict = "vrrp_strict" in words
        checks.append(Check("VRRP unicast to the peer", host.name, peers == {peer.ip} and not strict,
                            f"unicast_peer {', '.join(sorted(peers)) or 'missing'}"
                            + ("; vrrp_strict is set" if strict else "")))
        webs = sorted(h.name for h in lab.with_role("web"))
        states = F.value(facts, F.haproxy_backends(host.ip, self.settings(lab)["stats_port"]), {})
        checks.append(Check("HAProxy sees every web backend UP", host.name,
                            all(states.get(w) == "UP" for w in webs),
                            ", ".join(f"{w} {states.get(w, 'absent')}" for w in webs)))
        return checks

    def lab_checks(self, lab, facts_by_host):
        holders = vip_holders(lab, facts_by_host)
        checks = [Check("VIP held by exactly one balancer", ",".join(holders) or "-", len(holders) == 1,
                        f"{lab.vip} on {', '.join(holders) or 'no balancer'}")]
        states = {h.name: F.value(facts_by_host[h.name], F.vrrp_state(TRANSITIONS_LOG))
                  for h in balancers(lab) if h.name in facts_by_host}
        checks.append(Check("keepalived peers agree: one MASTER, one BACKUP", "-",
                            sorted(states.values()) == ["BACKUP", "MASTER"],
                            ", ".join(f"{n} {s}" for n, s in states.items())))
        healthy = all(h.name in facts_by_host and
                      all(F.value(facts_by_host[h.name], F.service(u)).running for u in self.services)
                      for h in balancers(lab))
        if healthy and self.settings(lab)["preempt"]:
            master = preferred_master(lab).name
            checks.append(Check("VIP on the MASTER while both are healthy", master, holders == [master],
                                f"{lab.vip} on {', '.join(holders) or 'nobody'}, MASTER is {master}"))
        return checks


LOADBALANCER = register(LoadBalancer())
