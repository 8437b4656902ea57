"""The web servers: Nginx serving the static site and proxying /api/ to the app tier."""
import json
from dataclasses import dataclass

from ..converge.steps import Absent, Directory, File, Link, Packages, Service, Template
from ..remote import facts as F
from . import exporters
from .app import APP
from .base import Check, Inbound, Role, register

SITE = "/etc/nginx/sites-available/halab"
SITE_LINK = "/etc/nginx/sites-enabled/halab"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
DOCROOT = "/var/www/halab"
TLS_DIR = "/etc/nginx/tls"        # tls: reencrypt only: this web host's certificate and key
WEB_CERT, WEB_KEY = f"{TLS_DIR}/web.crt", f"{TLS_DIR}/web.key"
HTTPS_PORT = 443
# nginx -t on a candidate site: a copy of nginx.conf that includes the candidate instead
# of sites-enabled/, so the live configuration is never touched by the test.
VALIDATE_SITE = ("sed 's#include /etc/nginx/sites-enabled/\\*;#include {path};#' /etc/nginx/nginx.conf "
                 "> /tmp/halab-nginx-test.conf && nginx -t -q -c /tmp/halab-nginx-test.conf")

# The rendered site's upstream servers (`server 192.168.56.31:8000 max_fails=...;`).
UPSTREAM_LINES = F.config_words(SITE, r"^\s*server\s+[0-9.]+:[0-9]+")
HEALTH_CONNECT_TIMEOUT_S = 1  # a LAN connect takes < 1 ms: 1 s means the app host is gone
HEALTH_MAX_TIME_S = 3         # the app waits at most 2 s for the database (notes_app.CONNECT_TIMEOUT_S)


@dataclass(frozen=True)
class Health:
    """What an app host's /api/health answered a web host: the HTTP status (0: no answer)
    and the body, or curl's own message."""
    status: int
    text: str

    @property
    def healthy(self):
        try:
            return self.status == 200 and json.loads(self.text).get("database") is True
        except (ValueError, AttributeError):
            return False

    @property
    def words(self):
        if self.healthy:
            return "HTTP 200, database reached"
        if not self.status:
            return self.text.replace("curl: ", "").strip() or "no answer"
        try:
            said = json.loads(self.text).get("error") or self.text
        except (ValueError, AttributeError):
            said = self.text
        return f"HTTP {self.status}: {str(said).strip()[:200]}"


def parse_health(text):
    """Health from curl's output: the body (or its error message), then the status on the
    last line (`-w '\\n%{http_code}'`; 000 when nothing answered)."""
    lines = text.rstrip("\n").split("\n")
    status = lines.pop() if lines and lines[-1].isdigit() else "0"
    return Health(int(status), "\n".join(lines).strip())


def app_health(app, port):
    """The app host's /api/health asked from this (web) host on its private IP: the app
    answers only after a SELECT 1 on the database with its own credentials."""
    url = f"http://{app.ip}:{port}/api/health"
    return F.Fact(f"health:{url}", f"curl -sS --connect-timeout {HEALTH_CONNECT_TIMEOUT_S} "
                                   f"--max-time {HEALTH_MAX_TIME_S} -w '\\n%{{http_code}}' {url} 2>&1",
                  parse_health)


DEFAULTS = {
    # app_port: the app role's own (see Web.shared); the upstream follows it
    "proxy_connect_timeout_s": 2,   # app host unreachable -> try the next one after 2 s
    "proxy_read_timeout_s": 30,     # matches Gunicorn's worker timeout
    "upstream_max_fails": 2,        # 2 failed attempts...
    "upstream_fail_timeout_s": 5,   # ...within 5 s park that app server for 5 s
    "upstream_keepalive": 16,       # idle connections Nginx may keep per worker to the app tier
}


class Web(Role):
    name = "web"
    summary = "Nginx: the static site on :80 (:443 with tls: reencrypt), /api/ proxied to the app tier"
    defaults = DEFAULTS
    services = ("nginx",)
    packages = ("nginx", "curl")  # curl: the checks ask each app host from here

    def shared(self, lab):
        return {"app_port": APP.settings(lab)["app_port"], "tls": lab.tls}

    def listeners(self, host, settings):
        return [("*", port_of(settings))]

    def inbound(self, lab, host, settings):
        """HTTP (or HTTPS with tls: reencrypt) from the balancers alone: their own
        addresses, and the VIP they may send from."""
        service = "Nginx (HTTPS)" if settings["tls"] == "reencrypt" else "Nginx"
        return [Inbound(service, "tcp", port_of(settings),
                        (*(h.ip for h in lab.with_role("loadbalancer")), lab.vip))]

    def check_facts(self, lab, host):
        port = self.settings(lab)["app_port"]
        return [*super().check_facts(lab, host), UPSTREAM_LINES,
                *(app_health(app, port) for app in lab.with_role("app"))]

    def checks(self, lab, host, facts):
        """Nginx's upstream is lab.yml's app tier, and every app host answers from here
        with its database: a broken app host is named, whichever one Nginx would pick."""
        checks = super().checks(lab, host, facts)
        port = self.settings(lab)["app_port"]
        wanted = [f"{app.ip}:{port}" for app in lab.with_role("app")]
        found = [w.rstrip(";") for w in F.value(facts, UPSTREAM_LINES, ()) if w != "server" and ":" in w]
        missing = [w for w in wanted if w not in found]
        extra = [w for w in found if w not in wanted]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"not an app host: {', '.join(extra)}"] if extra else [])
        checks.append(Check("Nginx upstream is every app host of lab.yml", host.name, not problems,
                            "; ".join(problems) if problems else ", ".join(found)))
        for app in lab.with_role("app"):
            health = F.value(facts, app_health(app, port), Health(0, ""))
            checks.append(Check(f"/api/health from {host.name}, database included", app.name,
                                health.healthy, health.words))
        return checks

    def steps(self, ctx):
        context = ctx.template_context(web_cert=WEB_CERT, web_key=WEB_KEY, https_port=HTTPS_PORT,
                                       stub_status_port=exporters.STUB_STATUS_PORT)
        host = ctx.host
        reencrypt = ctx.settings["tls"] == "reencrypt"
        # reencrypt: the certificate and key before the site that names them (nginx -t reads
        # them); the key reaches the host on standard input, readable by root alone (Nginx's
        # master process reads it before its workers drop to www-data). terminate: they go,
        # once the site no longer names them.
        certificate = [Directory(TLS_DIR, "700"),
                       File(WEB_CERT, lambda facts: ctx.secrets["tls"].web[host.name][0]),
                       File(WEB_KEY, lambda facts: ctx.secrets["tls"].web[host.name][1], mode="600", secret=True)]
        return [
            Packages(self.packages),
            Directory(DOCROOT),
            Template(f"{DOCROOT}/index.html", template="web/index.html.j2", context=context),
            *(certificate if reencrypt else []),
            Template(SITE, template="web/nginx-site.conf.j2", context=context, validate=VALIDATE_SITE),
            Absent(DEFAULT_SITE),
            Link(SITE_LINK, SITE),
            *([] if reencrypt else [Absent(WEB_KEY), Absent(WEB_CERT)]),
            Service("nginx", reload_on=(SITE, SITE_LINK, DEFAULT_SITE, WEB_CERT, WEB_KEY)),
        ]


def port_of(settings):
    """The port the balancers reach Nginx on: 443 with tls: reencrypt, else 80."""
    return HTTPS_PORT if settings["tls"] == "reencrypt" else 80


WEB = register(Web())
