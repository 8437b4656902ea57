"""Jinja2 for the views: HTML and SVG from templates/views/, autoescaped (the data comes from
JSON files and lab.yml), and StrictUndefined so a missing value fails instead of vanishing."""
import functools
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "views"


@functools.lru_cache(maxsize=1)
def environment():
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                              undefined=jinja2.StrictUndefined, autoescape=True,
                              trim_blocks=True, lstrip_blocks=True)


def render(template_name, **context):
    return environment().get_template(template_name).render(**context)
