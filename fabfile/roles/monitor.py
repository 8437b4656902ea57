"""The monitoring server (optional: `mon1: {role: monitor, ip: ...}` in lab.yml): Prometheus
scraping every exporter of the lab, with the lab's alert rules, and Alertmanager. Targets
and rules are rendered from lab.yml; every file is checked by promtool or amtool before it
replaces the live one. Both listen on the private IP only."""
import json
from dataclasses import dataclass

from ..converge.steps import Directory, Packages, Service, Template
from ..remote import facts as F
from . import exporters
from .base import Check, Inbound, Role, register, registered

PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/halab-rules.yml"
ALERTMANAGER_YML = "/etc/prometheus/alertmanager.yml"
CONSOLE = "/etc/prometheus/consoles/halab.html"
PROMETHEUS_DEFAULTS = "/etc/default/prometheus"
PROMETHEUS_DROPIN_DIR = "/etc/systemd/system/prometheus.service.d"
PROMETHEUS_DROPIN = f"{PROMETHEUS_DROPIN_DIR}/halab.conf"
ALERTMANAGER_DEFAULTS = "/etc/default/prometheus-alertmanager"
ANSWER_WAIT_S = 10  # verify waits this long, at most, for the first scrapes after a provision

DEFAULTS = {
    "prometheus_port": 9090,        # Prometheus' and Alertmanager's registered ports
    "alertmanager_port": 9093,
    "scrape_interval_s": 1,         # node exporters and HAProxy: a drill sees the VIP move
    "app_scrape_interval_s": 5,     # the app pings its database at every scrape: less often
    "evaluation_interval_s": 1,     # rules evaluated every second
    "retention": "2d",              # a lab's history; the disk is small
    "error_ratio": 0.05,            # alert when more than 5% of answers through HAProxy are 5xx
}


def settings_of(lab):
    return lambda role: registered(role).settings(lab)


def monitor_host(lab):
    """The lab's monitoring server, or None."""
    hosts = lab.with_role("monitor")
    return hosts[0] if hosts else None


def targets_fact(host, port):
    """Prometheus' own view of its targets, asked on the monitoring server; it waits
    (bounded) while a target has not been scraped yet, right after a provision."""
    url = f"http://{host.ip}:{port}/api/v1/targets?state=active"
    command = (f"for i in $(seq {ANSWER_WAIT_S * 2}); do out=$(curl -sS --max-time 2 '{url}' 2>&1); "
               f"printf '%s' \"$out\" | grep -q '\"health\":\"up\"' && "
               f"! printf '%s' \"$out\" | grep -q '\"health\":\"\\(unknown\\|down\\)\"' && break; sleep 0.5; done; "
               f"printf '%s' \"$out\"")
    return F.Fact(f"prometheus_targets:{url}", command, F.parse_text)


def rules_fact(host, port):
    url = f"http://{host.ip}:{port}/api/v1/rules?type=alert"
    return F.Fact(f"prometheus_rules:{url}", f"curl -sS --max-time 3 '{url}' 2>&1", F.parse_text)


def parse_targets(text):
    """[(job, host, health, error)] from /api/v1/targets, or None when it is no answer."""
    try:
        active = json.loads(text)["data"]["activeTargets"]
    except (ValueError, KeyError, TypeError):
        return None
    return [(t["labels"].get("job", "?"), t["labels"].get("host", t["labels"].get("instance", "?")),
             t.get("health", "?"), t.get("lastError", "")) for t in active]


def parse_rule_names(text):
    try:
        groups = json.loads(text)["data"]["groups"]
    except (ValueError, KeyError, TypeError):
        return None
    return sorted(r["name"] for g in groups for r in g["rules"])


class Monitor(Role):
    name = "monitor"
    summary = "Prometheus and Alertmanager: every exporter of the lab scraped, its alert rules"
    defaults = DEFAULTS
    services = ("prometheus", "prometheus-alertmanager")
    packages = ("prometheus", "prometheus-alertmanager", "curl")

    def listeners(self, host, settings):
        return [(host.ip, settings["prometheus_port"]), (host.ip, settings["alertmanager_port"])]

    def inbound(self, lab, host, settings):
        """Prometheus' and Alertmanager's pages, from the machine the lab runs on."""
        return [Inbound("Prometheus", "tcp", settings["prometheus_port"], (lab.gateway,)),
                Inbound("Alertmanager", "tcp", settings["alertmanager_port"], (lab.gateway,))]

    def template_context(self, ctx):
        lab = ctx.lab
        lbs = lab.with_role("loadbalancer")
        return ctx.template_context(
            targets=exporters.scrape_targets(lab, settings_of(lab)),
            preferred_master=lbs[0].name, balancers=[h.name for h in lbs],
            app_hosts=[h.name for h in lab.with_role("app")], queries=SAVED_QUERIES)

    def facts(self, ctx):
        return [F.container()]

    def steps(self, ctx):
        s = ctx.settings
        context = self.template_context(ctx)

        def sandbox_context(facts):
            # Debian's PrivateUsers=true needs a user namespace, which a container without
            # CAP_SYS_ADMIN cannot make: off there only (the drop-in says why).
            return dict(context, in_container=bool(F.value(facts, F.container())))

        return [
            Packages(self.packages),
            Directory(PROMETHEUS_DROPIN_DIR),
            Template(PROMETHEUS_DROPIN, template="monitor/prometheus-sandbox.conf.j2", context=sandbox_context),
            # The rules first: `promtool check config` also checks the rule files it names.
            Template(RULES, template="monitor/halab-rules.yml.j2", context=context,
                     validate="promtool check rules {path}"),
            Template(PROMETHEUS_YML, template="monitor/prometheus.yml.j2", context=context,
                     validate="promtool check config {path}"),
            Template(CONSOLE, template="monitor/halab.html.j2", context=context),
            Template(ALERTMANAGER_YML, template="monitor/alertmanager.yml.j2", context=context,
                     validate="amtool check-config {path}"),
            Template(PROMETHEUS_DEFAULTS, template="monitor/prometheus.default.j2", context=context),
            Template(ALERTMANAGER_DEFAULTS, template="monitor/alertmanager.default.j2", context=context),
            Service("prometheus-alertmanager", reload_on=(ALERTMANAGER_YML,), restart_on=(ALERTMANAGER_DEFAULTS,)),
            Service("prometheus", reload_on=(PROMETHEUS_YML, RULES, CONSOLE),
                    restart_on=(PROMETHEUS_DEFAULTS, PROMETHEUS_DROPIN)),
        ]

    def check_facts(self, lab, host):
        port = self.settings(lab)["prometheus_port"]
        return [*super().check_facts(lab, host), targets_fact(host, port), rules_fact(host, port)]

    def checks(self, lab, host, facts):
        checks = super().checks(lab, host, facts)
        port = self.settings(lab)["prometheus_port"]
        targets = parse_targets(F.value(facts, targets_fact(host, port), ""))
        wanted = {(job, target.name) for job, target, _ in exporters.scrape_targets(lab, settings_of(lab))}
        if targets is None:
            checks.append(Check("every scrape target up", host.name, False, "Prometheus did not answer"))
        else:
            seen = {(job, name): (health, error) for job, name, health, error in targets}
            bad = [f"{name} {job}: {seen.get((job, name), ('absent', ''))[0]}"
                   f"{' (' + seen[(job, name)][1][:80] + ')' if seen.get((job, name), ('', ''))[1] else ''}"
                   for job, name in sorted(wanted) if seen.get((job, name), ("absent",))[0] != "up"]
            checks.append(Check("every scrape target up", host.name, not bad,
                                "; ".join(bad) if bad else f"{len(wanted)} targets up"))
        rules = parse_rule_names(F.value(facts, rules_fact(host, port), ""))
        missing = sorted(set(ALERT_NAMES) - set(rules or ()))
        checks.append(Check("the lab's alert rules loaded", host.name, rules is not None and not missing,
                            "Prometheus did not answer" if rules is None else
                            (f"missing {', '.join(missing)}" if missing else f"{len(rules)} rules")))
        return checks


@dataclass(frozen=True)
class SavedQuery:
    """A question a student asks without writing PromQL: `invoke monitor` prints its answer
    and Prometheus' console page consoles/halab.html shows it."""
    name: str
    title: str
    expr: str
    by: str = "host"        # the label that names each row
    unit: str = "per second"


SAVED_QUERIES = (
    SavedQuery("rps_per_balancer", "Requests per second through each balancer",
               'sum by (host) (rate(haproxy_frontend_http_requests_total{proxy=~"https?_in"}[10s]))'),
    SavedQuery("errors_per_balancer", "5xx answers per second through each balancer",
               'sum by (host) (rate(haproxy_frontend_http_responses_total{proxy=~"https?_in", code="5xx"}[30s]))'),
    SavedQuery("app_rps", "Requests per second answered by each app host",
               "sum by (host) (rate(halab_app_requests_total[30s]))"),
    SavedQuery("app_errors", "5xx answers per second from each app host",
               'sum by (host) (rate(halab_app_requests_total{status=~"5.."}[30s]))'),
    SavedQuery("disk_io_per_host", "Disk I/O per host (bytes read + written per second)",
               "sum by (host) (rate(node_disk_read_bytes_total[30s]) + rate(node_disk_written_bytes_total[30s]))",
               unit="bytes per second"),
    SavedQuery("vrrp_master", "Which balancer is VRRP MASTER (1) right now", "halab_vrrp_master", unit="master"),
)


# The alerts of templates/monitor/halab-rules.yml.j2 that verify expects loaded.
ALERT_NAMES = ("HostDown", "ServiceDown", "WebBackendOutOfRotation", "VipMoved", "VrrpMasterCount",
               "DatabaseUnreachableFromApp", "HighErrorRate")

MONITOR = register(Monitor())
