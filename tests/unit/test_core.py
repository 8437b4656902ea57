"""core: configuration, reports, state and secrets, the console, errors, and the parts of
lab.yml's validation that tests/unit/test_lab.py does not reach."""
import io
import ipaddress
import json
import os
import stat

import pytest

import fabfile.core.lab as lab_module
import fabfile.core.report as report_module
import fabfile.core.state as state
from fabfile.core import config, console
from fabfile.core.errors import LabError, step_failed
from fabfile.core.lab import DEFAULT_LAB_FILE, load_lab, parse_lab
from tests.unit.test_lab import GOOD


@pytest.fixture
def lab():
    return parse_lab(GOOD)


@pytest.fixture
def state_root(monkeypatch, tmp_path):
    root = tmp_path / "state"
    monkeypatch.setattr(state, "STATE_ROOT", root)
    return root


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


# --- config ---------------------------------------------------------------------------------------

def test_config_from_a_dict():
    settings = config.Config.from_environment({
        "LAB_FILE": "/tmp/other.yml", "LAB": "student2", "HALAB_TEMPLATES": "/srv/templates",
        "HALAB_DEBUG": "1", "VAGRANT_DEFAULT_PROVIDER": "docker", "UNRELATED": "x"})
    assert settings == config.Config(lab_file="/tmp/other.yml", lab_name="student2",
                                     templates="/srv/templates", debug=True, provider="docker")


def test_config_empty_values_count_as_unset():
    assert config.Config.from_environment({}) == config.Config()
    assert config.Config.from_environment({"LAB_FILE": "", "LAB": "", "HALAB_DEBUG": "",
                                           "VAGRANT_DEFAULT_PROVIDER": ""}) == config.Config()


def test_config_current_reads_the_environment(monkeypatch):
    monkeypatch.setenv("LAB", "student3")
    monkeypatch.setenv("HALAB_DEBUG", "yes")
    current = config.current()
    assert current.lab_name == "student3" and current.debug is True


def test_every_variable_the_config_reads_is_documented():
    seen = config.Config.from_environment({name: "1" for name in config.ENVIRONMENT})
    assert all(value not in (None, False) for value in vars(seen).values())


# --- report ------------------------------------------------------------------------------------------

def test_write_json_round_trips(tmp_path):
    data = {"hosts": {"lb1": {"ok": True, "steps": [1, 2.5, None]}}, "name": "héllo"}
    path = report_module.write_json(tmp_path / "report.json", data)
    assert path == tmp_path / "report.json"
    assert json.loads(path.read_text()) == data
    assert path.read_text().endswith("}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"], "no temporary file is left"


def test_write_json_writes_a_temporary_file_then_renames_it(tmp_path, monkeypatch):
    target = tmp_path / "verify.json"
    target.write_text('{"old": true}\n')
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        # at the moment of the rename the new report is whole, the old one still in place
        renames.append((os.fspath(src), os.fspath(dst), json.loads(open(src).read()),
                        json.loads(open(dst).read())))
        return real_replace(src, dst)

    monkeypatch.setattr(report_module.os, "replace", replace)
    report_module.write_json(str(target), {"new": True})
    assert renames == [(str(tmp_path / ".verify.json.tmp"), str(target), {"new": True}, {"old": True})]
    assert json.loads(target.read_text()) == {"new": True}


def test_write_json_of_something_unserialisable_leaves_the_old_report(tmp_path):
    target = tmp_path / "report.json"
    report_module.write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        report_module.write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}


# --- state ----------------------------------------------------------------------------------------------

def test_state_folders_are_per_lab(state_root, lab):
    assert state.state_dir(lab) == state_root / "halab" and (state_root / "halab").is_dir()
    assert state.vagrant_dotfile_dir(lab) == state_root / "halab" / "vagrant"
    assert state.machines_dir(lab) == state_root / "halab" / "vagrant" / "machines"
    secrets = state.secrets_dir(lab)
    assert secrets == state_root / "halab" / "secrets" and mode(secrets) == 0o700


def test_secret_is_made_once_with_mode_0600(state_root, lab):
    first = state.secret(lab, "db_password")
    path = state_root / "halab" / "secrets" / "db_password"
    assert path.read_text() == first and mode(path) == 0o600
    assert len(first) >= 24
    assert state.secret(lab, "db_password") == first, "the same value next time"
    assert state.secret(lab, "other", nbytes=8) != first


def test_secret_is_made_again_when_its_file_is_empty(state_root, lab):
    path = state.secrets_dir(lab) / "db_password"
    path.write_text("  \n")
    value = state.secret(lab, "db_password")
    assert value and path.read_text() == value and mode(path) == 0o600


def test_write_private_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "key"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    state.write_private(target, b"new secret")
    assert target.read_bytes() == b"new secret" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_write_private_removes_its_temporary_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "key"

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(state.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        state.write_private(target, b"secret")
    assert list(tmp_path.iterdir()) == []


def test_lab_ssh_key_is_an_openssh_pair_made_once(state_root, lab):
    from cryptography.hazmat.primitives import serialization
    private, public = state.lab_ssh_key(lab)
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith("ssh-ed25519 ") and public.endswith(" halab-lab")
    folder = state_root / "halab" / "secrets"
    assert mode(folder / "lab_ssh_key") == 0o600 and mode(folder / "lab_ssh_key.pub") == 0o600
    key = serialization.load_ssh_private_key(private.encode(), password=None)
    derived = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH).decode()
    assert public.split()[:2] == derived.split()[:2], "the public line belongs to the private key"
    assert state.lab_ssh_key(lab) == (private, public), "made once"


def test_lab_ssh_key_is_made_again_when_the_public_half_is_empty(state_root, lab):
    private, public = state.lab_ssh_key(lab)
    (state_root / "halab" / "secrets" / "lab_ssh_key.pub").write_text("")
    again = state.lab_ssh_key(lab)
    assert again[1].startswith("ssh-ed25519 ") and again != (private, public)


# --- console -------------------------------------------------------------------------------------------

def test_say_prefixes_every_line_with_the_host():
    out = io.StringIO()
    console.say("web1", "first\nsecond", stream=out)
    console.say("loadbalancer", "", stream=out)
    console.say("db1", 42, stream=out)
    assert out.getvalue() == "web1  | first\nweb1  | second\nloadbalancer| \ndb1   | 42\n"


def test_say_info_and_error_default_streams(capsys):
    console.say("lb1", "up")
    console.info("done")
    console.error("bad")
    captured = capsys.readouterr()
    assert captured.out == "lb1   | up\ndone\n" and captured.err == "bad\n"


def test_table_columns_are_as_wide_as_their_widest_cell():
    text = console.table(["host", "state"], [["lb1", "running"], ["web10", None], ["app1", 3]])
    assert text.splitlines() == ["host   state",
                                 "-----  -------",
                                 "lb1    running",
                                 "web10  None",
                                 "app1   3"]


def test_table_without_rows_is_its_header():
    assert console.table(["host", "state"], []) == "host  state\n----  -----"


# --- errors -------------------------------------------------------------------------------------------

def test_lab_error_says_where_what_and_the_fix():
    error = LabError("connection refused", "boot it", host="web1", step="service nginx")
    assert str(error) == "web1: service nginx: connection refused\n  fix: boot it"
    assert error.args == (str(error),)
    assert (error.problem, error.fix, error.host, error.step) == \
        ("connection refused", "boot it", "web1", "service nginx")
    assert str(LabError("plain")) == "plain"
    assert str(LabError("no host", host="db1")) == "db1: no host"


def test_step_failed_keeps_the_hosts_output():
    error = step_failed("packages", "\nE: unable to locate package\n", fix="apt-get update")
    assert error.step == "packages" and error.problem == "E: unable to locate package"
    assert str(error) == "packages: E: unable to locate package\n  fix: apt-get update"


# --- lab.yml: the settings section ---------------------------------------------------------------------

def settings_fails(section, *words):
    with pytest.raises(LabError) as caught:
        parse_lab(GOOD + section)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert caught.value.fix
    return caught.value


def test_settings_are_kept_per_role():
    lab = parse_lab(GOOD + "settings:\n  loadbalancer: {advert_int: 0.2}\n  db: {}\n")
    assert lab.settings == {"loadbalancer": {"advert_int": 0.2}, "db": {}}
    assert parse_lab(GOOD).settings == {}
    assert parse_lab(GOOD + "settings:\n").settings == {}


def test_settings_not_a_mapping():
    error = settings_fails("settings: [advert_int]\n", "settings: must map roles to settings")
    assert "advert_int: 0.2" in error.fix


def test_settings_of_an_unknown_role():
    error = settings_fails("settings:\n  cache: {size: 1}\n", "settings.cache: unknown role")
    assert "loadbalancer, web, app, db" in error.fix


def test_settings_values_not_a_mapping():
    settings_fails("settings:\n  web: 3\n", "settings.web: must map setting names to values")


# --- lab.yml: the rest of the validation -------------------------------------------------------------

def bad(old, new, *words):
    assert old in GOOD
    with pytest.raises(LabError) as caught:
        parse_lab(GOOD.replace(old, new))
    for word in words:
        assert word in str(caught.value), str(caught.value)
    return caught.value


def test_not_a_mapping():
    with pytest.raises(LabError, match="expected a mapping"):
        parse_lab("- just\n- a list\n")


def test_host_and_role_lookups_name_the_choices(lab):
    with pytest.raises(LabError) as caught:
        lab.host("web9")
    assert "no host named 'web9' in lab.yml" in str(caught.value) and "lb1, lb2" in caught.value.fix
    with pytest.raises(LabError, match="unknown role 'cache'"):
        lab.select(roles=["cache"])
    assert lab.select(["", None], [""]) == list(lab.hosts), "empty names select every host"
    assert lab.host_names == ["lb1", "lb2", "web1", "app1", "db1"]


def test_host_fields():
    bad("ip: 192.168.56.21", "ip: not-an-ip", "hosts.web1.ip", "'not-an-ip' is not an IPv4 address")
    bad("  web1: {role: web, ip: 192.168.56.21}", "  Web_1: {role: web, ip: 192.168.56.21}",
        "hosts.Web_1", "not a valid host name")
    bad("  web1: {role: web, ip: 192.168.56.21}", "  web1: web", "hosts.web1", "must be a mapping")
    bad("{role: web, ip: 192.168.56.21}", "{role: web, ip: 192.168.56.21, disk: 10}",
        "hosts.web1.disk", "unknown field")
    bad("memory: 1024", "memory: 128", "hosts.db1.memory", "256 or more")
    bad("memory: 1024", "cpus: 0", "hosts.db1.cpus", "not a whole number of CPUs")
    bad("memory: 1024", "cpus: two", "hosts.db1.cpus")


def test_hosts_must_be_a_mapping():
    text = GOOD.split("hosts:")[0] + "hosts: [lb1, lb2]\n"
    with pytest.raises(LabError, match="hosts: must map host names"):
        parse_lab(text)


def test_a_single_database_host():
    bad("  db1:", "  db2: {role: db, ip: 192.168.56.42}\n  db1:", "2 database hosts")


def test_box_defaults_and_can_be_named():
    assert parse_lab(GOOD).box == "debian/bookworm64"
    assert parse_lab(GOOD + "box: generic/debian12\n").box == "generic/debian12"


def test_virtualbox_networks_conf_ignores_words_that_are_no_network(monkeypatch, tmp_path):
    conf = tmp_path / "networks.conf"
    conf.write_text("# comment\n* bogus 10.0.0.0/8\n* fd00::/8\n")
    monkeypatch.setattr(lab_module, "VBOX_NETWORKS_CONF", conf)
    parse_lab(GOOD.replace("192.168.56.", "10.1.2."), provider="virtualbox")
    with pytest.raises(LabError) as caught:
        parse_lab(GOOD, provider="virtualbox")
    assert "10.0.0.0/8, fd00::/8" in str(caught.value)


@pytest.fixture
def lab_dirs(monkeypatch, tmp_path):
    monkeypatch.setattr(lab_module, "GENERATED_DIR", tmp_path / ".lab")
    monkeypatch.setattr(lab_module, "LABS_DIR", tmp_path / "labs")
    for name in ("LAB_FILE", "LAB"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_lab_file_path_prefers_lab_file_then_lab_then_lab_yml(lab_dirs, monkeypatch):
    assert lab_module.lab_file_path() == DEFAULT_LAB_FILE
    monkeypatch.setenv("LAB", "halab")
    assert lab_module.lab_file_path() == DEFAULT_LAB_FILE, "lab.yml's own name is lab.yml"
    (lab_dirs / "labs").mkdir()
    (lab_dirs / "labs" / "halab.yml").write_text(GOOD)
    assert lab_module.lab_file_path() == lab_dirs / "labs" / "halab.yml", "labs/NAME.yml when it exists"
    monkeypatch.setenv("LAB_FILE", str(lab_dirs / "mine.yml"))
    assert lab_module.lab_file_path() == lab_dirs / "mine.yml"
    with pytest.raises(LabError, match="mine.yml: no such lab file"):
        load_lab()


def test_known_lab_networks_skip_files_that_do_not_parse(lab_dirs):
    (lab_dirs / "labs").mkdir()
    (lab_dirs / "labs" / "one.yml").write_text("name: one\nnetwork: 10.9.0.0/24\n")
    (lab_dirs / "labs" / "broken.yml").write_text("name: [\n")
    (lab_dirs / "labs" / "nonet.yml").write_text("name: nonet\n")
    (lab_dirs / "labs" / "badnet.yml").write_text("name: badnet\nnetwork: nowhere\n")
    (lab_dirs / ".lab" / "two").mkdir(parents=True)
    (lab_dirs / ".lab" / "two" / "lab.yml").write_text("name: two\nnetwork: 10.8.0.0/24\n")
    assert lab_module.known_lab_networks() == {
        "halab": ipaddress.ip_network("192.168.56.0/24"),
        "one": ipaddress.ip_network("10.9.0.0/24"), "two": ipaddress.ip_network("10.8.0.0/24")}


def test_known_hosts_keeps_one_key_per_host_by_its_lab_name(state_root, lab):
    assert state.read_known_hosts(lab) == {}
    state.update_known_hosts(lab, record={"lb1": "ssh-ed25519 AAA1", "db1": "ssh-ed25519 AAA5"})
    state.update_known_hosts(lab, record={"lb1": "ssh-ed25519 BBB1"}, forget=["db1"])
    path = state.known_hosts_path(lab)
    assert path.read_text() == "lb1 ssh-ed25519 BBB1\n", "OpenSSH's format, read with HostKeyAlias=lb1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".known_hosts")] == [], "atomic"
    state.update_known_hosts(lab, forget=["lb1"])
    assert not path.exists() and state.read_known_hosts(lab) == {}


def test_known_hosts_text_skips_comments_and_odd_lines():
    text = "# made by halab\nlb1 ssh-ed25519 AAA1 comment\n\ngarbage\nweb1 ssh-rsa BBB\n"
    assert state.parse_known_hosts(text) == {"lb1": "ssh-ed25519 AAA1", "web1": "ssh-rsa BBB"}
