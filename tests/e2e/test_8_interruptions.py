"""A lab that always converges: runs interrupted by Ctrl-C, hosts that freeze, a package
install cut short, services and interfaces broken by hand. Each test breaks the lab the
way a user or a drill would and checks that the next command repairs it."""
import os
import signal
import subprocess
import time

import pytest

from fabfile.core.config import PROJECT_DIR
from tests.e2e.conftest import INVOKE

pytestmark = pytest.mark.e2e

VERIFY_WITHIN_S = 30   # how long the lab may take to settle after an interrupted drill


def verify_passes_within(lab_cli, seconds):
    """`invoke verify` passes within `seconds` (keepalived's MASTER may need a moment to
    take the VIP back); returns the last output."""
    deadline = time.monotonic() + seconds
    while True:
        result = lab_cli.invoke("verify", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(2)


def interrupt_after(lab_cli, args, marker, delay):
    """Start `invoke ARGS` in its own process group, wait for `marker` in its output, wait
    `delay` seconds and press Ctrl-C (SIGINT to the whole group, as a terminal does).
    Returns (exit code, output, seconds from the interrupt to the exit)."""
    process = subprocess.Popen([*INVOKE, *args], cwd=PROJECT_DIR, env=lab_cli.env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines, deadline = [], time.monotonic() + 120
    try:
        for line in process.stdout:
            lines.append(line)
            if marker in line or time.monotonic() > deadline:
                break
        assert any(marker in line for line in lines), "".join(lines)
        time.sleep(delay)
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=180)
        return process.returncode, "".join(lines) + rest, time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.parametrize("scenario", ["haproxy", "keepalived", "network", "halt", "crash"])
def test_ctrl_c_during_a_drill_undoes_its_fault(lab_cli, provisioned, scenario):
    code, output, _ = interrupt_after(lab_cli, ["failover", "--scenario", scenario], "breaking it", 2.0)
    assert code != 0, output
    assert f"drill {scenario}: undoing the fault" in output, output
    result = verify_passes_within(lab_cli, VERIFY_WITHIN_S)
    assert result.returncode == 0, result.stdout


def test_provision_repairs_what_a_drill_or_a_student_breaks(lab_cli, provisioned):
    lab_cli.run("sudo ip link set $(ip -o -4 addr show | awk '/ 192\\.168\\./ {print $2; exit}') down",
                "--hosts", "lb2", "--timeout", "10", check=False)
    lab_cli.run("sudo systemctl disable --now nginx", "--hosts", "web1")
    lab_cli.invoke("halt", "--hosts", "app1")
    assert lab_cli.invoke("verify", check=False).returncode != 0

    out = lab_cli.invoke("provision").stdout
    assert "app1  | stopped: booting it first" in out, out
    assert "lb2   | changed      interface of" in out, out
    assert "web1  | changed      service nginx: enable, start" in out, out
    result = verify_passes_within(lab_cli, VERIFY_WITHIN_S)
    assert result.returncode == 0, result.stdout
    assert "nothing changed" in lab_cli.invoke("provision").stdout


def docker_pause(lab_cli, host, after_s):
    """Freeze `host`'s container `after_s` seconds from now, in the background."""
    name = f"{lab_cli.lab.name}-{host}"
    return subprocess.Popen(["sh", "-c", f"sleep {after_s}; docker pause {name}"])


def docker_unpause(lab_cli, host):
    subprocess.run(["docker", "unpause", f"{lab_cli.lab.name}-{host}"], capture_output=True, timeout=30)


def test_a_host_that_freezes_during_run_fails_its_row_within_the_bound(lab_cli, provisioned):
    pauser = docker_pause(lab_cli, "db1", 2)
    started = time.monotonic()
    try:
        result = lab_cli.run("sleep 5; echo done", "--hosts", "db1,web1", "--timeout", "10", check=False)
    finally:
        pauser.wait(timeout=30)
        docker_unpause(lab_cli, "db1")
    took = time.monotonic() - started
    assert result.returncode != 0 and took < 30, (took, result.stdout, result.stderr)
    assert "db1 (no answer)" in result.stderr, result.stderr
    assert "web1  | done" in result.stdout, result.stdout


def test_a_host_that_freezes_during_provision_fails_alone_and_the_rerun_converges(lab_cli, provisioned, tmp_path):
    # Every host has something to do: a changed message of the day.
    overlay = tmp_path / "templates" / "common"
    overlay.mkdir(parents=True)
    motd = (PROJECT_DIR / "templates" / "common" / "motd.j2").read_text()
    (overlay / "motd.j2").write_text(motd + "  (an exercise changed this line)\n")
    lab_cli.env["HALAB_TEMPLATES"] = str(tmp_path / "templates")
    pauser = docker_pause(lab_cli, "db1", 0)
    started = time.monotonic()
    try:
        pauser.wait(timeout=30)
        result = lab_cli.invoke("provision", check=False, timeout=300)
    finally:
        docker_unpause(lab_cli, "db1")
    took = time.monotonic() - started
    try:
        assert result.returncode != 0 and took < 120, (took, result.stdout)
        assert "db1" in result.stderr and "db1   | FAILED" in result.stdout, result.stdout
        for host in ("lb1", "lb2", "web1"):
            assert f"{host:<6}| done:" in result.stdout, result.stdout
        rerun = lab_cli.invoke("provision").stdout
        assert "db1" in rerun and "FAILED" not in rerun
    finally:
        del lab_cli.env["HALAB_TEMPLATES"]
        lab_cli.invoke("provision")
    assert "nothing changed" in lab_cli.invoke("provision").stdout


def test_an_interrupted_package_install_is_finished_by_the_next_provision(lab_cli, provisioned):
    # What dpkg leaves when it is killed halfway: a journal in /var/lib/dpkg/updates/.
    lab_cli.run("sudo apt-get remove -y -q default-mysql-client >/dev/null 2>&1 && "
                "sudo sh -c ': > /var/lib/dpkg/updates/0001'", "--hosts", "app1")
    broken = lab_cli.run("sudo apt-get install -y -q --no-download default-mysql-client 2>&1 || true",
                         "--hosts", "app1").stdout
    assert "dpkg was interrupted" in broken, broken
    out = lab_cli.invoke("provision", "--hosts", "app1").stdout
    assert "changed      packages" in out, out
    lab_cli.run("dpkg-query -W -f='${db:Status-Status}' default-mysql-client | grep -qx installed",
                "--hosts", "app1")


# What an install cut short by Ctrl-C leaves on the guest: apt-get goes on without us and
# holds dpkg's lock for a while (here for 8 s, by a stand-in that says when it holds it).
HOLD_DPKG_LOCK = ("import fcntl, pathlib, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
                  "fcntl.lockf(f, fcntl.LOCK_EX); pathlib.Path('/run/halab-test-locked').touch(); time.sleep(8)")


def test_the_next_provision_waits_for_an_install_a_ctrl_c_left_running(lab_cli, provisioned):
    lab_cli.run("sudo apt-get remove -y -q default-mysql-client >/dev/null 2>&1 && sudo rm -f /run/halab-test-locked && "
                f"sudo systemd-run --quiet --collect --unit=halab-test-dpkg-lock python3 -c \"{HOLD_DPKG_LOCK}\" && "
                "for i in $(seq 50); do [ -e /run/halab-test-locked ] && exit 0; sleep 0.1; done; exit 1",
                "--hosts", "app1")
    out = lab_cli.invoke("provision", "--hosts", "app1").stdout
    assert "changed      packages" in out, out
    lab_cli.run("dpkg-query -W -f='${db:Status-Status}' default-mysql-client | grep -qx installed",
                "--hosts", "app1")


def test_ctrl_c_stops_a_provision_that_waits_on_a_frozen_host_within_two_seconds(lab_cli, provisioned):
    pauser = docker_pause(lab_cli, "db1", 0)
    pauser.wait(timeout=30)
    try:
        code, output, took = interrupt_after(lab_cli, ["provision"], "provisioning as db", 1.0)
    finally:
        docker_unpause(lab_cli, "db1")
    assert code != 0 and took < 2.0, (took, output)
    assert "provision interrupted; not finished:" in output and "db1" in output, output
    result = lab_cli.invoke("provision")
    assert "FAILED" not in result.stdout, result.stdout
