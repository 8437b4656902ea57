"""`invoke firewall HOST --ruleset FILE`: a student's own nftables ruleset loaded the way
provision loads the lab's (checked, atomic, rolled back by itself when it cuts SSH). It
replaces the table `inet halab` only, until the next `invoke provision` or reboot."""
import re
from pathlib import Path

from ..converge.engine import HostRun
from ..core.console import say
from ..core.errors import LabError
from ..roles import firewall, role_of

DECLARED_TABLE = re.compile(r"^\s*(?:add\s+|create\s+)?table\s+(\S+)\s+(\S+)", re.MULTILINE)
FORBIDDEN = re.compile(r"^\s*(flush\s+ruleset|delete\s+table|flush\s+table)\b", re.MULTILINE)


def own_ruleset(text, source="the ruleset"):
    """The ruleset to load: `text`, made to replace the table atomically. A LabError
    before anything changes when it touches anything but `table inet halab`."""
    tables = {f"{family} {name.rstrip('{').strip()}" for family, name in DECLARED_TABLE.findall(text)}
    if tables != {firewall.TABLE}:
        found = ", ".join(sorted(tables)) or "none"
        raise LabError(f"{source} must define the table {firewall.TABLE} and no other (found: {found})",
                       f"write `table {firewall.TABLE} {{ chain input {{ type filter hook input priority "
                       "filter; ... } }`; start from /etc/halab/firewall.nft on the host")
    forbidden = FORBIDDEN.search(text)
    if forbidden:
        raise LabError(f"{source} says `{forbidden.group(1)}`: the lab's loader replaces the table itself, "
                       "and Docker's own tables must stay", "remove that line")
    return f"table {firewall.TABLE}\ndelete table {firewall.TABLE}\n{text}"


def apply_ruleset(machines, name, path):
    host = machines.lab.host(name)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise LabError(f"cannot read {path}: {exc.strerror}", "give the path of an nftables file") from None
    content = own_ruleset(text, str(path))
    connection = machines.connections([host])[name]
    run = HostRun(name, role_of(host).name, connection)
    say(name, f"loading {path}; it is rolled back by itself unless a new SSH connection gets in within "
              f"{firewall.ROLLBACK_AFTER_S} s")
    try:
        for action in firewall.load_actions(content, persist=False):
            run.act(action, "your ruleset")
    except LabError as exc:
        say(name, f"FAILED       {exc.step}\n{exc.problem}")
        raise LabError(f"{name}: your ruleset was not kept", "see above; `invoke provision` restores the lab's "
                       f"ruleset, `invoke console {name}` gets you in without SSH") from None
    finally:
        connection.close()
    say(name, "your ruleset is loaded and SSH still gets in; `invoke provision` restores the lab's")
