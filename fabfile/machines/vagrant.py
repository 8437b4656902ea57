"""python-vagrant, wrapped once: our messages on failure, a count of the (slow) CLI calls."""
import contextlib
import os
import subprocess
import sys
import tempfile
import time

import vagrant as python_vagrant

from ..core import config
from ..core.config import PROJECT_DIR
from ..core.errors import LabError
from ..core.state import vagrant_dotfile_dir

VAGRANT_INSTALL_FIX = "install Vagrant: scripts/setup.sh (Debian/Ubuntu) or https://developer.hashicorp.com/vagrant"


class Vagrant:
    """The Vagrant verbs the lab uses. Each call costs about a second; `calls` counts them."""

    def __init__(self, lab, provider=None):
        self.lab = lab
        env = dict(os.environ, LAB_FILE=str(lab.path), VAGRANT_NO_COLOR="1",
                   VAGRANT_DOTFILE_PATH=str(vagrant_dotfile_dir(lab)))
        if provider:  # the lab's provider, for the machines Vagrant has not created yet
            env["VAGRANT_DEFAULT_PROVIDER"] = provider
        self._stderr = tempfile.TemporaryFile()
        self._client = python_vagrant.Vagrant(
            root=PROJECT_DIR, env=env, quiet_stdout=True,
            err_cm=self._stderr_cm)
        self.calls = []

    def _stderr_cm(self):
        self._stderr.seek(0)
        self._stderr.truncate()
        return _KeepOpen(self._stderr)

    def _last_stderr(self):
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    @contextlib.contextmanager
    def _translated(self, verb, hosts):
        """Vagrant's failures as our LabErrors; every call counted and, with HALAB_DEBUG, timed."""
        started = time.monotonic()
        try:
            yield
        except subprocess.CalledProcessError as exc:
            raise self._error(verb, hosts, exc.returncode) from None
        except RuntimeError as exc:  # python-vagrant: "vagrant executable not found"
            raise LabError(f"Vagrant is not available: {exc}", VAGRANT_INSTALL_FIX) from None
        finally:
            self.calls.append((verb, time.monotonic() - started))
            if config.current().debug:
                print(f"[vagrant] {verb} {' '.join(hosts) or 'all'}: "
                      f"{time.monotonic() - started:.2f}s", file=sys.stderr)

    def _call(self, verb, hosts, func, *args, **kwargs):
        with self._translated(verb, hosts):
            return func(*args, **kwargs)

    def _error(self, verb, hosts, code):
        said = self._last_stderr() or "(nothing on stderr)"
        said = "\n    ".join(said.splitlines()[-12:])
        target = ", ".join(hosts) if hosts else "the lab"
        return LabError(f"`vagrant {verb}` failed for {target} (exit {code}). Vagrant said:\n    {said}",
                        "read Vagrant's message above; `invoke doctor` checks the usual causes")

    @staticmethod
    def machine_pattern(hosts):
        """One Vagrant argument that names several machines: Vagrant accepts /regex/."""
        if not hosts:
            return None
        if len(hosts) == 1:
            return hosts[0]
        return "/^(" + "|".join(hosts) + ")$/"

    def up(self, hosts, provider):
        """Boot hosts; yields Vagrant's output lines as they come."""
        lines = self._client.up(vm_name=self.machine_pattern(hosts), provider=provider,
                                no_provision=True, stream_output=True)
        return self._stream("up", hosts, lines)

    def _stream(self, verb, hosts, lines):
        with self._translated(verb, hosts):
            yield from lines

    def status(self):
        return self._call("status", [], self._client.status)

    def ssh_config(self, hosts=None):
        return self._call("ssh-config", hosts or [], self._client.ssh_config, vm_name=self.machine_pattern(hosts))

    def _command(self, args, output):
        """The verbs python-vagrant has no public method for with our arguments (snapshots
        of some machines, validate with our environment) go through its private runners,
        here and only here; tests/unit/test_vagrant_wrapper.py pins their behaviour
        (python-vagrant's main branch stopped raising from them)."""
        runner = self._client._run_vagrant_command if output else self._client._call_vagrant_command
        return runner(args)

    def halt(self, hosts, force=False):
        return self._call("halt", hosts, self._client.halt,
                          vm_name=self.machine_pattern(hosts), force=force)

    def destroy(self, hosts=None):
        return self._call("destroy", hosts or [], self._client.destroy,
                          vm_name=self.machine_pattern(hosts))

    def snapshot(self, action, hosts, name=None, force=False):
        """`vagrant snapshot ACTION [machines] [NAME]`: save, restore, delete or list."""
        args = ["snapshot", action, "--force" if force else None, self.machine_pattern(hosts), name]
        if action == "restore":
            args.append("--no-provision")
        return self._call(f"snapshot {action}", hosts or [], self._command, args, output=action == "list")

    def validate(self):
        return self._call("validate", [], self._command, ["validate"], output=True)

    def version(self):
        return self._call("version", [], self._client.version)


class _KeepOpen:
    """A context manager that hands out a file without closing it afterwards."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self.handle

    def __exit__(self, *exc):
        self.handle.flush()
        return False
