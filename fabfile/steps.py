"""Idempotent steps: each compares the host's facts with what is wanted, acts only on the
difference, and reports `changed` or `ok`. Facts for every step of a host are gathered in
one round trip; a dry run computes the same plan and changes nothing."""
import base64
import hashlib
import difflib
import shlex
from dataclasses import dataclass, field
from typing import Callable, Optional

APT_ENV = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
APT_LISTS_MAX_AGE_MIN = 24 * 60
POLICY_RC_D = "/usr/sbin/policy-rc.d"


class StepFailed(Exception):
    def __init__(self, step, output):
        self.step = step
        self.output = output.strip()
        super().__init__(f"{step}: {self.output}")


@dataclass
class Outcome:
    step: str
    changed: bool
    detail: str = ""
    diff: str = ""


def _fact_line(key, command):
    """A shell snippet printing `key<TAB>value` (value: the command's output on one line)."""
    return f"printf '%s\\t%s\\n' {shlex.quote(key)} \"$({{ {command}; }} 2>/dev/null | tr '\\n' ' ')\""


class Step:
    name = "step"

    def fact_queries(self):
        """{fact key: shell command}: what this step needs to know about the host."""
        return {}

    def run(self, host, facts):
        """Compare and, unless host.dry_run, act. Returns an Outcome."""
        raise NotImplementedError


@dataclass
class Packages(Step):
    names: tuple

    @property
    def name(self):
        return f"packages {' '.join(self.names)}"

    def fact_queries(self):
        names = " ".join(self.names)
        return {"packages": f"dpkg-query -W -f='${{Package}}=${{db:Status-Status}}\\n' {names}",
                "apt_lists_fresh": f"find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' "
                                   f"-mmin -{APT_LISTS_MAX_AGE_MIN} | head -n 1"}

    def missing(self, facts):
        installed = {p.split("=")[0] for p in facts.get("packages", "").split()
                     if p.endswith("=installed")}
        return [n for n in self.names if n not in installed]

    def run(self, host, facts):
        missing = self.missing(facts)
        if not missing:
            return Outcome(self.name, False)
        detail = f"install {' '.join(missing)}"
        if host.dry_run:
            return Outcome(self.name, True, detail)
        if not facts.get("apt_lists_fresh"):
            host.sudo(f"{APT_ENV} apt-get update -q", self.name,
                      hint="the guest cannot reach its Debian mirror (see /etc/apt/sources.list)")
        # policy-rc.d: the packages' services are not started with their default
        # configuration; the role's Service steps start them once configured (the
        # database starts once, on its private address, instead of twice).
        # force-unsafe-io: dpkg skips its fsync()s, as in image builds; an interrupted
        # install is simply rerun by the next provision.
        host.sudo(f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}; "
                  f"{APT_ENV} apt-get install -y -q --no-install-recommends "
                  f"-o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io "
                  f"{' '.join(missing)}; rc=$?; rm -f {POLICY_RC_D}; exit $rc", self.name,
                  hint="apt-get could not install the packages; a rerun retries")
        return Outcome(self.name, True, detail)


@dataclass
class User(Step):
    user: str
    home: str

    @property
    def name(self):
        return f"user {self.user}"

    def fact_queries(self):
        return {f"user:{self.user}": f"id -u {self.user}"}

    def run(self, host, facts):
        if facts.get(f"user:{self.user}"):
            return Outcome(self.name, False)
        if not host.dry_run:
            host.sudo(f"useradd --system --user-group --home-dir {self.home} --no-create-home "
                      f"--shell /usr/sbin/nologin {self.user}", self.name)
        return Outcome(self.name, True, "create system user")


@dataclass
class Directory(Step):
    path: str
    mode: str = "755"
    owner: str = "root"
    group: str = "root"

    @property
    def name(self):
        return f"directory {self.path}"

    def fact_queries(self):
        return {f"dir:{self.path}": f"stat -c '%a %U %G' {self.path}"}

    def run(self, host, facts):
        want = f"{self.mode} {self.owner} {self.group}"
        if facts.get(f"dir:{self.path}") == want:
            return Outcome(self.name, False)
        if not host.dry_run:
            host.sudo(f"install -d -m {self.mode} -o {self.owner} -g {self.group} {self.path}", self.name)
        return Outcome(self.name, True, want)


@dataclass
class File(Step):
    """A file with the wanted content, mode and owner. Content is written next to the file,
    validated with `validate` (`{path}` stands for the candidate), and only then renamed
    into place; a candidate that fails validation is removed and the old file stays."""
    path: str
    content: Callable[[dict], str]
    mode: str = "644"
    owner: str = "root"
    group: str = "root"
    validate: Optional[str] = None
    secret: bool = False
    in_place: bool = False  # rewrite the file instead of renaming over it (a bind mount)

    @property
    def name(self):
        return f"file {self.path}"

    def fact_queries(self):
        return {f"file:{self.path}": f"sha256sum {self.path} | cut -c1-64; stat -c '%a %U %G' {self.path}"}

    def run(self, host, facts):
        content = self.content(facts)
        digest = hashlib.sha256(content.encode()).hexdigest()
        want = f"{digest} {self.mode} {self.owner} {self.group}"
        have = facts.get(f"file:{self.path}", "")
        if have == want:
            return Outcome(self.name, False)
        if host.dry_run:
            return Outcome(self.name, True, "would write" if have else "would create",
                           self._diff(host, content, have))
        candidate = f"{self.path}.halab-new"
        encoded = base64.b64encode(content.encode()).decode()
        host.sudo(f"install -m {self.mode} -o {self.owner} -g {self.group} /dev/null {candidate} && "
                  f"echo {encoded} | base64 -d > {candidate}", self.name)
        if self.validate:
            check = self.validate.format(path=candidate)
            result = host.sudo(check, self.name, check=False)
            if result.exited != 0:
                host.sudo(f"rm -f {candidate}", self.name)
                raise StepFailed(self.name, f"the rendered file is invalid, {self.path} left as it was.\n"
                                            f"`{check}` said:\n{result.stdout}{result.stderr}")
        if self.in_place:
            host.sudo(f"cat {candidate} > {self.path} && chmod {self.mode} {self.path} && rm -f {candidate}",
                      self.name)
        else:
            host.sudo(f"mv -f {candidate} {self.path}", self.name)
        return Outcome(self.name, True, "written" if have else "created")

    def _diff(self, host, content, have):
        if self.secret:
            return f"--- {self.path}\n+++ {self.path}\n(secret content: diff not shown)\n"
        old = ""
        if have:
            old = host.sudo(f"cat {self.path}", self.name, check=False).stdout
        if old == content:
            return f"(mode or owner only: now {have.split(' ', 1)[-1]}, want {self.mode} {self.owner} {self.group})\n"
        return "".join(difflib.unified_diff(old.splitlines(True), content.splitlines(True),
                                            f"{self.path} (on host)", f"{self.path} (wanted)"))


@dataclass
class Absent(Step):
    path: str

    @property
    def name(self):
        return f"absent {self.path}"

    def fact_queries(self):
        return {f"exists:{self.path}": f"test -e {self.path} -o -L {self.path} && echo yes"}

    def run(self, host, facts):
        if not facts.get(f"exists:{self.path}"):
            return Outcome(self.name, False)
        if not host.dry_run:
            host.sudo(f"rm -f {self.path}", self.name)
        return Outcome(self.name, True, "removed")


@dataclass
class Line(Step):
    """A line present in a file that others write too (e.g. authorized_keys)."""
    path: str
    line: str
    owner: str = "root"

    @property
    def name(self):
        return f"line in {self.path}"

    def _key(self):
        return f"line:{self.path}:{hashlib.sha256(self.line.encode()).hexdigest()[:12]}"

    def fact_queries(self):
        return {self._key(): f"grep -qxF {shlex.quote(self.line)} {self.path} && echo yes"}

    def run(self, host, facts):
        if facts.get(self._key()):
            return Outcome(self.name, False)
        if not host.dry_run:
            host.sudo(f"printf '%s\\n' {shlex.quote(self.line)} >> {self.path} && "
                      f"chown {self.owner} {self.path}", self.name)
        return Outcome(self.name, True, "added")


@dataclass
class Link(Step):
    """A symbolic link at `path` pointing to `target`."""
    path: str
    target: str

    @property
    def name(self):
        return f"link {self.path}"

    def fact_queries(self):
        return {f"link:{self.path}": f"readlink {self.path}"}

    def run(self, host, facts):
        if facts.get(f"link:{self.path}") == self.target:
            return Outcome(self.name, False)
        if not host.dry_run:
            host.sudo(f"ln -sfn {self.target} {self.path}", self.name)
        return Outcome(self.name, True, f"-> {self.target}")


@dataclass
class Service(Step):
    """A systemd service enabled and running; reloaded (or restarted) when one of its
    files changed in this run."""
    unit: str
    reload_on: tuple = ()
    restart_on: tuple = ()
    can_reload: bool = True

    @property
    def name(self):
        return f"service {self.unit}"

    def fact_queries(self):
        return {f"svc:{self.unit}": f"systemctl is-enabled {self.unit}; systemctl is-active {self.unit}"}

    def run(self, host, facts):
        state = facts.get(f"svc:{self.unit}", "").split()
        enabled = bool(state) and state[0] == "enabled"
        active = len(state) > 1 and state[1] == "active"
        restart = any(p in host.changed_paths for p in self.restart_on)
        reload_ = any(p in host.changed_paths for p in self.reload_on)
        actions = []
        if not enabled:
            actions.append("enable")
        if not active:
            actions.append("start")
        elif restart or (reload_ and not self.can_reload):
            actions.append("restart")
        elif reload_:
            actions.append("reload")
        if not actions:
            return Outcome(self.name, False)
        if not host.dry_run:
            if any(p.startswith("/etc/systemd/system/") for p in host.changed_paths):
                host.sudo("systemctl daemon-reload", self.name)
            for action in actions:
                result = host.sudo(f"systemctl {action} {self.unit}", self.name, check=False)
                if result.exited != 0:
                    log = host.sudo(f"journalctl -u {self.unit} -n 15 --no-pager", self.name, check=False)
                    raise StepFailed(self.name, f"`systemctl {action} {self.unit}` failed:\n"
                                                f"{result.stderr}{log.stdout}")
        return Outcome(self.name, True, ", ".join(actions))


@dataclass
class Command(Step):
    """A command run when `when(facts, changed_paths)` says so (or always, with no `when`).
    With `reports`, the command itself says whether it changed anything: its output
    contains `changed` or `ok` after that word, e.g. `schema: ok`."""
    label: str
    command: str
    when: Optional[Callable] = None
    reports: Optional[str] = None
    queries: dict = field(default_factory=dict)
    hint: str = ""
    check_command: Optional[str] = None  # read-only twin of `command`, run by a dry run

    @property
    def name(self):
        return self.label

    def fact_queries(self):
        return dict(self.queries)

    def run(self, host, facts):
        if self.when and not self.when(facts, host.changed_paths):
            return Outcome(self.name, False)
        if host.dry_run and not self.check_command:
            return Outcome(self.name, True, "would run")
        command = self.check_command if host.dry_run else self.command
        result = host.sudo(command, self.name, hint=self.hint)
        if self.reports:
            changed = f"{self.reports} changed" in result.stdout
            return Outcome(self.name, changed, result.stdout.strip().splitlines()[-1] if changed else "")
        return Outcome(self.name, True, "ran")


def facts_script(steps, extra=None):
    """One shell script that prints every fact the steps need, one `key<TAB>value` a line."""
    queries = dict(extra or {})
    for step in steps:
        queries.update(step.fact_queries())
    return "\n".join(_fact_line(k, v) for k, v in queries.items())


def parse_facts(output):
    facts = {}
    for line in output.splitlines():
        if "\t" in line:
            key, value = line.split("\t", 1)
            facts[key] = value.strip()
    return facts


@dataclass
class Await(Step):
    """Wait until the hosts of `roles` in this run are provisioned (e.g. the database
    before the app migrates against it). Counts as no step of its own."""
    roles: tuple

    @property
    def name(self):
        return f"wait for {', '.join(self.roles)}"

    def run(self, host, facts):
        host.wait_for_roles(self.roles)
        return None
