"""Which checkout owns a lab's machines. Every checkout's default lab is `halab`, and
containers, Docker networks and VirtualBox VMs are found by the lab's name, so each
checkout marks what it creates with its own identity and touches only what carries it.

The identity is a random id made once and kept in the checkout's git-ignored
`.lab/checkout-id`, not a hash of the checkout's path: a checkout that is moved keeps its
`.lab/` (and Vagrant's machine ids in it), so it still owns its lab; two machines that
share a docker daemon and a path (containers mounting the same socket) stay apart. The
checkout's path is stored beside the id, to name where another checkout's lab lives.
(A copy made with its `.lab/` is the same checkout, machine ids included; copy without
`.lab/` to make another.)

What carries no mark (made before the mark existed) is this checkout's when its Vagrant
data folder knows its id, else an unknown leftover: left alone, with the commands that
remove it by hand."""
import os
import secrets
from dataclasses import dataclass, field

from ..core import state
from ..core.config import PROJECT_DIR
from ..core.errors import LabError

LAB_LABEL = "halab.lab"
CHECKOUT_LABEL = "halab.checkout"
PATH_LABEL = "halab.checkout-path"
ID_FILE = "checkout-id"

MINE, FOREIGN, UNKNOWN = "mine", "foreign", "unknown"


def checkout_id():
    """This checkout's id, made once (16 hex digits) in `.lab/checkout-id`. Made atomically:
    a temporary file hard-linked into place, so two processes (or the Vagrantfile, which
    makes it the same way) agree on the first one."""
    path = state.STATE_ROOT / ID_FILE
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ID_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(secrets.token_hex(8) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def checkout_path():
    return str(PROJECT_DIR)


def owner_of(mark, known, me):
    """MINE, FOREIGN or UNKNOWN: the checkout mark decides; without one, whether this
    checkout's Vagrant knows the machine."""
    if mark:
        return MINE if mark == me else FOREIGN
    return MINE if known else UNKNOWN


@dataclass(frozen=True)
class Item:
    """A container, Docker network or VirtualBox VM of the lab's name."""
    kind: str          # "container", "network", "VirtualBox VM"
    name: str
    ref: str           # what removes it: a container id, a network name, a VM uuid
    owner: str         # MINE, FOREIGN or UNKNOWN
    path: str = ""     # the owning checkout's path (FOREIGN)
    known: bool = False  # this checkout's Vagrant knows it
    host: str = ""     # the lab host it stands for, when named <lab>-<host>

    def __str__(self):
        return f"{self.kind} {self.name}"


@dataclass
class Survey:
    """What carries a lab's name on one provider, by owner, and the commands that would
    remove the unknown leftovers by hand."""
    items: list = field(default_factory=list)
    by_hand: list = field(default_factory=list)

    def of(self, owner):
        return [i for i in self.items if i.owner == owner]

    @property
    def mine(self):
        return self.of(MINE)

    @property
    def orphans(self):
        """This checkout's machines that its Vagrant does not know (an interrupted run)."""
        return {i.name: i.ref for i in self.mine if not i.known and i.kind != "network"}

    @property
    def hosts_not_mine(self):
        """Hosts whose machine belongs to someone else: never handed to `vagrant destroy`."""
        return {i.host for i in self.items if i.host and i.owner != MINE}

    def __add__(self, other):
        return Survey(self.items + other.items, self.by_hand + other.by_hand)


def _names(items):
    return ", ".join(str(i) for i in items)


def refusal(lab, survey, doing):
    """The LabError for what another checkout owns or nobody vouches for, or None.
    `doing`: what this checkout does about it ("boots nothing", "destroys none of it")."""
    foreign, unknown = survey.of(FOREIGN), survey.of(UNKNOWN)
    if not foreign and not unknown:
        return None
    problems, fixes = [], []
    paths = sorted({i.path or "(a checkout that did not say where)" for i in foreign})
    for path in paths:
        items = [i for i in foreign if (i.path or "(a checkout that did not say where)") == path]
        problems.append(f"lab {lab.name!r} belongs to another checkout, at {path} ({_names(items)}); "
                        f"this checkout ({checkout_path()}) leaves it alone and {doing}")
        fixes.append(f"destroy it from there (cd {path} && .venv/bin/invoke destroy --yes, with "
                     f"the LAB or LAB_FILE it runs with), or give this checkout's lab another name "
                     f"and network (LAB_FILE=... or LAB=<name>)")
    if unknown:
        problems.append(f"{_names(unknown)} carry the name of lab {lab.name!r} but no checkout's mark, "
                        f"and this checkout's Vagrant does not know them (another checkout's lab "
                        f"from before the mark existed, or made by hand); this checkout leaves them alone "
                        f"and {doing}")
        fixes.append("if nothing uses them any more, remove them by hand: " + "; ".join(survey.by_hand))
    return LabError("; ".join(problems), "; ".join(fixes))
