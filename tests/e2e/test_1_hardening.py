"""The containers run with least privilege, logins are by key only, and every SSH connection
checks the host key recorded when the host was created."""
import contextlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from fabfile.checks.netsafety import ensure_local_route
from fabfile.core.state import known_hosts_path

pytestmark = pytest.mark.e2e

HOST_CGROUPS = Path("/sys/fs/cgroup")
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"


def container(lab_cli, host):
    return f"{lab_cli.lab.name}-{host}"


def docker(*args, timeout=30, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def host_hierarchies():
    """The host's cgroup hierarchies: the v1 controllers, name=systemd, and cgroup2."""
    return sorted(p for p in HOST_CGROUPS.iterdir() if p.is_dir() and not p.is_symlink()
                  and (p / "cgroup.procs").exists())


def test_containers_run_without_sys_admin_seccomp_off_or_the_hosts_cgroup_namespace(lab_cli):
    inspected = json.loads(docker("inspect", *(container(lab_cli, h.name) for h in lab_cli.lab.hosts)).stdout)
    for c in inspected:
        config = c["HostConfig"]
        assert config["Privileged"] is False, c["Name"]
        assert [cap.removeprefix("CAP_") for cap in config["CapAdd"]] == ["NET_ADMIN"], config["CapAdd"]
        assert {cap.removeprefix("CAP_") for cap in config["CapDrop"]} == {"MKNOD", "SETFCAP", "AUDIT_WRITE",
                                                                          "FSETID"}, config["CapDrop"]
        assert not [o for o in config.get("SecurityOpt") or [] if "unconfined" in o], config["SecurityOpt"]
        assert config["CgroupnsMode"] == "private", c["Name"]
        assert not [b for b in config["Binds"] if b.split(":")[0] in ("/sys/fs/cgroup", "/sys")], config["Binds"]


def test_root_in_a_container_cannot_write_the_hosts_cgroup_tree(lab_cli):
    """Root in lb1 tries every way in: a folder at each hierarchy's root, and its own shell
    moved into each root's cgroup.procs. On the host, no hierarchy's root gains the folder
    or a process of the container."""
    marker = f"halab-escape-{os.getpid()}"
    attempt = (f"for root in /sys/fs/cgroup /sys/fs/cgroup/*; do "
               f"mkdir \"$root/{marker}\" 2>/dev/null && echo \"made $root\"; "
               f"echo $$ 2>/dev/null > \"$root/cgroup.procs\" && echo \"joined $root\"; done; "
               f"echo ready; sleep 4; "
               f"for root in /sys/fs/cgroup /sys/fs/cgroup/*; do rmdir \"$root/{marker}\" 2>/dev/null; done; true")
    name = container(lab_cli, "lb1")
    init_pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    container_pidns = os.readlink(f"/proc/{init_pid}/ns/pid")
    proc = subprocess.Popen(["docker", "exec", name, "sh", "-c", attempt], stdout=subprocess.PIPE, text=True)
    escaped, made = [], []
    try:
        said = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.strip() == "ready":
                break
            said.append(line.strip())
        for hierarchy in host_hierarchies():
            if (hierarchy / marker).exists():
                made.append(str(hierarchy))
            for pid in (hierarchy / "cgroup.procs").read_text().split():
                try:
                    if os.readlink(f"/proc/{pid}/ns/pid") == container_pidns:
                        escaped.append(f"{hierarchy}: pid {pid}")
                except OSError:
                    continue
    finally:
        proc.wait(timeout=30)
        for path in made:  # what --cgroupns=host with the host's tree mounted rw let it make
            with contextlib.suppress(FileNotFoundError):  # the container's script removes its own
                Path(path, marker).rmdir()
    assert made == [], f"root in {name} made {marker} at the host's cgroup roots: {made} (it said {said})"
    assert escaped == [], f"root in {name} moved itself into the host's root cgroups: {escaped}"


def test_password_logins_are_refused_and_the_vagrant_password_is_locked(lab_cli):
    db1 = lab_cli.lab.host("db1")
    ensure_local_route(db1.ip, lab_cli.lab.network)  # the lab's own address, on its own bridge
    transport = paramiko.Transport((db1.ip, 22))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.AuthenticationException) as refused:
            transport.auth_password("vagrant", "vagrant")
        allowed = getattr(refused.value, "allowed_types", [])
        assert "password" not in allowed and "keyboard-interactive" not in allowed, allowed
    finally:
        transport.close()
    out = lab_cli.run("sudo -n passwd --status vagrant; sudo -n sshd -T | grep -i -E "
                      "'^(passwordauthentication|kbdinteractiveauthentication) '").stdout
    for host in lab_cli.lab.hosts:
        lines = [line.split("| ", 1)[1] for line in out.splitlines() if line.startswith(host.name + " ")]
        assert any(line.startswith("vagrant L ") for line in lines), (host.name, lines)
        assert "passwordauthentication no" in lines and "kbdinteractiveauthentication no" in lines, lines


def test_each_host_has_its_own_host_key_recorded_out_of_band(lab_cli):
    recorded = dict(line.split(" ", 1) for line in known_hosts_path(lab_cli.lab).read_text().splitlines())
    assert sorted(recorded) == sorted(h.name for h in lab_cli.lab.hosts)
    for host in lab_cli.lab.hosts:
        pub = docker("exec", container(lab_cli, host.name), "cat", HOST_KEY_FILE).stdout.split()
        assert recorded[host.name] == f"{pub[0]} {pub[1]}", host.name
    assert len(set(recorded.values())) == len(recorded), "no two containers share a host key"
    assert (os.stat(known_hosts_path(lab_cli.lab)).st_mode & 0o777) == 0o600


@pytest.fixture
def forged_key_for_web1(lab_cli):
    """web1's recorded key replaced by lb1's, as if another machine answered at its address;
    the file put back afterwards."""
    path = known_hosts_path(lab_cli.lab)
    original = path.read_text()
    keys = dict(line.split(" ", 1) for line in original.splitlines())
    keys["web1"] = keys["lb1"]
    path.write_text("".join(f"{h} {k}\n" for h, k in keys.items()))
    yield
    path.write_text(original)


def test_a_host_key_mismatch_is_refused_with_the_host_and_the_fix(lab_cli, forged_key_for_web1):
    result = lab_cli.run("hostname", check=False)
    assert result.returncode != 0
    assert "web1" in result.stderr or "web1" in result.stdout
    said = result.stdout + result.stderr
    assert "not the one recorded" in said and "invoke reset --recreate --hosts web1" in said, said
    for host in ("lb1", "lb2", "app1", "db1"):
        assert re.search(rf"^{host}\s*\| {host}$", result.stdout, re.M), "the other hosts still answer"
    ssh = lab_cli.invoke("ssh", "web1", "-c", "hostname", check=False)
    assert ssh.returncode != 0 and "Host key verification failed" in ssh.stderr, ssh.stderr


def test_invoke_ssh_checks_strictly_against_the_labs_known_hosts(lab_cli):
    assert lab_cli.invoke("ssh", "web1", "-c", "hostname").stdout.strip() == "web1"


def test_a_restored_host_keeps_its_key(lab_cli, provisioned):
    """`reset` restores the host's snapshot (docker commits containers), and the host key
    is a file in the container: it comes back with it and still matches the record."""
    before = known_hosts_path(lab_cli.lab).read_text()
    lab_cli.invoke("reset", "--hosts", "web1", "--yes")
    assert known_hosts_path(lab_cli.lab).read_text() == before
    assert lab_cli.invoke("ssh", "web1", "-c", "hostname").stdout.strip() == "web1"


def test_a_recreated_host_gets_its_new_key_recorded_and_the_others_keep_theirs(lab_cli, provisioned):
    before = known_hosts_path(lab_cli.lab).read_text().splitlines()
    # Without its snapshot, `reset --recreate` destroys web1, creates it and provisions it
    # (with the snapshot, reset restores it and the key with it: the test above).
    lab_cli.invoke("snapshot.delete", "provisioned", "--hosts", "web1")
    lab_cli.invoke("reset", "--hosts", "web1", "--recreate", "--yes")
    after = dict(line.split(" ", 1) for line in known_hosts_path(lab_cli.lab).read_text().splitlines())
    before = dict(line.split(" ", 1) for line in before)
    assert after["web1"] != before["web1"], "web1 made new keys at its first boot"
    pub = docker("exec", container(lab_cli, "web1"), "cat", HOST_KEY_FILE).stdout.split()
    assert after["web1"] == f"{pub[0]} {pub[1]}"
    assert {h: k for h, k in after.items() if h != "web1"} == {h: k for h, k in before.items() if h != "web1"}
    out = lab_cli.run("hostname").stdout  # every host, web1 included, passes the strict check
    for host in lab_cli.lab.hosts:
        assert re.search(rf"^{host.name}\s*\| {host.name}$", out, re.M), out
