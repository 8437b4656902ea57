"""ssh-config parsing on canned `vagrant ssh-config` output."""
from fabfile.remote.connection import parse_ssh_config

CANNED = """Host lb1
  HostName 127.0.0.1
  User vagrant
  Port 2202
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /work/main/.lab/halab/vagrant/machines/lb1/docker/private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host web1
  HostName 192.168.121.7
  User vagrant
  Port 22
  IdentityFile "/home/student/lab dir/.vagrant/machines/web1/virtualbox/private_key"
  IdentitiesOnly yes
"""


def test_parses_each_declared_host():
    endpoints = parse_ssh_config(CANNED, ["lb1", "lb2", "web1"])
    assert set(endpoints) == {"lb1", "web1"}, "a host absent from the config is not invented"
    lb1 = endpoints["lb1"]
    assert (lb1.hostname, lb1.port, lb1.user) == ("127.0.0.1", 2202, "vagrant")
    assert lb1.identity_files == ("/work/main/.lab/halab/vagrant/machines/lb1/docker/private_key",)


def test_quoted_identity_file_with_spaces():
    web1 = parse_ssh_config(CANNED, ["web1"])["web1"]
    assert web1.identity_files == ("/home/student/lab dir/.vagrant/machines/web1/virtualbox/private_key",)
    assert web1.port == 22


def test_empty_config_has_no_endpoints():
    assert parse_ssh_config("", ["lb1"]) == {}


def test_host_blocks_split_and_join_back():
    from fabfile.remote.connection import split_host_blocks
    blocks = split_host_blocks(CANNED)
    assert list(blocks) == ["lb1", "web1"]
    assert blocks["web1"].startswith("Host web1\n") and blocks["web1"].endswith("\n\n")
    assert parse_ssh_config("".join(blocks.values()), ["lb1", "web1"]) == \
        parse_ssh_config(CANNED, ["lb1", "web1"])
