"""The engine: converge() and HostRun against a fake connection that records every command
and answers from a script, and the template renderer's failures."""
import base64
import hashlib
import shlex

import pytest
from invoke.exceptions import CommandTimedOut
from invoke.runners import Result

from fabfile.converge import steps as S
from fabfile.converge.engine import HostRun, converge
from fabfile.converge.templates import excerpt, render
from fabfile.core.errors import LabError
from fabfile.remote import facts as F

# --- a connection that answers from a script ---------------------------------------------------

FACTS_MARK = "| base64 -w0)"  # only the facts script has it


def unwrap(command):
    """The command the engine runs as root: what `sudo -n sh -c '<command>'` wraps."""
    argv = shlex.split(command)
    assert argv[:4] == ["sudo", "-n", "sh", "-c"] and len(argv) == 5, command
    return argv[4]


def facts_output(raw):
    """What the facts script prints: `key<TAB>base64(output)` per fact."""
    return "".join(f"{key}\t{base64.b64encode(text.encode()).decode()}\n" for key, text in raw.items())


class FakeConnection:
    """Records every command. The facts round trip is answered from `facts` (one dict per
    gather, the last one repeated; an exception is raised); any other command from `script`:
    (substring or predicate of the unwrapped command, stdout or exception, exit code), first
    match wins; an unscripted command prints nothing and exits 0."""

    def __init__(self, facts=None, script=(), log=None):
        self.facts = list(facts) if isinstance(facts, list) else [facts or {}]
        self.script = list(script)
        self.calls = []
        self.log = log if log is not None else []

    def run(self, command, **kwargs):
        self.calls.append((command, kwargs))
        inner = unwrap(command)
        if FACTS_MARK in inner:
            self.log.append("<facts>")
            answer = self.facts.pop(0) if len(self.facts) > 1 else self.facts[0]
            if isinstance(answer, BaseException):
                raise answer
            return Result(stdout=facts_output(answer), command=command)
        self.log.append(inner)
        for match, stdout, exited in self.script:
            if match(inner) if callable(match) else match in inner:
                if isinstance(stdout, BaseException):
                    raise stdout
                stderr, stdout = (stdout[1], stdout[0]) if isinstance(stdout, tuple) else ("", stdout)
                return Result(stdout=stdout, stderr=stderr, exited=exited, command=command)
        return Result(command=command)

    def run_input(self, command, data, timeout):
        """A command fed on standard input (file contents): recorded like run's, with the
        input and the timeout as its keyword arguments."""
        return self.run(command, input=data, timeout=timeout)

    @property
    def commands(self):
        """Every command but the facts round trips, unwrapped, in order."""
        return [c for c in self.log if c != "<facts>"]


def host_run(connection, **kwargs):
    return HostRun("web1", "web", connection, **kwargs)


def commands_of(change):
    return [a.command for a in change.actions]


# --- steps and the facts that make them converged or not -----------------------------------------

MOTD = "/etc/motd"
MOTD_TEXT = "welcome to web1\nrole: web\n"
SITE = "/etc/nginx/sites-available/halab"
SITE_TEXT = "server {\n    listen 80 default_server;\n}\n"
KEY = "/home/vagrant/.ssh/id_ed25519"
KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def file_raw(text, mode="644 root root"):
    return f"{sha(text)}\n{mode}\n" if text is not None else ""


def loaded_raw(reload_hash="a" * 64, restart_hash="b" * 64):
    return f"{reload_hash} {restart_hash}\n{reload_hash}\n{restart_hash}\n"


NGINX = S.Service("nginx", reload_on=(SITE,))
NGINX_UP = {"service:nginx": "enabled active\n", "loaded:nginx": loaded_raw()}


def planned(step, raw, changed_paths=()):
    return step.plan(F.parse_raw(step.facts(), raw), set(changed_paths))


# --- converged, changed ---------------------------------------------------------------------------

def test_a_converged_host_runs_one_command_and_counts_every_step_ok():
    steps = [S.File(MOTD, MOTD_TEXT), S.User("halab", "/opt/halab-app"), NGINX]
    connection = FakeConnection({f"file:{MOTD}": file_raw(MOTD_TEXT), "user:halab": "yes\n", **NGINX_UP})
    run = converge(host_run(connection), steps)
    assert len(connection.calls) == 1
    assert FACTS_MARK in unwrap(connection.calls[0][0])
    assert connection.calls[0][1]["timeout"] == F.FACTS_TIMEOUT_S
    assert (run.ok, run.changed, run.failure, run.changed_paths) == (3, 0, "", set())


def test_a_change_runs_its_actions_in_order_each_under_sudo(capsys):
    user = S.User("halab", "/opt/halab-app")
    motd = S.File(MOTD, MOTD_TEXT)
    raw = {"user:halab": "", f"file:{MOTD}": ""}
    connection = FakeConnection(raw)
    run = converge(host_run(connection), [user, motd])
    expected = commands_of(planned(user, raw)) + commands_of(planned(motd, raw))
    assert len(expected) == 3
    assert [command for command, _ in connection.calls[1:]] == [f"sudo -n sh -c {shlex.quote(c)}" for c in expected]
    assert connection.calls[1][0] == ("sudo -n sh -c 'useradd --system --user-group --home-dir /opt/halab-app "
                                      "--no-create-home --shell /usr/sbin/nologin halab'")
    assert connection.calls[3][0] == f"sudo -n sh -c 'mv -f {MOTD}.halab-new {MOTD}'"
    plain = [kwargs for index, (_, kwargs) in enumerate(connection.calls[1:]) if index != 1]
    assert all(kwargs == {"hide": True, "warn": True, "in_stream": False, "timeout": 60} for kwargs in plain)
    # the file's content travels on standard input, never in the command line
    written = connection.calls[2]
    assert written[1] == {"input": MOTD_TEXT.encode(), "timeout": 60} and MOTD_TEXT not in written[0]
    assert (run.ok, run.changed, run.failure, run.changed_paths) == (0, 2, "", {MOTD})
    out = capsys.readouterr().out.splitlines()
    assert out == ["web1  | changed      user halab: create system user",
                   "web1  | changed      file /etc/motd: created"]


def test_an_action_runs_with_its_own_timeout():
    step = S.Packages(("nginx",))
    connection = FakeConnection({"packages:nginx": "", "apt_lists_fresh": ""})
    converge(host_run(connection), [step])
    timeouts = [kwargs["timeout"] for _, kwargs in connection.calls]
    assert timeouts == [F.FACTS_TIMEOUT_S, 300, 900, F.FACTS_TIMEOUT_S]  # facts, update, install, facts again


def test_changed_paths_accumulate_so_a_later_service_reloads():
    connection = FakeConnection({f"file:{SITE}": file_raw("server {}\n"), **NGINX_UP})
    run = converge(host_run(connection), [S.File(SITE, SITE_TEXT), NGINX])
    record = commands_of(planned(NGINX, NGINX_UP, [SITE]))[-1]
    assert record.startswith("mkdir -p /var/lib/halab/loaded && ")
    assert connection.commands[-3:] == [f"mv -f {SITE}.halab-new {SITE}", "systemctl reload nginx", record]
    assert "systemctl daemon-reload" not in connection.commands
    assert run.changed_paths == {SITE} and run.changed == 2


def test_changed_paths_of_an_earlier_step_in_the_same_run_reload_systemd():
    unit = "/etc/systemd/system/halab-hosts.service"
    service = S.Service("halab-hosts", restart_on=(unit,), can_reload=False)
    raw = {f"file:{unit}": file_raw("[Unit]\n"), "service:halab-hosts": "enabled active\n",
           "loaded:halab-hosts": loaded_raw()}
    connection = FakeConnection(raw)
    converge(host_run(connection), [S.File(unit, "[Unit]\nDescription=x\n"), service])
    assert connection.commands[2:4] == ["systemctl daemon-reload", "systemctl restart halab-hosts"]


# --- dry run ------------------------------------------------------------------------------------

def test_a_dry_run_acts_on_nothing_and_shows_a_diff_but_never_a_secret(capsys):
    steps = [S.File(SITE, SITE_TEXT), S.File(MOTD, MOTD_TEXT), S.File(KEY, KEY_TEXT, mode="600", secret=True),
             S.Command("migrate schema", "migrate", check_command="migrate --check", reports="schema:"),
             S.Command("clean", "apt-get clean"), NGINX]
    raw = {f"file:{SITE}": file_raw("server {\n    listen 8080;\n}\n"), f"file:{MOTD}": "",
           f"file:{KEY}": file_raw("an older key\n", "600 root root"), **NGINX_UP}
    connection = FakeConnection(raw, script=[("cat /etc/nginx", "server {\n    listen 8080;\n}\n", 0),
                                             ("migrate --check", "checking\nschema: changed (1 to apply)\n", 0)])
    run = converge(host_run(connection, dry_run=True), steps)
    assert connection.commands == [f"cat {SITE}", "migrate --check"]
    assert (run.changed, run.ok, run.failure) == (6, 0, "")
    assert run.changed_paths == {SITE, MOTD, KEY}
    out = capsys.readouterr().out
    assert "web1  | would change file /etc/nginx/sites-available/halab: written\n" in out
    assert "web1  | --- /etc/nginx/sites-available/halab (on host)\n" in out
    assert "web1  | +++ /etc/nginx/sites-available/halab (wanted)\n" in out
    assert "web1  | -    listen 8080;\n" in out and "web1  | +    listen 80 default_server;\n" in out
    assert "web1  | +welcome to web1\n" in out                      # created: all of it is new
    assert "web1  | (secret content: diff not shown)\n" in out
    assert "TOPSECRET" not in out and "older key" not in out
    assert "web1  | would change migrate schema: schema: changed (1 to apply)\n" in out
    assert "web1  | would change clean: ran\n" in out
    assert "web1  | would change service nginx: reload\n" in out


def test_a_dry_run_of_only_mode_or_owner_says_so_without_reading_the_file(capsys):
    connection = FakeConnection({f"file:{MOTD}": file_raw(MOTD_TEXT, "600 root root")})
    converge(host_run(connection, dry_run=True), [S.File(MOTD, MOTD_TEXT)])
    assert connection.commands == []
    assert "web1  | (mode or owner: now 600 root root)\n" in capsys.readouterr().out


def test_a_dry_run_probe_that_reports_ok_counts_ok(capsys):
    connection = FakeConnection({}, script=[("--check", "schema: ok\n", 0)])
    run = converge(host_run(connection, dry_run=True),
                   [S.Command("migrate schema", "migrate", check_command="migrate --check", reports="schema:")])
    assert connection.commands == ["migrate --check"]
    assert (run.ok, run.changed) == (1, 0) and capsys.readouterr().out == ""


def test_a_dry_run_does_not_gather_facts_again_after_packages():
    connection = FakeConnection({"packages:nginx": "", "apt_lists_fresh": "yes\n"})
    run = converge(host_run(connection, dry_run=True), [S.Packages(("nginx",))])
    assert connection.log == ["<facts>"] and run.changed == 1


# --- failures -----------------------------------------------------------------------------------

def test_a_failing_validate_removes_the_candidate_and_stops_the_host():
    cfg = "/etc/haproxy/haproxy.cfg"
    steps = [S.File(cfg, "global\n  bogus\n", validate="haproxy -c -f {path}"), S.User("haproxy", "/")]
    connection = FakeConnection({f"file:{cfg}": file_raw("global\n"), "user:haproxy": ""},
                                script=[("haproxy -c", ("", "[ALERT] config : parsing [line 2] : unknown 'bogus'"), 1)])
    run = converge(host_run(connection), steps)
    write = commands_of(planned(steps[0], {f"file:{cfg}": file_raw("global\n")}))[0]
    assert connection.commands == [write, f"haproxy -c -f {cfg}.halab-new", f"rm -f {cfg}.halab-new"]
    assert run.failure == (f"file {cfg}: the rendered file is invalid, {cfg} left as it was.\n"
                           f"`haproxy -c -f {cfg}.halab-new` said:\n"
                           f"[ALERT] config : parsing [line 2] : unknown 'bogus'")
    assert (run.changed, run.ok) == (0, 0)


def test_a_failing_service_appends_its_journal(capsys):
    connection = FakeConnection({"service:nginx": "enabled inactive\n", "loaded:nginx": loaded_raw()},
                                script=[("systemctl start", ("", "Job for nginx.service failed."), 1),
                                        ("journalctl -u nginx", "nginx[812]: bind() to 0.0.0.0:80 failed\n", 0)])
    run = converge(host_run(connection), [NGINX])
    assert connection.commands == ["systemctl start nginx", "journalctl -u nginx -n 15 --no-pager"]
    assert run.failure == ("service nginx: `systemctl start nginx` failed:\nJob for nginx.service failed.\n"
                           "nginx[812]: bind() to 0.0.0.0:80 failed")
    out = capsys.readouterr().out
    assert "web1  | FAILED       service nginx\n" in out and "web1  | nginx[812]: bind() to 0.0.0.0:80 failed\n" in out


def test_a_failing_command_names_itself_its_exit_code_and_the_hint():
    connection = FakeConnection({"packages:nginx": "", "apt_lists_fresh": ""},
                                script=[("apt-get update", ("", "Temporary failure resolving 'deb.debian.org'"), 100)])
    run = converge(host_run(connection), [S.Packages(("nginx",))])
    assert run.failure == ("packages nginx: `DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get update -q` "
                           "exited 100:\nTemporary failure resolving 'deb.debian.org'\n"
                           "  hint: the guest cannot reach its Debian mirror (see /etc/apt/sources.list)")
    assert len(connection.commands) == 1


def test_a_long_failing_command_is_shortened_or_shown_by_its_name():
    long = "echo " + "x" * 200
    run = converge(host_run(FakeConnection({}, script=[("echo", "", 2)])), [S.Command("long", long)])
    assert run.failure.startswith(f"long: `{long[:150]} ...` exited 2:")
    connection = FakeConnection({"packages:nginx": "", "apt_lists_fresh": "yes\n"},
                                script=[("apt-get install", "E: Unable to locate package nginx", 100)])
    run = converge(host_run(connection), [S.Packages(("nginx",))])
    assert run.failure.startswith("packages nginx: `apt-get install nginx` exited 100:\nE: Unable to locate")


def test_no_answer_within_the_timeout_is_a_failure_of_that_host(capsys):
    frozen = CommandTimedOut(Result(command="sudo -n sh -c 'x'"), timeout=30)
    run = converge(host_run(FakeConnection([frozen])), [S.User("halab", "/")])
    assert run.failure == "no answer within 30s (is the host frozen?)"
    assert "web1  | FAILED       no answer within 30s (is the host frozen?)\n" in capsys.readouterr().out


def test_an_action_that_times_out_stops_the_host():
    hung = CommandTimedOut(Result(command="apt-get"), timeout=900)
    connection = FakeConnection({"packages:nginx": "", "apt_lists_fresh": "yes\n", "user:halab": ""},
                                script=[("apt-get install", hung, 0)])
    run = converge(host_run(connection), [S.Packages(("nginx",)), S.User("halab", "/")])
    assert run.failure == "no answer within 900s (is the host frozen?)"
    assert not any("useradd" in c for c in connection.commands)


def test_any_other_exception_is_a_failure_naming_its_type():
    connection = FakeConnection({"user:halab": ""}, script=[("useradd", OSError("Socket is closed"), 0)])
    run = converge(host_run(connection), [S.User("halab", "/")])
    assert run.failure == "OSError: Socket is closed"
    assert run.seconds >= 0


def test_facts_that_sudo_refuses_are_a_failure():
    class Refusing(FakeConnection):
        def run(self, command, **kwargs):
            self.calls.append((command, kwargs))
            return Result(stderr="sudo: a password is required\n", exited=1, command=command)
    run = converge(host_run(Refusing()), [S.User("halab", "/")])
    assert run.failure == "RuntimeError: gathering facts failed (exit 1): sudo: a password is required"


# --- commands that report on themselves ----------------------------------------------------------

MIGRATE = S.Command("migrate schema", "migrate", reports="schema:")


def test_a_command_that_reports_ok_counts_ok(capsys):
    connection = FakeConnection({}, script=[("migrate", "0 migrations to apply\nschema: ok\n", 0)])
    run = converge(host_run(connection), [MIGRATE])
    assert connection.commands == ["migrate"]
    assert (run.ok, run.changed) == (1, 0) and capsys.readouterr().out == ""


def test_a_command_that_reports_changed_counts_changed_with_its_last_line(capsys):
    connection = FakeConnection({}, script=[("migrate", "applied 0002_tags\nschema: changed (1 applied)\n", 0)])
    run = converge(host_run(connection), [MIGRATE])
    assert (run.ok, run.changed) == (0, 1)
    assert capsys.readouterr().out == "web1  | changed      migrate schema: schema: changed (1 applied)\n"


def test_a_command_without_reports_always_counts_changed():
    run = converge(host_run(FakeConnection({}, script=[("apt-get clean", "schema: ok\n", 0)])),
                   [S.Command("clean", "apt-get clean")])
    assert (run.ok, run.changed) == (0, 1)


# --- facts refreshed, roles awaited ----------------------------------------------------------------

def test_facts_are_gathered_again_after_packages_install_files():
    conf = "/etc/nginx/nginx.conf"
    before = {"packages:nginx": "", "apt_lists_fresh": "yes\n", f"file:{conf}": ""}
    after = {"packages:nginx": "nginx=installed\n", "apt_lists_fresh": "yes\n", f"file:{conf}": file_raw("user www;\n")}
    connection = FakeConnection([before, after])
    run = converge(host_run(connection), [S.Packages(("nginx",)), S.File(conf, "user www;\n")])
    assert connection.log[0] == "<facts>" and connection.log[2] == "<facts>" and len(connection.log) == 3
    assert (run.changed, run.ok) == (1, 1)   # the file the package shipped is already as wanted


def test_await_waits_for_the_roles_between_the_steps_around_it():
    log = []
    connection = FakeConnection({"user:halab": ""}, log=log)
    run = converge(host_run(connection, wait_for_roles=lambda roles: log.append(("wait", roles))),
                   [S.User("halab", "/"), S.Await(("db",)), S.Command("migrate", "migrate")])
    assert log[1:] == [commands_of(planned(S.User("halab", "/"), {}))[0], ("wait", ("db",)), "migrate"]
    assert (run.ok, run.changed) == (0, 2)


def test_a_role_that_failed_elsewhere_fails_this_host_at_await():
    def db_failed(roles):
        raise LabError("db1 failed; not migrating against it", step="wait for db")
    connection = FakeConnection({})
    run = converge(host_run(connection, wait_for_roles=db_failed),
                   [S.Await(("db",)), S.Command("migrate", "migrate")])
    assert run.failure == "wait for db: db1 failed; not migrating against it"
    assert connection.commands == []


# --- HostRun.diff -------------------------------------------------------------------------------

def test_diff_of_a_secret_never_reads_the_file():
    connection = FakeConnection({})
    change = S.Change("file x", "written", path=KEY, content=KEY_TEXT, secret=True)
    assert host_run(connection).diff(change) == f"--- {KEY}\n+++ {KEY}\n(secret content: diff not shown)\n"
    assert connection.calls == []


# --- templates ---------------------------------------------------------------------------------

BROKEN = "# line 1\n# line 2\n{{ nope.x }}\n# line 4\n# line 5\n# line 6\n"


def override(tmp_path, monkeypatch, text, name="common/hosts.j2"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    monkeypatch.setenv("HALAB_TEMPLATES", str(tmp_path))


def test_a_template_that_fails_shows_its_line(tmp_path, monkeypatch):
    override(tmp_path, monkeypatch, BROKEN)
    with pytest.raises(LabError) as caught:
        render("common/hosts.j2", {"host": type("Host", (), {"name": "lb1"})()})
    error = caught.value
    assert error.problem == ("template common/hosts.j2 (line 3): 'nope' is undefined\n"
                             "     1 | # line 1\n     2 | # line 2\n>    3 | {{ nope.x }}\n"
                             "     4 | # line 4\n     5 | # line 5")
    assert error.fix == "fix the template; nothing was changed"
    assert error.host == "lb1"


def test_a_template_syntax_error_shows_its_line(tmp_path, monkeypatch):
    override(tmp_path, monkeypatch, "a\n{% for x in %}\n{% endfor %}\n")
    with pytest.raises(LabError, match=r"\(line 2\): .*\n     1 \| a\n>    2 \| \{% for x in %\}"):
        render("common/hosts.j2", {})


def test_an_override_folder_replaces_only_the_templates_it_has(tmp_path, monkeypatch):
    override(tmp_path, monkeypatch, "overridden {{ host }}\n")
    assert render("common/hosts.j2", {"host": "lb1"}) == "overridden lb1\n"
    with pytest.raises(LabError, match=r"template common/motd.j2 .*undefined"):
        render("common/motd.j2", {})   # the shipped one, still found


def test_a_failing_template_fails_its_host_in_converge(tmp_path, monkeypatch):
    override(tmp_path, monkeypatch, BROKEN)
    connection = FakeConnection({"file:/etc/hosts": ""})
    run = converge(host_run(connection), [S.Template("/etc/hosts", template="common/hosts.j2")])
    assert run.failure.startswith("template common/hosts.j2 (line 3): 'nope' is undefined\n")
    assert connection.commands == []


def test_a_relative_override_folder_still_shows_the_line(tmp_path, monkeypatch):
    override(tmp_path / "mine", monkeypatch, BROKEN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HALAB_TEMPLATES", "mine")
    with pytest.raises(LabError, match=r">    3 \| \{\{ nope.x \}\}"):
        render("common/hosts.j2", {})


def test_excerpt_numbers_the_lines_around_and_marks_the_one():
    source = "one\ntwo\nthree\nfour\nfive\nsix\n"
    assert excerpt(source, 3) == "     1 | one\n     2 | two\n>    3 | three\n     4 | four\n     5 | five"
    assert excerpt(source, 1) == ">    1 | one\n     2 | two\n     3 | three"
    assert excerpt(source, 6, around=1) == "     5 | five\n>    6 | six"


def test_a_host_ssh_cannot_reach_or_lost_is_a_failure_that_says_what_to_do():
    for gone in (TimeoutError("timed out"), ConnectionResetError("Connection reset by peer")):
        connection = FakeConnection({"user:halab": ""}, script=[("useradd", gone, 0)])
        run = converge(host_run(connection), [S.User("halab", "/")])
        assert run.failure.startswith(f"SSH could not reach the host or lost it ({type(gone).__name__}: ")
        assert "`invoke up` starts it" in run.failure
