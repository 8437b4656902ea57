"""Idempotent steps. Each names the facts it needs and plans from them: the change to
make, as shell commands, or None when the host is already as wanted. Steps never touch a
host; the engine (engine.py) runs what they plan, and a dry run runs nothing."""
import base64
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from ..remote import facts as F

APT_ENV = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
POLICY_RC_D = "/usr/sbin/policy-rc.d"
# How long an install waits for dpkg's lock: an install cut short by Ctrl-C goes on on the
# guest without us, and the next provision must wait for it rather than fail on its lock.
DPKG_LOCK_WAIT_S = 120
LOADED_DIR = "/var/lib/halab/loaded"  # what each service last (re)loaded, as hashes


@dataclass(frozen=True)
class Action:
    """One shell command, run as root. On failure the engine runs `cleanup`, adds the
    output of `diagnose`, and raises a LabError that names the step and says `failure`
    (or the command and its exit code) and the `hint`."""
    command: str
    shown: str = ""
    hint: str = ""
    timeout: float = 60
    cleanup: str = ""
    diagnose: str = ""
    failure: str = ""
    reports: str = ""  # the command says `<reports> changed` or `<reports> ok` itself
    stdin: bytes = b""  # sent on standard input: file contents (secrets) never stand in a command line
    fresh_connection: bool = False  # run on a new SSH connection (proof that one still gets in); after
    settle: float = 0               # a failure, wait this long, then run cleanup and diagnose on a new one too


@dataclass
class Change:
    step: str
    detail: str
    actions: tuple = ()
    path: str = ""              # the file this change writes
    content: Optional[str] = None  # its new content, for a dry run's diff
    secret: bool = False        # never show the content
    probe: Optional[Action] = None  # a read-only twin of the actions, run by a dry run
    refresh_facts: bool = False    # the actions install files that later steps ask about


class Step:
    name = "step"

    def facts(self):
        """The facts this step plans from."""
        return []

    def plan(self, facts, changed_paths):
        """The Change to make, or None. `changed_paths`: the files changed earlier in this run."""
        raise NotImplementedError


@dataclass
class Packages(Step):
    names: tuple

    @property
    def name(self):
        return f"packages {' '.join(self.names)}"

    def facts(self):
        return [F.packages(self.names), F.apt_lists_fresh()]

    def plan(self, facts, changed_paths):
        installed = F.value(facts, F.packages(self.names), {})
        missing = [n for n in self.names if not installed.get(n)]
        if not missing:
            return None
        actions = []
        if not F.value(facts, F.apt_lists_fresh()):
            actions.append(Action(f"{APT_ENV} apt-get update -q", timeout=300,
                                  hint="the guest cannot reach its Debian mirror (see /etc/apt/sources.list)"))
        # policy-rc.d: the packages' services are not started with their default
        # configuration; the role's Service steps start them once configured.
        # force-unsafe-io: dpkg skips its fsync()s, as in image builds. An install cut
        # short leaves dpkg "interrupted": `dpkg --configure -a` finishes it first. dpkg
        # cannot wait for its lock, apt can: `apt-get check` is the bounded wait (it fails,
        # after the wait, while dpkg is interrupted; dpkg's own run then says what is wrong).
        lock_wait = f"-o DPkg::Lock::Timeout={DPKG_LOCK_WAIT_S}"
        actions.append(Action(
            f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}; "
            f"{APT_ENV} apt-get -q {lock_wait} check >/dev/null 2>&1; "
            f"{APT_ENV} dpkg --configure -a --force-confold && "
            f"{APT_ENV} apt-get install -y -q --no-install-recommends {lock_wait} "
            f"-o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io "
            f"{' '.join(missing)}; rc=$?; rm -f {POLICY_RC_D}; exit $rc",
            shown=f"apt-get install {' '.join(missing)}", timeout=900,
            hint="apt-get could not install the packages; a rerun retries"))
        return Change(self.name, f"install {' '.join(missing)}", tuple(actions), refresh_facts=True)


@dataclass
class User(Step):
    user: str
    home: str

    @property
    def name(self):
        return f"user {self.user}"

    def facts(self):
        return [F.user(self.user)]

    def plan(self, facts, changed_paths):
        if F.value(facts, F.user(self.user)):
            return None
        return Change(self.name, "create system user", (Action(
            f"useradd --system --user-group --home-dir {self.home} --no-create-home "
            f"--shell /usr/sbin/nologin {self.user}"),))


@dataclass
class Directory(Step):
    path: str
    mode: str = "755"
    owner: str = "root"
    group: str = "root"

    @property
    def name(self):
        return f"directory {self.path}"

    def facts(self):
        return [F.directory(self.path)]

    def plan(self, facts, changed_paths):
        have = F.value(facts, F.directory(self.path))
        if have and have.matches(self.mode, self.owner, self.group):
            return None
        return Change(self.name, f"{self.mode} {self.owner} {self.group}", (Action(
            f"install -d -m {self.mode} -o {self.owner} -g {self.group} {self.path}"),))


@dataclass
class File(Step):
    """A file with the wanted content, mode and owner. The content is written next to the
    file, checked with `validate` (`{path}` stands for the candidate), and only then
    renamed into place: a candidate that fails its check is removed, the old file stays."""
    path: str
    content: Union[str, Callable[[dict], str]]
    mode: str = "644"
    owner: str = "root"
    group: str = "root"
    validate: Optional[str] = None
    secret: bool = False
    in_place: bool = False  # rewrite the file instead of renaming over it (a bind mount)

    @property
    def name(self):
        return f"file {self.path}"

    def facts(self):
        return [F.file(self.path)]

    def wanted(self, facts):
        return self.content(facts) if callable(self.content) else self.content

    def plan(self, facts, changed_paths):
        content = self.wanted(facts)
        digest = hashlib.sha256(content.encode()).hexdigest()
        have = F.value(facts, F.file(self.path))
        if have and have.matches(self.mode, self.owner, self.group, digest):
            return None
        candidate = f"{self.path}.halab-new"
        actions = [Action(f"install -m {self.mode} -o {self.owner} -g {self.group} /dev/null {candidate} && "
                          f"cat > {candidate}", shown=f"write {candidate}", stdin=content.encode())]
        if self.validate:
            check = self.validate.format(path=candidate)
            actions.append(Action(check, cleanup=f"rm -f {candidate}",
                                  failure=f"the rendered file is invalid, {self.path} left as it was.\n"
                                          f"`{check}` said:"))
        if self.in_place:
            actions.append(Action(f"cat {candidate} > {self.path} && chmod {self.mode} {self.path} && "
                                  f"chown {self.owner}:{self.group} {self.path} && rm -f {candidate}"))
        else:
            actions.append(Action(f"mv -f {candidate} {self.path}"))
        if have and have.sha256 == digest:
            detail = f"mode or owner: now {have.mode} {have.owner} {have.group}"
        else:
            detail = "written" if have else "created"
        return Change(self.name, detail, tuple(actions), path=self.path, content=content, secret=self.secret)


@dataclass
class Template(File):
    """A file rendered from templates/ with `context` (a dict, or a function of the facts)."""
    template: str = ""
    context: Union[dict, Callable[[dict], dict]] = field(default_factory=dict)
    content: Union[str, Callable[[dict], str], None] = None

    def wanted(self, facts):
        from .templates import render
        context = self.context(facts) if callable(self.context) else self.context
        return render(self.template, context)


@dataclass
class Absent(Step):
    path: str

    @property
    def name(self):
        return f"absent {self.path}"

    def facts(self):
        return [F.exists(self.path)]

    def plan(self, facts, changed_paths):
        if not F.value(facts, F.exists(self.path)):
            return None
        return Change(self.name, "removed", (Action(f"rm -f {self.path}"),), path=self.path)


@dataclass
class Line(Step):
    """A line present in a file that others write too (e.g. authorized_keys)."""
    path: str
    line: str
    owner: str = "root"

    @property
    def name(self):
        return f"line in {self.path}"

    def facts(self):
        return [F.line_in(self.path, self.line)]

    def plan(self, facts, changed_paths):
        if F.value(facts, F.line_in(self.path, self.line)):
            return None
        encoded = base64.b64encode(self.line.encode()).decode()
        # A file that does not end in a newline gets one first: the line stands on its own.
        p = self.path
        return Change(self.name, "added", (Action(
            f"{{ [ ! -s {p} ] || [ -z \"$(tail -c1 {p})\" ] || echo; echo {encoded} | base64 -d; echo; }} >> {p} && "
            f"chown {self.owner} {p}", shown=f"append a line to {p}"),))


@dataclass
class Link(Step):
    """A symbolic link at `path` pointing to `target`."""
    path: str
    target: str

    @property
    def name(self):
        return f"link {self.path}"

    def facts(self):
        return [F.link(self.path)]

    def plan(self, facts, changed_paths):
        if F.value(facts, F.link(self.path)) == self.target:
            return None
        return Change(self.name, f"-> {self.target}", (Action(f"ln -sfn {self.target} {self.path}"),),
                      path=self.path)


@dataclass
class InterfaceUp(Step):
    """The interface that carries `ip` is up: a drill or a student may have taken it down."""
    ip: str

    @property
    def name(self):
        return f"interface of {self.ip}"

    def facts(self):
        return [F.addresses(), F.links()]

    def plan(self, facts, changed_paths):
        iface = F.value(facts, F.addresses()).interface_of(self.ip)
        if iface is None or F.value(facts, F.links(), {}).get(iface, True):
            return None  # up, or no interface carries the address: later steps say so
        return Change(self.name, f"ip link set {iface} up", (Action(f"ip link set {iface} up"),))


def loaded_files(unit, reload_on, restart_on):
    """What `unit` runs with now: the hashes recorded when it last started, restarted or
    reloaded, and the hashes of its files on disk. A run that failed after writing a file
    but before reloading leaves the two apart, and the next run finishes the job."""
    def digest(paths):
        return f"cat /dev/null {' '.join(paths)} 2>/dev/null | sha256sum | cut -c1-64"
    command = (f"r=$(cat {LOADED_DIR}/{unit} 2>/dev/null); echo \"${{r:-none none}}\"; "
               f"{digest(reload_on)}; {digest(restart_on)}")
    return F.Fact(f"loaded:{unit}", command, F.parse_words), \
        f"mkdir -p {LOADED_DIR} && echo \"$({digest(reload_on)}) $({digest(restart_on)})\" > {LOADED_DIR}/{unit}"


@dataclass
class Service(Step):
    """A systemd service enabled and running on the files it depends on: reloaded when one
    of `reload_on` differs from what it last loaded, restarted for one of `restart_on`."""
    unit: str
    reload_on: tuple = ()
    restart_on: tuple = ()
    can_reload: bool = True

    @property
    def name(self):
        return f"service {self.unit}"

    def facts(self):
        return [F.service(self.unit), loaded_files(self.unit, self.reload_on, self.restart_on)[0]]

    def plan(self, facts, changed_paths):
        state = F.value(facts, F.service(self.unit), F.ServiceState("missing", "unknown"))
        loaded_fact, record = loaded_files(self.unit, self.reload_on, self.restart_on)
        loaded = F.value(facts, loaded_fact, ())
        stale_reload = len(loaded) == 4 and loaded[0] != loaded[2]
        stale_restart = len(loaded) == 4 and loaded[1] != loaded[3]
        restart = stale_restart or any(p in changed_paths for p in self.restart_on)
        reload_ = stale_reload or any(p in changed_paths for p in self.reload_on)
        verbs = []
        if not state.is_enabled:
            verbs.append("enable")
        if not state.running:
            verbs.append("start")
        elif restart or (reload_ and not self.can_reload):
            verbs.append("restart")
        elif reload_:
            verbs.append("reload")
        if not verbs:
            return None
        # systemd reads unit files only when told: after one changed in this run, or when
        # a unit file of this service changed since it was last (re)started.
        units_changed = any(p.startswith("/etc/systemd/system/") for p in changed_paths)
        def has_unit(paths):
            return any(p.startswith("/etc/systemd/system/") for p in paths)
        recorded = len(loaded) == 4 and loaded[0] != "none"  # none: never recorded, nothing to compare
        own_units_stale = recorded and ((stale_reload and has_unit(self.reload_on)) or
                                        (stale_restart and has_unit(self.restart_on)))
        actions = []
        if units_changed or own_units_stale:
            actions.append(Action("systemctl daemon-reload"))
        for verb in verbs:
            actions.append(Action(f"systemctl {verb} {self.unit}", timeout=120,
                                  failure=f"`systemctl {verb} {self.unit}` failed:",
                                  diagnose=f"journalctl -u {self.unit} -n 15 --no-pager"))
        actions.append(Action(record, shown=f"record what {self.unit} loaded"))
        return Change(self.name, ", ".join(verbs), tuple(actions))


@dataclass
class Command(Step):
    """A command run when `when(facts, changed_paths)` says so (always, with no `when`).
    With `reports`, the command itself says whether it changed anything: its output
    contains `changed` or `ok` after that word, e.g. `schema: ok`."""
    label: str
    command: str
    when: Optional[Callable] = None
    reports: str = ""
    needs: tuple = ()          # the facts `when` reads
    hint: str = ""
    check_command: Optional[str] = None  # read-only twin of `command`, run by a dry run
    timeout: float = 120

    @property
    def name(self):
        return self.label

    def facts(self):
        return list(self.needs)

    def plan(self, facts, changed_paths):
        if self.when and not self.when(facts, changed_paths):
            return None
        probe = Action(self.check_command, hint=self.hint, reports=self.reports, timeout=self.timeout) \
            if self.check_command else None
        return Change(self.name, "ran", (Action(self.command, hint=self.hint, reports=self.reports,
                                                timeout=self.timeout),), probe=probe)


@dataclass
class Await(Step):
    """Wait until the hosts of `roles` in this run are provisioned (the database before
    the app migrates against it). The engine waits; it is no change of its own."""
    roles: tuple

    @property
    def name(self):
        return f"wait for {', '.join(self.roles)}"

    def plan(self, facts, changed_paths):
        return None
