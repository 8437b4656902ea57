"""Facts: each parser on what the host's command really prints (and on nothing), the one
round-trip script run for real with sh, and gather() against a fake connection."""
import base64
import hashlib
import shlex
import subprocess

import pytest

from fabfile.remote import facts as F

# --- systemctl ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw, enabled, active, running, is_enabled, words", [
    ("enabled active\n", "enabled", "active", True, True, "up"),
    ("disabled inactive\n", "disabled", "inactive", False, False, "inactive"),
    ("enabled failed\n", "enabled", "failed", False, True, "failed"),
    ("masked inactive\n", "masked", "inactive", False, False, "inactive"),
    ("missing inactive\n", "missing", "inactive", False, False, "inactive"),   # no such unit
    ("", "missing", "unknown", False, False, "unknown"),                       # host printed nothing
])
def test_parse_service(raw, enabled, active, running, is_enabled, words):
    state = F.parse_service(raw)
    assert (state.enabled, state.active) == (enabled, active)
    assert (state.running, state.is_enabled, state.words) == (running, is_enabled, words)


def test_service_fact_defaults_what_systemctl_leaves_empty():
    fact = F.service("nginx")
    assert fact.key == "service:nginx"
    assert fact.command == ('e=$(systemctl is-enabled nginx); a=$(systemctl is-active nginx); '
                            'echo "${e:-missing} ${a:-unknown}"')


# --- stat and sha256sum ------------------------------------------------------------------

SHA = hashlib.sha256(b"127.0.0.1\tlocalhost\n").hexdigest()


def test_parse_path_of_a_file_reads_hash_then_stat():
    state = F.parse_path(f"{SHA}\n640 root halab\n")
    assert state == F.PathState("640", "root", "halab", sha256=SHA)
    assert state.matches("640", "root", "halab", SHA)
    assert not state.matches("644", "root", "halab", SHA)
    assert not state.matches("640", "root", "halab", "0" * 64)


def test_parse_path_of_a_directory_has_no_hash():
    state = F.parse_path("755 root root\n")
    assert state == F.PathState("755", "root", "root", "")
    assert state.matches("755", "root", "root")


@pytest.mark.parametrize("raw", ["", "\n", "garbage\n"])
def test_parse_path_of_nothing_is_none(raw):
    assert F.parse_path(raw) is None


def test_path_facts_commands_and_keys():
    assert F.file("/etc/motd") == F.Fact("file:/etc/motd", "sha256sum /etc/motd | cut -c1-64; "
                                         "stat -c '%a %U %G' /etc/motd", F.parse_path)
    assert F.directory("/etc/halab").command == "stat -c '%a %U %G' /etc/halab"
    assert F.link("/etc/x").key == "link:/etc/x" and F.exists("/etc/x").key == "exists:/etc/x"


# --- ip -o -4 addr show ------------------------------------------------------------------

IP_ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.2.15/24 metric 100 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86234sec preferred_lft 86234sec
3: eth1    inet 192.168.56.11/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever preferred_lft forever
3: eth1    inet 192.168.56.10/24 scope global secondary eth1\\       valid_lft forever preferred_lft forever
"""


def test_parse_addresses_pairs_every_address_with_its_interface():
    addresses = F.parse_addresses(IP_ADDR)
    assert addresses.pairs == (("lo", "127.0.0.1"), ("eth0", "10.0.2.15"),
                               ("eth1", "192.168.56.11"), ("eth1", "192.168.56.10"))
    assert addresses.interface_of("192.168.56.10") == "eth1"
    assert addresses.interface_of("192.168.56.99") is None
    assert addresses.holds("192.168.56.10") and not addresses.holds("192.168.56.1")
    assert addresses.ips == {"127.0.0.1", "10.0.2.15", "192.168.56.11", "192.168.56.10"}


def test_parse_addresses_of_nothing():
    assert F.parse_addresses("") == F.Addresses(())
    assert not F.parse_addresses("").holds("192.168.56.10")


# --- ss -Hltn ----------------------------------------------------------------------------

SS = """\
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*
LISTEN 0      4096   192.168.56.11:8404       0.0.0.0:*
LISTEN 0      4096         0.0.0.0:80         0.0.0.0:*
LISTEN 0      80     192.168.56.41:3306       0.0.0.0:*
LISTEN 0      128             [::]:22            [::]:*
LISTEN 0      511             [::]:80            [::]:*
LISTEN 0      511                *:8080             *:*
LISTEN 0      4096           [::1]:631           [::]:*
"""


def test_parse_listeners_reads_wildcards_as_star():
    assert F.parse_listeners(SS) == frozenset({
        "127.0.0.53%lo:53", "*:22", "192.168.56.11:8404", "*:80", "192.168.56.41:3306",
        "*:8080", "[::1]:631"})


def test_parse_listeners_ipv6_wildcard_alone_is_a_star():
    assert F.parse_listeners("LISTEN 0 511 [::]:80 [::]:*\n") == frozenset({"*:80"})
    assert F.parse_listeners("LISTEN 0 511 *:80 *:*\n") == frozenset({"*:80"})


def test_parse_listeners_of_nothing():
    assert F.parse_listeners("") == frozenset()


# --- dpkg-query ----------------------------------------------------------------------------

def test_parse_packages():
    raw = "haproxy=installed\nkeepalived=not-installed\nnginx=config-files\ncurl=half-configured\n"
    assert F.parse_packages(raw) == {"haproxy": True, "keepalived": False, "nginx": False, "curl": False}
    assert F.parse_packages("") == {}


def test_packages_fact_asks_dpkg_for_every_name_once():
    fact = F.packages(("nginx", "curl"))
    assert fact.key == "packages:nginx curl"
    assert fact.command == "dpkg-query -W -f='${Package}=${db:Status-Status}\\n' nginx curl"


def test_apt_lists_fresh_looks_for_lists_younger_than_a_day():
    assert "-mmin -1440" in F.apt_lists_fresh().command
    assert F.parse_present("yes\n") is True and F.parse_present("") is False


# --- HAProxy stats CSV ---------------------------------------------------------------------

STATS_HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
                "wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,"
                "throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,")
STATS_CSV = "\n".join([
    STATS_HEADER,
    "http_front,FRONTEND,,,0,3,2000,57,6210,31250,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,4,,,",
    "web,web1,0,0,0,1,,29,3100,15600,,0,,0,0,0,0,UP,1,1,0,0,0,412,0,,1,3,1,,29,,2,0,,2,L7OK,200,1,",
    "web,web2,0,0,0,1,,28,3110,15650,,0,,0,0,0,0,DOWN,1,1,0,3,1,12,12,,1,3,2,,28,,2,0,,2,L4CON,,0,",
    "web,BACKEND,0,0,0,2,200,57,6210,31250,0,0,,0,0,0,0,UP,2,2,0,,1,412,0,,1,3,0,,57,,1,0,,4,,,,",
    "stats,FRONTEND,,,1,1,2000,3,300,9000,0,0,0,,,,,OPEN,,,,,,,,,1,4,0,,,,0,1,0,1,,,",
    "",
])


def test_parse_backends_reads_each_web_server_status():
    assert STATS_HEADER.split(",").index("status") == 17
    assert F.parse_backends(STATS_CSV) == {"web1": "UP", "web2": "DOWN"}


def test_parse_backends_when_haproxy_does_not_answer():
    assert F.parse_backends("") == {}
    assert F.parse_backends("<html><body>503 Service Unavailable</body></html>\n") == {}


# --- keepalived transitions log --------------------------------------------------------------

@pytest.mark.parametrize("raw, state", [
    ("2026-11-23T20:01:02 state=MASTER\n", "MASTER"),
    ("2026-11-23T20:01:02.123+00:00 host=lb2 type=INSTANCE instance=VI_halab state=BACKUP priority=100\n",
     "BACKUP"),
    ("2026-11-23T20:01:02.123+00:00 host=lb1 type=INSTANCE instance=VI_halab state=FAULT priority=150\n", "FAULT"),
    ("", "unknown"),                                            # no transition logged yet
    ("tail: cannot open '/var/log/x' for reading\n", "unknown"),
    # the log is in keepalived's order (one FIFO reader): the last line wins, whatever its time
    ("2026-11-23T22:12:53.623+00:00 host=lb2 type=INSTANCE instance=VI_hsoak state=BACKUP priority=100\n"
     "2026-11-23T22:12:53.626+00:00 host=lb2 type=INSTANCE instance=VI_hsoak state=MASTER priority=100\n"
     "2026-11-23T22:13:19.736+00:00 host=lb2 type=INSTANCE instance=VI_hsoak state=MASTER priority=100\n"
     "2026-11-23T22:13:19.736+00:00 host=lb2 type=INSTANCE instance=VI_hsoak state=BACKUP priority=100\n", "BACKUP"),
    ("2026-11-23T22:13:19.735+00:00 host=lb1 type=INSTANCE instance=VI_hsoak state=BACKUP priority=150\n"
     "2026-11-23T22:13:19.734+00:00 host=lb1 type=INSTANCE instance=VI_hsoak state=MASTER priority=150\n", "MASTER"),
    # an event of the FIFO that is no state (the master heard a lower-priority advert)
    ("2026-11-23T22:13:19.734+00:00 host=lb1 type=INSTANCE instance=VI_hsoak state=MASTER priority=150\n"
     "2026-11-23T22:13:20.001+00:00 host=lb1 type=INSTANCE instance=VI_hsoak state=MASTER_RX_LOWER_PRI priority=150\n",
     "MASTER"),
])
def test_parse_vrrp_state(raw, state):
    assert F.parse_vrrp_state(raw) == state


# --- the small ones -----------------------------------------------------------------------------

def test_parse_words_text_and_present():
    assert F.parse_words("bind-address = 192.168.56.41\nport = 3306\n") == (
        "bind-address", "=", "192.168.56.41", "port", "=", "3306")
    assert F.parse_words("") == ()
    assert F.parse_text("  2\n") == "2" and F.parse_text("") == ""
    assert F.parse_present("yes") and not F.parse_present("no\n") and not F.parse_present("")


def test_line_in_key_is_stable_and_quotes_the_line():
    fact = F.line_in("/root/.ssh/authorized_keys", "ssh-ed25519 AAAA x@y")
    digest = hashlib.sha256(b"ssh-ed25519 AAAA x@y").hexdigest()[:12]
    assert fact.key == f"line:/root/.ssh/authorized_keys:{digest}"
    assert fact.command == "grep -qxF -e 'ssh-ed25519 AAAA x@y' /root/.ssh/authorized_keys && echo yes"


def test_value_of_a_fact_not_gathered_is_the_default():
    facts = {"user:halab": True}
    assert F.value(facts, F.user("halab")) is True
    assert F.value(facts, F.user("other")) is None
    assert F.value(facts, F.user("other"), False) is False


# --- facts run for real with sh, on local files ------------------------------------------------

def run_fact(fact):
    return subprocess.run(["sh", "-c", fact.command], capture_output=True, text=True).stdout


def test_file_fact_command_and_parser_agree(tmp_path):
    path = tmp_path / "motd"
    path.write_text("welcome\n")
    path.chmod(0o640)
    state = F.parse_path(run_fact(F.file(str(path))))
    assert state.sha256 == hashlib.sha256(b"welcome\n").hexdigest()
    assert state.mode == "640"
    assert F.parse_path(run_fact(F.file(str(tmp_path / "absent")))) is None


def test_line_in_matches_whole_lines_only(tmp_path):
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 AAAA one\nssh-ed25519 AAAA two\n")
    assert F.parse_present(run_fact(F.line_in(str(path), "ssh-ed25519 AAAA two")))
    assert not F.parse_present(run_fact(F.line_in(str(path), "ssh-ed25519 AAAA")))
    assert not F.parse_present(run_fact(F.line_in(str(tmp_path / "absent"), "x")))


def test_line_in_finds_a_line_that_begins_with_a_dash(tmp_path):
    path = tmp_path / "audit.rules"
    path.write_text("-w /etc/passwd -p wa\n")
    assert F.parse_present(run_fact(F.line_in(str(path), "-w /etc/passwd -p wa")))


# --- one round trip: script() and parse() ----------------------------------------------------------

def echo_fact(key, command):
    return F.Fact(key, command, F.parse_text)


def test_unique_keeps_each_key_once_in_the_order_first_asked():
    facts = [F.user("a"), F.service("nginx"), F.user("b"), F.user("a"), F.service("nginx")]
    assert [f.key for f in F.unique(facts)] == ["user:a", "service:nginx", "user:b"]
    assert F.unique(facts) == [F.user("a"), F.service("nginx"), F.user("b")]
    assert F.unique([]) == []


def test_script_has_one_line_per_distinct_fact():
    facts = [F.user("halab"), F.user("halab"), F.addresses()]
    assert F.script(facts).splitlines() == [
        "printf '%s\\t%s\\n' user:halab \"$({ id -u halab >/dev/null && echo yes; } 2>/dev/null | base64 -w0)\"",
        "printf '%s\\t%s\\n' addresses \"$({ ip -o -4 addr show; } 2>/dev/null | base64 -w0)\"",
    ]


def test_script_run_by_sh_parses_back_multiline_output_intact():
    lines = F.Fact("lines", "printf 'a\\nb\\n'", lambda text: text)
    spaced = F.Fact("spaced key: with 'quotes'", "echo '  two  spaces  '", lambda text: text)
    tabbed = F.Fact("tabbed", "printf 'x\\ty\\n'", lambda text: text.split("\t"))
    failing = F.Fact("failing", "echo partial; echo noise >&2; false", F.parse_text)
    silent = F.Fact("silent", "true", F.parse_present)
    facts = [lines, spaced, tabbed, failing, silent, lines]
    output = subprocess.run(["sh", "-c", F.script(facts)], capture_output=True, text=True, check=True).stdout
    assert len(output.splitlines()) == 5
    assert F.parse(facts, output) == {"lines": "a\nb\n", "spaced key: with 'quotes'": "  two  spaces  \n",
                                      "tabbed": ["x", "y\n"], "failing": "partial", "silent": False}


def test_parse_ignores_stray_lines_and_parses_a_missing_fact_as_empty():
    facts = [echo_fact("here", "x"), F.service("nginx"), F.file("/etc/motd")]
    output = ("sudo: unable to resolve host lb1: Name or service not known\n"
              f"here\t{base64.b64encode(b' value ').decode()}\n")
    assert F.parse(facts, output) == {"here": "value", "service:nginx": F.ServiceState("missing", "unknown"),
                                      "file:/etc/motd": None}


def test_parse_raw_is_what_fixtures_feed():
    facts = [F.user("halab"), F.link("/etc/x")]
    assert F.parse_raw(facts, {"user:halab": "yes\n"}) == {"user:halab": True, "link:/etc/x": ""}


# --- gather() over a connection ---------------------------------------------------------------------

class Result:
    def __init__(self, stdout="", stderr="", exited=0):
        self.stdout, self.stderr, self.exited = stdout, stderr, exited


class RecordingConnection:
    """Answers every command by running what sudo would run, with a local sh."""

    def __init__(self, exited=None, stderr=""):
        self.calls = []
        self.exited, self.stderr = exited, stderr

    def run(self, command, **kwargs):
        self.calls.append((command, kwargs))
        if self.exited is not None:
            return Result("", self.stderr, self.exited)
        argv = shlex.split(command)
        done = subprocess.run(argv[2:], capture_output=True, text=True)  # drop "sudo -n": run sh -c here
        return Result(done.stdout, done.stderr, done.returncode)


def test_gather_runs_one_command_under_sudo_with_a_timeout():
    facts = [echo_fact("one", "echo 1"), echo_fact("two", "printf 'x\\ny'"), echo_fact("one", "echo 1")]
    connection = RecordingConnection()
    assert F.gather(connection, facts) == {"one": "1", "two": "x\ny"}
    assert len(connection.calls) == 1
    command, kwargs = connection.calls[0]
    assert command == "sudo -n sh -c " + shlex.quote(F.script(facts))
    assert shlex.split(command)[:4] == ["sudo", "-n", "sh", "-c"]
    assert kwargs == {"hide": True, "warn": True, "in_stream": False, "timeout": F.FACTS_TIMEOUT_S}


def test_gather_passes_its_timeout():
    connection = RecordingConnection()
    F.gather(connection, [echo_fact("one", "echo 1")], timeout=5)
    assert connection.calls[0][1]["timeout"] == 5


def test_gather_of_no_facts_runs_nothing():
    connection = RecordingConnection()
    assert F.gather(connection, []) == {}
    assert connection.calls == []


def test_gather_fails_when_sudo_prints_nothing():
    connection = RecordingConnection(exited=1, stderr="sudo: a password is required\n")
    with pytest.raises(RuntimeError, match=r"gathering facts failed \(exit 1\): sudo: a password is required$"):
        F.gather(connection, [F.user("halab")])
