"""fabfile/machines/vagrant.py, python-vagrant wrapped once, against a fake `vagrant`.

python-vagrant 1.0.0 finds its executable with `get_vagrant_executable()`, a `which("vagrant")`
over os.environ's PATH, when a client first runs a command. Here PATH holds only a folder in
tmp_path with a small shell script named `vagrant` that records its arguments and prints and
exits as each test says: the real Vagrant is never run.

The pins: fabfile/machines/vagrant.py runs `vagrant snapshot ...` and `vagrant validate`
through python-vagrant's private runners; it relies on `_run_vagrant_command` returning
stdout as str and both runners raising CalledProcessError on a non-zero exit (python-vagrant's
main branch stopped raising from them). If an upgrade changes that, these tests say so."""
import os
import subprocess

import pytest
import vagrant as python_vagrant

import fabfile.core.state as state
from fabfile.core.config import PROJECT_DIR
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from fabfile.machines.vagrant import VAGRANT_INSTALL_FIX, Vagrant
from tests.unit.test_lab import GOOD

FAKE_VAGRANT = r"""#!/bin/sh
dir=${0%/*}
printf '%s\n' "$*" >> "$dir/calls"
printf '%s|%s|%s|%s|%s\n' "$PWD" "$LAB_FILE" "$VAGRANT_NO_COLOR" "$VAGRANT_DOTFILE_PATH" \
    "$VAGRANT_DEFAULT_PROVIDER" > "$dir/environment"
if [ -f "$dir/stdout" ]; then
    while IFS= read -r line; do printf '%s\n' "$line"; done < "$dir/stdout"
fi
if [ -f "$dir/stderr" ]; then
    while IFS= read -r line; do printf '%s\n' "$line" >&2; done < "$dir/stderr"
fi
code=0
if [ -f "$dir/exit" ]; then read code < "$dir/exit"; fi
exit "$code"
"""


class FakeVagrantExe:
    """The fake executable's folder: what it will print and return, and what it was asked."""

    def __init__(self, folder):
        self.folder = folder
        self.path = folder / "vagrant"
        self.path.write_text(FAKE_VAGRANT)
        self.path.chmod(0o755)

    def answer(self, stdout="", stderr="", code=0):
        for name, text in (("stdout", stdout), ("stderr", stderr)):
            (self.folder / name).write_text(text)
        (self.folder / "exit").write_text(f"{code}\n")

    @property
    def calls(self):
        path = self.folder / "calls"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def environment(self):
        return (self.folder / "environment").read_text().rstrip("\n").split("|")


@pytest.fixture
def fake_vagrant(monkeypatch, tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))  # only the fake: the real Vagrant cannot be found
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    monkeypatch.delenv("HALAB_DEBUG", raising=False)
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "state")
    return FakeVagrantExe(folder)


@pytest.fixture
def lab():
    return parse_lab(GOOD)


# --- python-vagrant's runners: the behaviour the wrapper relies on --------------------------------

def test_python_vagrant_finds_vagrant_on_path(fake_vagrant):
    assert python_vagrant.get_vagrant_executable() == str(fake_vagrant.path)


def test_run_vagrant_command_returns_stdout_as_str(fake_vagrant):
    fake_vagrant.answer(stdout="==> lb1: \nbare\n", stderr="a warning\n")
    client = python_vagrant.Vagrant(root=PROJECT_DIR, quiet_stderr=True)
    out = client._run_vagrant_command(["snapshot", "list", None, "lb1"])
    assert out == "==> lb1: \nbare\n" and isinstance(out, str)
    assert fake_vagrant.calls == ["snapshot list lb1"], "None arguments are left out"


def test_run_vagrant_command_raises_on_a_non_zero_exit(fake_vagrant):
    fake_vagrant.answer(stdout="partial\n", code=3)
    client = python_vagrant.Vagrant(root=PROJECT_DIR)
    with pytest.raises(subprocess.CalledProcessError) as caught:
        client._run_vagrant_command(["validate"])
    assert caught.value.returncode == 3


def test_call_vagrant_command_returns_none_and_raises_on_a_non_zero_exit(fake_vagrant):
    fake_vagrant.answer(stdout="saved\n")
    client = python_vagrant.Vagrant(root=PROJECT_DIR)
    assert client._call_vagrant_command(["snapshot", "save", "lb1", "bare"]) is None
    fake_vagrant.answer(stderr="boom\n", code=1)
    with pytest.raises(subprocess.CalledProcessError) as caught:
        client._call_vagrant_command(["snapshot", "save", "lb1", "bare"])
    assert caught.value.returncode == 1


def test_stream_raises_on_a_non_zero_exit_after_the_lines(fake_vagrant):
    fake_vagrant.answer(stdout="==> lb1: one\n==> lb1: two\n", code=2)
    client = python_vagrant.Vagrant(root=PROJECT_DIR)
    lines = []
    with pytest.raises(subprocess.CalledProcessError):
        for line in client.up(vm_name="lb1", stream_output=True):
            lines.append(line)
    assert lines == ["==> lb1: one\n", "==> lb1: two\n"]


def test_no_vagrant_on_path_is_a_runtime_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError):
        python_vagrant.Vagrant(root=PROJECT_DIR)._run_vagrant_command(["--version"])


# --- the wrapper ---------------------------------------------------------------------------------------

def test_the_wrapper_runs_vagrant_in_the_project_with_the_labs_environment(fake_vagrant, lab, tmp_path):
    fake_vagrant.answer(stdout="Vagrant 2.4.1\n")
    vagrant = Vagrant(lab, provider="docker")
    assert vagrant.version() == "2.4.1"
    cwd, lab_file, no_color, dotfile, provider = fake_vagrant.environment
    assert os.path.realpath(cwd) == os.path.realpath(PROJECT_DIR)
    assert (lab_file, no_color, provider) == ("lab.yml", "1", "docker")
    assert dotfile == str(tmp_path / "state" / "halab" / "vagrant")
    assert [verb for verb, seconds in vagrant.calls] == ["version"]


def test_snapshot_list_and_validate_return_vagrants_output(fake_vagrant, lab):
    fake_vagrant.answer(stdout="==> lb1: \nbare\n")
    vagrant = Vagrant(lab)
    assert vagrant.snapshot("list", None) == "==> lb1: \nbare\n"
    fake_vagrant.answer(stdout="Vagrantfile validated successfully.\n")
    assert vagrant.validate() == "Vagrantfile validated successfully.\n"
    assert fake_vagrant.calls == ["snapshot list", "validate"]
    assert fake_vagrant.environment[4] == "", "no provider unless the lab has one"


def test_snapshot_verbs_name_machines_in_one_argument(fake_vagrant, lab):
    fake_vagrant.answer()
    vagrant = Vagrant(lab)
    assert vagrant.snapshot("save", ["web1", "db1"], "bare", force=True) is None
    vagrant.snapshot("restore", ["lb1"], "bare")
    vagrant.snapshot("delete", None, "old")
    assert fake_vagrant.calls == ["snapshot save --force /^(web1|db1)$/ bare",
                                  "snapshot restore lb1 bare --no-provision",
                                  "snapshot delete old"]


def test_status_ssh_config_halt_destroy(fake_vagrant, lab):
    fake_vagrant.answer(stdout="1,lb1,provider-name,docker\n1,lb1,state,running\n"
                               "1,db1,provider-name,docker\n1,db1,state,not_created\n")
    vagrant = Vagrant(lab)
    assert [(s.name, s.state, s.provider) for s in vagrant.status()] == [
        ("lb1", "running", "docker"), ("db1", "not_created", "docker")]
    fake_vagrant.answer(stdout="Host lb1\n  HostName 127.0.0.1\n")
    assert vagrant.ssh_config(["lb1"]) == "Host lb1\n  HostName 127.0.0.1\n"
    fake_vagrant.answer()
    vagrant.halt(["lb1", "lb2"], force=True)
    vagrant.destroy()
    assert fake_vagrant.calls == ["status --machine-readable", "ssh-config lb1",
                                  "halt /^(lb1|lb2)$/ --force", "destroy --force"]
    assert [verb for verb, _ in vagrant.calls] == ["status", "ssh-config", "halt", "destroy"]


def test_up_streams_vagrants_lines(fake_vagrant, lab):
    fake_vagrant.answer(stdout="Bringing machine 'lb1' up\n==> lb1: Creating\n")
    vagrant = Vagrant(lab)
    assert list(vagrant.up(["lb1", "lb2"], "docker")) == ["Bringing machine 'lb1' up\n", "==> lb1: Creating\n"]
    assert fake_vagrant.calls == ["up /^(lb1|lb2)$/ --no-provision --provider=docker"]
    assert [verb for verb, _ in vagrant.calls] == ["up"]


def test_a_failing_up_says_what_vagrant_said(fake_vagrant, lab):
    fake_vagrant.answer(stdout="==> web1: Creating\n", stderr="The container name is in use.\n", code=1)
    vagrant = Vagrant(lab)
    lines = vagrant.up(["web1"], "docker")
    assert next(lines) == "==> web1: Creating\n"
    with pytest.raises(LabError) as caught:
        list(lines)
    assert "`vagrant up` failed for web1 (exit 1)" in str(caught.value)
    assert "The container name is in use." in str(caught.value)


def test_a_failure_is_a_lab_error_with_vagrants_last_stderr_lines_and_a_fix(fake_vagrant, lab):
    vagrant = Vagrant(lab)
    fake_vagrant.answer(stderr="first failure\n", code=1)
    with pytest.raises(LabError):
        vagrant.halt(["lb1"])
    fake_vagrant.answer(stderr="".join(f"line {n}\n" for n in range(20)), code=7)
    with pytest.raises(LabError) as caught:
        vagrant.snapshot("save", ["lb1", "lb2"], "bare")
    message = caught.value.problem
    assert message.startswith("`vagrant snapshot save` failed for lb1, lb2 (exit 7). Vagrant said:")
    assert "line 19" in message and "line 8" in message and "line 7" not in message, "the last 12 lines"
    assert "first failure" not in message, "only the failing call's stderr"
    assert "invoke doctor" in caught.value.fix
    fake_vagrant.answer(code=1)
    with pytest.raises(LabError) as caught:
        vagrant.destroy()
    assert "failed for the lab (exit 1)" in str(caught.value) and "(nothing on stderr)" in str(caught.value)
    assert len(vagrant.calls) == 3, "failed calls are counted too"


def test_no_vagrant_is_a_lab_error_that_says_how_to_install_it(monkeypatch, tmp_path, lab):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "state")
    with pytest.raises(LabError) as caught:
        Vagrant(lab).status()
    assert str(caught.value).startswith("Vagrant is not available: ")
    assert caught.value.fix == VAGRANT_INSTALL_FIX


# python-vagrant raises RuntimeError only once `up`'s generator is consumed, inside
# Vagrant._stream: it must become the same LabError as for every other verb.
def test_up_without_vagrant_is_a_lab_error_too(monkeypatch, tmp_path, lab):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path / "state")
    with pytest.raises(LabError, match="Vagrant is not available"):
        list(Vagrant(lab).up(["lb1"], "docker"))


def test_debug_prints_each_call_and_its_duration(fake_vagrant, lab, monkeypatch, capsys):
    monkeypatch.setenv("HALAB_DEBUG", "1")
    fake_vagrant.answer(stdout="Host lb1\n")
    vagrant = Vagrant(lab)
    vagrant.ssh_config(["lb1", "web1"])
    vagrant.ssh_config()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[vagrant] ssh-config lb1 web1: ") and err[0].endswith("s")
    assert err[1].startswith("[vagrant] ssh-config all: ")
