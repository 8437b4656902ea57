"""remote: commands on many hosts (parallel) and the Fabric connections (connection), with
fake connections and a key generated in tmp_path: no SSH is opened."""
import threading
from types import SimpleNamespace

import paramiko
import pytest
from fabric import Connection

import fabfile.remote.connection as connection
from fabfile.core.errors import LabError
from fabfile.remote.connection import KEEPALIVE_S, Endpoint, LabConnection, connect, private_key
from fabfile.remote.parallel import HostResult, echo_result, failure_summary, run_one, run_parallel


class FakeConnection:
    def __init__(self, exited=0, stdout="", stderr="", error=None, barrier=None):
        self.exited, self.stdout, self.stderr, self.error = exited, stdout, stderr, error
        self.barrier = barrier
        self.calls = []

    def _answer(self, how, command, kwargs):
        self.calls.append((how, command, kwargs))
        if self.barrier:
            self.barrier.wait(timeout=5)  # every host runs at once, or this times out
        if self.error:
            raise self.error
        return SimpleNamespace(exited=self.exited, stdout=self.stdout, stderr=self.stderr)

    def run(self, command, **kwargs):
        return self._answer("run", command, kwargs)

    def sudo(self, command, **kwargs):
        return self._answer("sudo", command, kwargs)


# --- parallel -------------------------------------------------------------------------------------------

def test_run_one_returns_what_the_host_said():
    host = FakeConnection(exited=3, stdout="out\n", stderr="err\n")
    assert run_one("web1", host, "false", timeout=7) == HostResult("web1", 3, "out\n", "err\n")
    assert host.calls == [("run", "false", {"hide": True, "warn": True, "timeout": 7, "in_stream": False})]
    run_one("web1", host, "id", sudo=True)
    assert host.calls[-1][0] == "sudo"


def test_run_one_reports_an_unreachable_host_instead_of_raising():
    result = run_one("db1", FakeConnection(error=paramiko.ssh_exception.NoValidConnectionsError(
        {("127.0.0.1", 2222): ConnectionRefusedError("refused")})), "true")
    assert result.host == "db1" and result.exit_code == -1 and not result.ok
    assert result.error.startswith("NoValidConnectionsError: ")
    assert run_one("db1", FakeConnection(error=TimeoutError()), "true").error == "TimeoutError:"


def test_a_timed_out_run_without_an_exit_status_reads_as_no_answer(monkeypatch):
    """Invoke's timer kills the command; when the run ends before the timer's thread, it
    returns exit -1 instead of raising CommandTimedOut (seen with a frozen container)."""
    from fabfile.remote import parallel
    clock = iter([100.0, 110.5])
    monkeypatch.setattr(parallel.time, "monotonic", lambda: next(clock))
    result = run_one("db1", FakeConnection(exited=-1), "sleep 5", timeout=10)
    assert result.error == "no answer within 10s (is the host frozen?)" and not result.ok
    clock = iter([100.0, 101.0])
    assert run_one("db1", FakeConnection(exited=-1), "true", timeout=10).error == ""  # too soon: not a timeout


def test_host_result_ok():
    assert HostResult("a", 0).ok
    assert not HostResult("a", 1).ok
    assert not HostResult("a", 0, error="boom").ok


def test_run_parallel_runs_every_host_at_once_and_keeps_lab_order(capsys):
    barrier = threading.Barrier(3)
    connections = {"lb1": FakeConnection(stdout="one\n", barrier=barrier),
                   "lb2": FakeConnection(exited=1, stderr="two\n", barrier=barrier),
                   "web1": FakeConnection(error=OSError("no route"), barrier=barrier)}
    results = run_parallel(connections, "hostname", sudo=True, timeout=5)
    assert list(results) == ["lb1", "lb2", "web1"]
    assert results["lb1"].ok and results["lb2"].exit_code == 1
    assert results["web1"].error == "OSError: no route"
    out = capsys.readouterr().out
    assert "lb1   | one\n" in out and "lb2   | two\n" in out and "web1  | unreachable: OSError: no route\n" in out


def test_run_parallel_quietly_and_with_no_hosts(capsys):
    assert run_parallel({"lb1": FakeConnection(stdout="x\n")}, "true", echo=False)["lb1"].ok
    assert run_parallel({}, "true") == {}
    assert capsys.readouterr().out == ""


def test_echo_result_skips_empty_output(capsys):
    echo_result(HostResult("lb1", 0, "  \n", ""))
    echo_result(HostResult("lb1", 0, "a\nb\n\n", "warn\n"))
    assert capsys.readouterr().out == "lb1   | a\nlb1   | b\nlb1   | warn\n"


def test_failure_summary():
    results = {"lb1": HostResult("lb1", 0), "lb2": HostResult("lb2", 1),
               "web1": HostResult("web1", -1, error="OSError: x"),
               "db1": HostResult("db1", -1, error="not running")}
    assert failure_summary(results) == "lb2 (exit 1), web1 (unreachable), db1 (not running)"
    assert failure_summary({"lb1": HostResult("lb1", 0)}) == ""


# --- connection --------------------------------------------------------------------------------------------

@pytest.fixture
def key_file(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    monkeypatch.setattr(connection, "_keys", {})  # a cache of this test's own
    path = tmp_path / "private_key"
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    path.chmod(0o600)
    return str(path)


def host_key_line():
    """A fresh ed25519 public key as "ssh-ed25519 base64", the way known_hosts holds it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


HOST_KEY = host_key_line()


def endpoint(key, port=2222, host_key=HOST_KEY):
    return Endpoint(host="lb1", hostname="127.0.0.1", port=port, user="vagrant", identity_files=(key,),
                    host_key=host_key)


def test_connect_makes_a_keepalive_connection_from_the_endpoint_alone(key_file):
    conn = connect(endpoint(key_file), connect_timeout=3)
    assert isinstance(conn, LabConnection) and not conn.is_connected
    assert (conn.host, conn.port, conn.user, conn.connect_timeout) == ("127.0.0.1", 2222, "vagrant", 3)
    assert isinstance(conn.connect_kwargs["pkey"], paramiko.Ed25519Key)
    assert conn.connect_kwargs["look_for_keys"] is False and conn.connect_kwargs["allow_agent"] is False
    assert dict(conn.ssh_config) == {"hostname": "127.0.0.1"}, "nothing from ~/.ssh/config"
    assert conn.config.run.in_stream is False


def test_the_key_file_is_read_once(key_file, monkeypatch):
    reads = []
    real = paramiko.PKey.from_path
    monkeypatch.setattr(paramiko.PKey, "from_path", lambda path: reads.append(path) or real(path))
    first = connect(endpoint(key_file))
    second = connect(endpoint(key_file, port=2200))
    assert reads == [key_file]
    assert first.connect_kwargs["pkey"] is second.connect_kwargs["pkey"] is private_key(key_file)


def test_an_unreadable_key_is_a_lab_error(tmp_path, monkeypatch):
    monkeypatch.setattr(connection, "_keys", {})
    with pytest.raises(LabError) as caught:
        private_key(str(tmp_path / "missing"))
    assert "cannot read the SSH key" in str(caught.value) and "invoke up" in caught.value.fix


# A damaged key (empty, truncated, not a key) makes paramiko raise cryptography's ValueError;
# private_key must turn that into its LabError too (it caught only OSError and SSHException).
@pytest.mark.parametrize("content", ["", "not a key\n", "-----BEGIN OPENSSH PRIVATE KEY-----\ntruncated"])
def test_a_damaged_key_file_is_a_lab_error(tmp_path, monkeypatch, content):
    monkeypatch.setattr(connection, "_keys", {})
    damaged = tmp_path / "private_key"
    damaged.write_text(content)
    with pytest.raises(LabError, match="cannot read the SSH key"):
        private_key(str(damaged))


def test_open_turns_on_keepalives(key_file, monkeypatch):
    keepalives = []

    class Transport:
        def set_keepalive(self, seconds):
            keepalives.append(seconds)

    transports = [Transport(), None]
    monkeypatch.setattr(Connection, "open", lambda self: "opened")
    conn = connect(endpoint(key_file))
    conn.client = SimpleNamespace(get_transport=lambda: transports.pop(0),
                                  get_host_keys=conn.client.get_host_keys)
    assert conn.open() == "opened"
    assert conn.open() == "opened", "no transport (not connected): nothing to set"
    assert keepalives == [KEEPALIVE_S]


def test_in_parallel_keeps_the_order_and_hands_an_error_to_the_caller():
    import time as _time
    from fabfile.remote.parallel import in_parallel
    assert in_parallel(lambda n: (_time.sleep(0.05 * (3 - n)), n * 10)[1], [0, 1, 2]) == [0, 10, 20]

    def boom(n):
        if n == 1:
            raise ValueError("host 1 broke")
        return n
    with pytest.raises(ValueError, match="host 1 broke"):
        in_parallel(boom, [0, 1, 2])


def test_in_parallel_threads_never_hold_the_program_exit():
    import threading
    from fabfile.remote.parallel import in_parallel
    seen = []
    in_parallel(lambda n: seen.append(threading.current_thread().daemon), [1, 2])
    assert seen == [True, True]


# --- host keys ---------------------------------------------------------------------------------------------

def test_connect_trusts_only_the_recorded_host_key(key_file):
    conn = connect(endpoint(key_file))
    assert isinstance(conn.client._policy, paramiko.RejectPolicy), "an unknown key is refused, never added"
    known = conn.client.get_host_keys()
    assert list(known.keys()) == ["[127.0.0.1]:2222"], "looked up as paramiko does, with the port"
    assert known.lookup("[127.0.0.1]:2222")["ssh-ed25519"].get_base64() == HOST_KEY.split()[1]
    on_22 = connect(endpoint(key_file, port=22))
    assert list(on_22.client.get_host_keys().keys()) == ["127.0.0.1"]


def test_a_host_without_a_recorded_key_is_refused_before_any_connection(key_file, monkeypatch):
    monkeypatch.setattr(Connection, "open", lambda self: pytest.fail("must not connect"))
    conn = connect(endpoint(key_file, host_key=""))
    with pytest.raises(LabError) as caught:
        conn.open()
    assert str(caught.value).startswith("lb1: no SSH host key is recorded for it")
    assert "invoke up --hosts lb1" in caught.value.fix


def test_a_host_key_mismatch_names_the_host_and_how_to_record_it_again(key_file, monkeypatch):
    def offered_another_key(self):
        raise paramiko.BadHostKeyException("127.0.0.1", connection.parse_host_key(host_key_line()),
                                           connection.parse_host_key(HOST_KEY))
    monkeypatch.setattr(Connection, "open", offered_another_key)
    with pytest.raises(LabError) as caught:
        connect(endpoint(key_file)).open()
    assert caught.value.host == "lb1" and "not the one recorded" in caught.value.problem
    assert "invoke reset --recreate --hosts lb1" in caught.value.fix


def test_a_damaged_host_key_is_a_lab_error(key_file):
    with pytest.raises(LabError, match="not an SSH public key"):
        connect(endpoint(key_file, host_key="ssh-ed25519 not-base64!"))


def test_fingerprint_is_the_one_ssh_keygen_prints(tmp_path):
    import shutil
    import subprocess
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed")
    pub = tmp_path / "key.pub"
    pub.write_text(HOST_KEY + " comment\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    assert printed.split()[1] == connection.fingerprint(HOST_KEY)


def test_scanning_a_host_that_does_not_answer_is_a_lab_error(key_file):
    import socket
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: the connection is refused
        with pytest.raises(LabError) as caught:
            connection.scan_host_key(endpoint(key_file, port=port), timeout=2)
    assert caught.value.host == "lb1" and "invoke up" in caught.value.fix


def test_a_fresh_connection_checks_the_same_host_key_strictly(key_file):
    """The firewall's confirmation opens a new connection: it must trust the recorded key
    alone, like the first one (found by running provision with both features on)."""
    conn = connect(endpoint(key_file))
    conn.lab_host = "web1"
    sibling = conn.sibling(3)
    assert sibling.lab_host == "web1" and sibling.connect_timeout == 3
    assert {name: dict(keys) for name, keys in sibling.client.get_host_keys().items()} == \
        {name: dict(keys) for name, keys in conn.client.get_host_keys().items()}
    assert isinstance(sibling.client._policy, paramiko.RejectPolicy)
