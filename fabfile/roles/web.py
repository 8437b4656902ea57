"""The web servers: Nginx serving the static site and proxying /api/ to the app tier."""
from ..converge.steps import Absent, Directory, Link, Packages, Service, Template
from .app import APP
from .base import Role, register

SITE = "/etc/nginx/sites-available/halab"
SITE_LINK = "/etc/nginx/sites-enabled/halab"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
DOCROOT = "/var/www/halab"
# nginx -t on a candidate site: a copy of nginx.conf that includes the candidate instead
# of sites-enabled/, so the live configuration is never touched by the test.
VALIDATE_SITE = ("sed 's#include /etc/nginx/sites-enabled/\\*;#include {path};#' /etc/nginx/nginx.conf "
                 "> /tmp/halab-nginx-test.conf && nginx -t -q -c /tmp/halab-nginx-test.conf")

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
    summary = "Nginx: the static site on :80, /api/ proxied to the app tier"
    defaults = DEFAULTS
    services = ("nginx",)
    packages = ("nginx",)

    def shared(self, lab):
        return {"app_port": APP.settings(lab)["app_port"]}

    def listeners(self, host, settings):
        return [("*", 80)]

    def steps(self, ctx):
        context = ctx.template_context()
        return [
            Packages(self.packages),
            Directory(DOCROOT),
            Template(f"{DOCROOT}/index.html", template="web/index.html.j2", context=context),
            Template(SITE, template="web/nginx-site.conf.j2", context=context, validate=VALIDATE_SITE),
            Absent(DEFAULT_SITE),
            Link(SITE_LINK, SITE),
            Service("nginx", reload_on=(SITE, SITE_LINK, DEFAULT_SITE)),
        ]


WEB = register(Web())
