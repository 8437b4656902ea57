"""Nginx: the static site, and a reverse proxy of /api/ to the app tier."""
from ..render import render
from ..steps import Absent, Directory, File, Link, Packages, Service

SITE = "/etc/nginx/sites-available/halab"
SITE_LINK = "/etc/nginx/sites-enabled/halab"
DOCROOT = "/var/www/halab"
# nginx -t on a candidate site: a copy of nginx.conf that includes the candidate instead
# of sites-enabled/, so the live configuration is never touched by the test.
VALIDATE_SITE = ("sed 's#include /etc/nginx/sites-enabled/\\*;#include {path};#' /etc/nginx/nginx.conf "
                 "> /tmp/halab-nginx-test.conf && nginx -t -q -c /tmp/halab-nginx-test.conf")


def steps(ctx):
    return [
        Packages(("nginx",)),
        Directory(DOCROOT),
        File(f"{DOCROOT}/index.html", lambda facts: render("web/index.html.j2", ctx.context())),
        File(SITE, lambda facts: render("web/nginx-site.conf.j2", ctx.context()), validate=VALIDATE_SITE),
        Absent("/etc/nginx/sites-enabled/default"),
        Link(SITE_LINK, SITE),
        Service("nginx", reload_on=(SITE, SITE_LINK, "/etc/nginx/sites-enabled/default")),
    ]
