"""Jinja2 rendering of templates/ (StrictUndefined: a missing value fails, never renders
empty). HALAB_TEMPLATES names a folder whose files override the shipped ones."""
import os
from types import SimpleNamespace

import jinja2

from .errors import LabError
from .lab import PROJECT_DIR, ROLES

TEMPLATES_DIR = PROJECT_DIR / "templates"


def environment():
    paths = [str(TEMPLATES_DIR)]
    if os.environ.get("HALAB_TEMPLATES"):
        paths.insert(0, os.environ["HALAB_TEMPLATES"])
    return jinja2.Environment(loader=jinja2.FileSystemLoader(paths), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


def lab_context(lab, host, settings):
    """What every template sees: lab, host, hosts (role -> hosts) and the role's settings."""
    return {
        "lab": SimpleNamespace(name=lab.name, network=str(lab.network), prefixlen=lab.network.prefixlen,
                               vip=lab.vip, gateway=lab.gateway),
        "host": host,
        "hosts": {role: lab.with_role(role) for role in ROLES},
        "settings": settings,
    }


def render(name, context):
    try:
        return environment().get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise LabError(f"template {name}{where}: {exc}", "fix the template; nothing was changed",
                       host=context["host"].name) from None
