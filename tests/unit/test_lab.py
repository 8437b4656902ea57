"""lab.yml validation: every bad input fails before anything runs, naming the field."""
from pathlib import Path

import pytest

from fabfile.core.errors import LabError
from fabfile.core.lab import DEFAULT_LAB_FILE, check_provider_network, load_lab, parse_lab
import fabfile.core.lab as lab_module

GOOD = """
name: halab
network: 192.168.56.0/24
vip: 192.168.56.10
hosts:
  lb1:  {role: loadbalancer, ip: 192.168.56.11}
  lb2:  {role: loadbalancer, ip: 192.168.56.12}
  web1: {role: web, ip: 192.168.56.21}
  app1: {role: app, ip: 192.168.56.31}
  db1:  {role: db, ip: 192.168.56.41, memory: 1024}
"""


def lab_with(old, new):
    assert old in GOOD
    return parse_lab(GOOD.replace(old, new))


def fails(old, new, *words):
    with pytest.raises(LabError) as caught:
        lab_with(old, new)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert caught.value.fix, "every error says how to fix it"
    return message


def test_the_repository_lab_file_is_valid_and_has_the_default_topology():
    lab = load_lab(DEFAULT_LAB_FILE)
    assert lab.vip == "192.168.56.10"
    assert [(h.name, h.role, h.ip) for h in lab.hosts] == [
        ("lb1", "loadbalancer", "192.168.56.11"), ("lb2", "loadbalancer", "192.168.56.12"),
        ("web1", "web", "192.168.56.21"), ("app1", "app", "192.168.56.31"),
        ("db1", "db", "192.168.56.41")]


def test_good_lab_parses_with_defaults():
    lab = parse_lab(GOOD)
    assert lab.gateway == "192.168.56.1"
    assert lab.host("web1").memory == 512 and lab.host("db1").memory == 1024
    assert [h.name for h in lab.select(roles=["loadbalancer"])] == ["lb1", "lb2"]
    assert [h.name for h in lab.select(["db1"], ["web"])] == ["web1", "db1"]


def test_scaling_a_tier_is_one_line():
    lab = lab_with("  db1:", "  web2: {role: web, ip: 192.168.56.22}\n  db1:")
    assert [h.name for h in lab.with_role("web")] == ["web1", "web2"]


def test_unknown_role():
    fails("role: web,", "role: cache,", "hosts.web1.role", "cache", "loadbalancer, web, app, db")


def test_tier_without_a_host():
    fails("  app1: {role: app, ip: 192.168.56.31}\n", "", "no host has role app")


@pytest.mark.parametrize("replacement", ["", "  lb3:  {role: loadbalancer, ip: 192.168.56.13}\n  lb2:"])
def test_vrrp_pair_needs_exactly_two_balancers(replacement):
    old = "  lb2:  {role: loadbalancer, ip: 192.168.56.12}\n" if not replacement else "  lb2:"
    fails(old, replacement, "VRRP pair needs exactly 2")


def test_duplicate_host_name():
    fails("  db1:", "  web1: {role: web, ip: 192.168.56.22}\n  db1:", "'web1' is declared twice")


def test_duplicate_ip():
    fails("ip: 192.168.56.21", "ip: 192.168.56.11", "hosts.web1.ip", "also the address of lb1")


def test_ip_outside_the_network():
    fails("ip: 192.168.56.31", "ip: 10.0.0.31", "hosts.app1.ip", "outside the network")


def test_vip_outside_the_network():
    fails("vip: 192.168.56.10", "vip: 192.168.57.10", "vip", "outside the network")


@pytest.mark.parametrize("address,what", [("192.168.56.0", "network address"),
                                          ("192.168.56.255", "broadcast address"),
                                          ("192.168.56.1", "gateway")])
def test_reserved_addresses(address, what):
    fails("ip: 192.168.56.41", f"ip: {address}", "hosts.db1.ip", what)
    fails("vip: 192.168.56.10", f"vip: {address}", "vip", what)


def test_vip_equal_to_a_host_ip():
    fails("vip: 192.168.56.10", "vip: 192.168.56.21", "hosts.web1.ip", "is the virtual IP")


def test_bad_yaml_names_the_line():
    with pytest.raises(LabError) as caught:
        parse_lab("name: halab\nhosts:\n  lb1: {role: web\n")
    assert "invalid YAML at line" in str(caught.value)


def test_missing_and_unknown_fields():
    fails("vip: 192.168.56.10\n", "", "vip: is missing")
    fails("name: halab", "name: halab\ncolour: blue", "colour: unknown field")
    fails("memory: 1024", "memory: lots", "hosts.db1.memory")


def test_bad_network_and_name():
    fails("network: 192.168.56.0/24", "network: 192.168.56.0/33", "network")
    fails("network: 192.168.56.0/24", "network: 8.8.8.0/24", "not inside a private IPv4 range")
    fails("name: halab", "name: Hal Lab", "name")


def test_virtualbox_range(monkeypatch, tmp_path):
    monkeypatch.setattr(lab_module, "VBOX_NETWORKS_CONF", tmp_path / "networks.conf")
    lab = parse_lab(GOOD.replace("192.168.56.", "10.10.0."))
    check_provider_network(lab, "docker")  # docker does not care
    with pytest.raises(LabError) as caught:
        check_provider_network(lab, "virtualbox")
    assert "10.10.0.0/24" in str(caught.value) and "networks.conf" in caught.value.fix
    with pytest.raises(LabError):
        parse_lab(GOOD.replace("192.168.56.", "10.10.0."), provider="virtualbox")
    (tmp_path / "networks.conf").write_text("* 10.0.0.0/8\n")
    check_provider_network(lab, "virtualbox")


def test_missing_file():
    with pytest.raises(LabError) as caught:
        load_lab(Path("/nonexistent/lab.yml"))
    assert "no such lab file" in str(caught.value)


def test_a_derived_lab_gets_its_own_name_and_a_free_subnet():
    import ipaddress
    from fabfile.core.lab import derive_lab_text
    base = parse_lab(GOOD)
    taken = [ipaddress.ip_network("192.168.56.0/24"), ipaddress.ip_network("192.168.57.0/24")]
    lab = parse_lab(derive_lab_text(base, "student2", taken))
    assert lab.name == "student2" and str(lab.network) == "192.168.58.0/24"
    assert lab.vip == "192.168.58.10" and lab.host("db1").ip == "192.168.58.41"
    assert [h.role for h in lab.hosts] == [h.role for h in base.hosts]


def test_no_free_subnet_is_a_clear_error():
    import ipaddress
    from fabfile.core.lab import derive_lab_text
    with pytest.raises(LabError, match="no free /24"):
        derive_lab_text(parse_lab(GOOD), "student9", [ipaddress.ip_network("192.168.56.0/21")])


def test_lab_env_selects_or_derives_a_lab(monkeypatch, tmp_path):
    monkeypatch.setattr(lab_module, "GENERATED_DIR", tmp_path / ".lab")
    monkeypatch.setattr(lab_module, "LABS_DIR", tmp_path / "labs")
    monkeypatch.delenv("LAB_FILE", raising=False)
    monkeypatch.setenv("LAB", "student2")
    path = lab_module.lab_file_path()
    assert path == tmp_path / ".lab" / "student2" / "lab.yml"
    lab = load_lab(path)
    assert lab.name == "student2" and not lab.network.overlaps(load_lab(DEFAULT_LAB_FILE).network)
    assert lab_module.lab_file_path() == path, "the same lab file on every call"
    monkeypatch.setenv("LAB", "Bad Name")
    with pytest.raises(LabError, match="not a valid lab name"):
        lab_module.lab_file_path()


@pytest.mark.parametrize("network, says", [
    ("169.254.169.0/24", "not inside a private IPv4 range"),   # link-local: cloud metadata
    ("127.0.0.0/24", "not inside a private IPv4 range"),       # loopback
    ("100.64.0.0/24", "not inside a private IPv4 range"),      # carrier-grade NAT
    ("10.0.0.0/8", "a lab's network is a /16 to a /29"),       # a whole /8
    ("192.168.0.0/30", "a lab's network is a /16 to a /29"),
])
def test_networks_that_can_hurt_are_refused_with_a_fix(network, says):
    text = DEFAULT_LAB_FILE.read_text().replace("network: 192.168.56.0/24", f"network: {network}")
    with pytest.raises(LabError, match=says) as caught:
        parse_lab(text)
    assert caught.value.fix and "192.168.56.0/24" in caught.value.fix


@pytest.mark.parametrize("name", ["bridge", "host", "none", "default"])
def test_docker_and_libvirt_network_names_are_refused(name, monkeypatch):
    text = DEFAULT_LAB_FILE.read_text().replace("name: halab", f"name: {name}")
    with pytest.raises(LabError, match="Docker's or libvirt's own networks"):
        parse_lab(text)
    monkeypatch.delenv("LAB_FILE", raising=False)
    monkeypatch.setenv("LAB", name)
    with pytest.raises(LabError, match="not a valid lab name"):
        lab_module.lab_file_path()
