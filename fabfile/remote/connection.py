"""SSH endpoints (parsed from `vagrant ssh-config` text) and Fabric connections to them."""
import socket
import threading
from dataclasses import dataclass

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from ..core.errors import LabError

CONNECT_TIMEOUT = 10
KEEPALIVE_S = 5  # an SSH keepalive every 5 s: a host that stopped answering is noticed


@dataclass(frozen=True)
class Endpoint:
    host: str
    hostname: str
    port: int
    user: str
    identity_files: tuple


def parse_ssh_config(text, hosts):
    """Endpoints of `hosts` found in ssh-config `text` (as `vagrant ssh-config` prints it)."""
    config = paramiko.SSHConfig.from_text(text)
    declared = config.get_hostnames()
    endpoints = {}
    for host in hosts:
        if host not in declared:
            continue
        entry = config.lookup(host)
        endpoints[host] = Endpoint(host=host, hostname=entry.get("hostname", host),
                                   port=int(entry.get("port", 22)), user=entry.get("user", "vagrant"),
                                   identity_files=tuple(entry.get("identityfile", [])))
    return endpoints


def split_host_blocks(text):
    """{host: its `Host` block} of an ssh-config text, in order."""
    blocks, current = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("Host "):
            current = line.split()[1]
            blocks[current] = ""
        if current:
            blocks[current] += line
    return {name: block if block.endswith("\n\n") else block.rstrip("\n") + "\n\n"
            for name, block in blocks.items()}


_keys = {}
_keys_lock = threading.Lock()


def private_key(path):
    """Each key file parsed once, before any thread connects: paramiko's guessing of a
    key's type from a file, done in many threads at once, fails now and then."""
    with _keys_lock:
        if path not in _keys:
            try:
                _keys[path] = paramiko.PKey.from_path(path)
            except (OSError, ValueError, paramiko.SSHException) as exc:  # cryptography: ValueError
                raise LabError(f"cannot read the SSH key {path}: {exc}",
                               "run `invoke up` again; Vagrant writes a key per machine") from None
        return _keys[path]


@dataclass
class InputResult:
    """What a command fed on standard input said, shaped like Fabric's Result."""
    stdout: str
    stderr: str
    exited: int


class LabConnection(Connection):
    """A Fabric connection that sends SSH keepalives once it is open, and can feed a
    command its standard input at the network's speed."""

    def open(self):
        result = super().open()
        transport = self.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_S)
        return result

    def fresh(self, connect_timeout=CONNECT_TIMEOUT):
        """A new, open connection to the same endpoint: proof that one still gets in."""
        connection = LabConnection(host=self.host, port=self.port, user=self.user,
                                   connect_timeout=connect_timeout, config=self.config,
                                   connect_kwargs=dict(self.connect_kwargs, banner_timeout=connect_timeout,
                                                       auth_timeout=connect_timeout))
        connection.open()
        return connection

    def run_input(self, command, data, timeout):
        """Run `command` with `data` (bytes) on its standard input, then end of input.
        Fabric's own stdin forwarding is made for typing (a byte every 10 ms); this is
        for files. Raises CommandTimedOut when the command is not done within `timeout`."""
        self.open()
        channel = self.client.get_transport().open_session(timeout=timeout)
        try:
            channel.settimeout(timeout)
            channel.exec_command(command)
            channel.sendall(data)
            channel.shutdown_write()
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            return InputResult(stdout, stderr, channel.recv_exit_status())
        except socket.timeout:
            raise CommandTimedOut(InputResult("", "", -1), timeout) from None
        finally:
            channel.close()


def connect(endpoint, connect_timeout=CONNECT_TIMEOUT):
    # An empty SSHConfig: the endpoint is the whole truth, ~/.ssh/config is not consulted.
    config = Config(ssh_config=paramiko.SSHConfig(), overrides={"run": {"in_stream": False}})
    return LabConnection(host=endpoint.hostname, port=endpoint.port, user=endpoint.user,
                         connect_timeout=connect_timeout, config=config,
                         connect_kwargs={"pkey": private_key(endpoint.identity_files[0]),
                                         "look_for_keys": False, "allow_agent": False})
