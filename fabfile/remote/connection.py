"""SSH endpoints (parsed from `vagrant ssh-config` text) and Fabric connections to them."""
import base64
import binascii
import hashlib
import socket
import threading
from dataclasses import dataclass

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from ..core.errors import LabError

CONNECT_TIMEOUT = 10
KEEPALIVE_S = 5  # an SSH keepalive every 5 s: a host that stopped answering is noticed

# How many times slower than a container the lab's hosts answer: 1 on docker, VirtualBox
# and KVM; more for VMs under QEMU's software emulation. The machines layer sets it from
# the lab's provider; every command, facts round trip and connect timeout is scaled by it.
_slowness = 1.0


def set_slowness(factor):
    global _slowness
    _slowness = max(1.0, float(factor))


def scaled(seconds):
    """A timeout sized for the lab's hosts (None stays None: no timeout)."""
    return None if seconds is None else seconds * _slowness


@dataclass(frozen=True)
class Endpoint:
    host: str
    hostname: str
    port: int
    user: str
    identity_files: tuple
    host_key: str = ""  # "keytype base64", recorded when the host was created; "" when unknown

    def known_as(self):
        """The name paramiko looks the host key up by: the address, with the port unless 22."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


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
    """A Fabric connection that checks the host's key strictly, sends SSH keepalives once
    it is open, and can feed a command its standard input at the network's speed."""

    lab_host = ""  # the host's name in the lab, for messages

    def run(self, command, **kwargs):
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = scaled(kwargs["timeout"])
        return super().run(command, **kwargs)

    def sudo(self, command, **kwargs):
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = scaled(kwargs["timeout"])
        return super().sudo(command, **kwargs)

    def open(self):
        if not self.is_connected and not len(self.client.get_host_keys()):
            raise LabError("no SSH host key is recorded for it",
                           f"record it: invoke up --hosts {self.lab_host} (the lab keeps its "
                           "hosts' keys in .lab/<lab>/known_hosts)", host=self.lab_host)
        try:
            result = super().open()
        except paramiko.BadHostKeyException:
            raise LabError(
                f"its SSH host key at {self.host} is not the one recorded when it was created: "
                "another machine answers there, or the host was re-created outside the lab's "
                "commands",
                f"if you re-created {self.lab_host} yourself, record its new key: "
                f"invoke reset --recreate --hosts {self.lab_host} (or destroy it and run "
                "invoke up); otherwise find out what answers at that address",
                host=self.lab_host) from None
        transport = self.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_S)
        return result

    def fresh(self, connect_timeout=CONNECT_TIMEOUT):
        """A new, open connection to the same endpoint: proof that one still gets in."""
        connection = self.sibling(connect_timeout)
        connection.open()
        return connection

    def sibling(self, connect_timeout=CONNECT_TIMEOUT):
        """A new connection (not yet open) to the same endpoint, with the same strict host
        key check."""
        connection = LabConnection(host=self.host, port=self.port, user=self.user,
                                   connect_timeout=connect_timeout, config=self.config,
                                   connect_kwargs=dict(self.connect_kwargs, banner_timeout=connect_timeout,
                                                       auth_timeout=connect_timeout))
        connection.lab_host = self.lab_host
        for name, keys in self.client.get_host_keys().items():
            for key_type, key in keys.items():
                connection.client.get_host_keys().add(name, key_type, key)
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return connection

    def run_input(self, command, data, timeout):
        """Run `command` with `data` (bytes) on its standard input, then end of input.
        Fabric's own stdin forwarding is made for typing (a byte every 10 ms); this is
        for files. Raises CommandTimedOut when the command is not done within `timeout`."""
        self.open()
        timeout = scaled(timeout)
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


# What a host that is stopped, killed or cut off raises: at connect, or when it drops.
UNREACHABLE = (TimeoutError, ConnectionError, paramiko.ssh_exception.NoValidConnectionsError)


def failure_text(exc):
    """How an exception reads as a host's failure; one that says SSH could not reach the
    host, or lost it, also says what to do."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, UNREACHABLE):
        return (f"SSH could not reach the host or lost it ({text}): is it running? "
                "`invoke status` tells, `invoke up` starts it")
    return text


def parse_host_key(line):
    """A paramiko key from "keytype base64 [comment]" (a .pub file or a known-hosts entry)."""
    fields = line.split()
    try:
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
    except (IndexError, ValueError, binascii.Error, paramiko.SSHException) as exc:
        raise LabError(f"not an SSH public key: {line[:60]!r} ({exc})",
                       "run `invoke up` again to record the host's key") from None


def connect(endpoint, connect_timeout=CONNECT_TIMEOUT):
    """A connection that accepts only the host key recorded for the endpoint's host (it
    refuses to open when none is recorded)."""
    # An empty SSHConfig: the endpoint is the whole truth, ~/.ssh/config is not consulted.
    config = Config(ssh_config=paramiko.SSHConfig(), overrides={"run": {"in_stream": False}})
    connection = LabConnection(host=endpoint.hostname, port=endpoint.port, user=endpoint.user,
                               connect_timeout=scaled(connect_timeout), config=config,
                               connect_kwargs={"pkey": private_key(endpoint.identity_files[0]),
                                               "look_for_keys": False, "allow_agent": False})
    connection.lab_host = endpoint.host
    if endpoint.host_key:
        connection.client.get_host_keys().add(endpoint.known_as(), *_type_and_key(endpoint.host_key))
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return connection


def _type_and_key(line):
    key = parse_host_key(line)
    return key.get_name(), key


def fingerprint(line):
    """OpenSSH's SHA256 fingerprint of "keytype base64", as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(base64.b64decode(line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def scan_host_key(endpoint, timeout=CONNECT_TIMEOUT):
    """The host key an SSH server presents ("keytype base64"), trusted on first use: for
    providers without a channel to the guest beside the network, right after creation."""
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port), timeout=timeout) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=timeout)
                key = transport.get_remote_server_key()
                return f"{key.get_name()} {key.get_base64()}"
            finally:
                transport.close()
    except (OSError, paramiko.SSHException) as exc:
        raise LabError(f"could not read {endpoint.host}'s SSH host key at {endpoint.hostname}: {exc}",
                       "run `invoke up` again: it records the keys it lacks", host=endpoint.host) from None
