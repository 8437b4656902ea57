"""Jinja2 rendering of templates/ (StrictUndefined: a missing value fails, never renders
empty). HALAB_TEMPLATES names a folder whose files override the shipped ones. A template
that fails names itself, the line and shows the lines around it."""
from pathlib import Path

import jinja2

from ..core import config
from ..core.config import PROJECT_DIR
from ..core.errors import LabError

TEMPLATES_DIR = PROJECT_DIR / "templates"


def environment():
    paths = [str(TEMPLATES_DIR)]
    override = config.current().templates
    if override:
        paths.insert(0, str(Path(override).resolve()))
    return jinja2.Environment(loader=jinja2.FileSystemLoader(paths), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


def excerpt(source, lineno, around=2):
    """The lines around `lineno` of `source`, numbered, the offending one marked."""
    lines = source.splitlines()
    first, last = max(1, lineno - around), min(len(lines), lineno + around)
    return "\n".join(f"{'>' if n == lineno else ' '} {n:4} | {lines[n - 1]}" for n in range(first, last + 1))


def _failing_line(exc, name, env):
    """(line number, source) of the template line that failed, when Jinja2 can tell: a
    syntax error carries it; a render error shows it in the traceback Jinja2 rewrites so
    that the template's own frames carry their line numbers."""
    failed = getattr(exc, "name", None) or name
    lineno = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            lineno, failed = tb.tb_lineno, filename
        tb = tb.tb_next
    try:
        source = Path(failed).read_text() if Path(failed).is_absolute() else env.loader.get_source(env, failed)[0]
    except (OSError, jinja2.TemplateNotFound):
        return lineno, ""
    return lineno, source


def render(name, context):
    env = environment()
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        lineno, source = _failing_line(exc, name, env)
        where = f" (line {lineno})" if lineno else ""
        shown = f"\n{excerpt(source, lineno)}" if lineno and source else ""
        host = context.get("host")
        raise LabError(f"template {name}{where}: {exc}{shown}", "fix the template; nothing was changed",
                       host=getattr(host, "name", None)) from None

