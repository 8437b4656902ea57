"""Two checkouts, one lab name: the second neither destroys nor boots over the first's lab,
and says where it lives. `reset` asks first (on a terminal), and without one resets as
documented."""
import os
import pty
import re
import shutil
import subprocess

import pytest

from fabfile.core.config import PROJECT_DIR
from tests.e2e.conftest import INVOKE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def second_checkout(tmp_path_factory):
    """A copy of this checkout's working tree (uncommitted work included), without its
    state (.lab: so its own identity), its venv or its git folder."""
    root = tmp_path_factory.mktemp("second") / "main"
    if shutil.which("rsync"):
        subprocess.run(["rsync", "-a", "--exclude", ".lab", "--exclude", ".venv", "--exclude", ".git",
                        "--exclude", ".vagrant", f"{PROJECT_DIR}/", f"{root}/"], check=True)
    else:
        shutil.copytree(PROJECT_DIR, root, ignore=shutil.ignore_patterns(".lab", ".venv", ".git", ".vagrant"))
    return root


def invoke_in(root, env, *args):
    return subprocess.run([*INVOKE, *args], cwd=root, env=env, text=True, capture_output=True, timeout=600)


def container_ids(lab_cli):
    names = [f"{lab_cli.lab.name}-{h}" for h in lab_cli.lab.host_names]
    out = subprocess.run(["docker", "inspect", "-f", "{{.Name}} {{.Id}}", *names], capture_output=True,
                         text=True).stdout
    return dict(line.lstrip("/").split() for line in out.splitlines())


def test_a_second_checkout_destroys_nothing_of_the_first_ones_lab(lab_cli, provisioned, second_checkout):
    before = container_ids(lab_cli)
    assert len(before) == len(lab_cli.lab.hosts)
    result = invoke_in(second_checkout, lab_cli.env, "destroy", "--yes")
    assert result.returncode == 1, result
    assert f"belongs to another checkout, at {PROJECT_DIR}" in result.stderr, result.stderr
    assert "destroys none of it" in result.stderr
    assert "removed" not in result.stdout, result.stdout
    assert container_ids(lab_cli) == before
    assert lab_cli.lab.name in lab_cli.docker_names("network")
    lab_cli.invoke("verify")


def test_a_second_checkout_refuses_to_boot_over_it_and_says_where_it_lives(lab_cli, provisioned,
                                                                          second_checkout):
    before = container_ids(lab_cli)
    result = invoke_in(second_checkout, lab_cli.env, "up", "--provider", "docker")
    assert result.returncode == 1, result
    assert f"lab {lab_cli.lab.name!r} belongs to another checkout, at {PROJECT_DIR}" in result.stderr
    assert f"cd {PROJECT_DIR} && .venv/bin/invoke destroy --yes" in result.stderr
    assert container_ids(lab_cli) == before
    assert not (second_checkout / ".lab" / lab_cli.lab.name / "vagrant" / "machines").exists() or \
        not list((second_checkout / ".lab" / lab_cli.lab.name / "vagrant" / "machines").glob("*/docker/id"))
    lab_cli.invoke("verify")


def test_reset_on_a_terminal_asks_naming_the_hosts_and_no_keeps_them(lab_cli, provisioned):
    before = container_ids(lab_cli)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*INVOKE, "reset", "--hosts", "web1"], cwd=PROJECT_DIR, env=lab_cli.env,
                                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(master, b"n\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1 and "not reset" in err, (out, err)
    assert f"Reset web1 of lab {lab_cli.lab.name} (docker) to provisioned?" in out
    assert "web1 goes back to snapshot 'provisioned'" in out
    assert "everything on it is lost" in out and out.rstrip().endswith("[y/N]")
    assert container_ids(lab_cli) == before


def test_reset_without_a_terminal_resets_as_documented_then_with_yes(lab_cli, provisioned):
    before = container_ids(lab_cli)
    out = lab_cli.invoke("reset", "--hosts", "web1").stdout  # stdin is not a terminal: no question
    assert "[y/N]" not in out
    assert "resetting web1 to provisioned: web1 goes back to snapshot 'provisioned'" in out, out
    after = container_ids(lab_cli)
    assert after["%s-web1" % lab_cli.lab.name] != before["%s-web1" % lab_cli.lab.name], "a new container from the snapshot"
    assert {k: v for k, v in after.items() if not k.endswith("-web1")} == \
        {k: v for k, v in before.items() if not k.endswith("-web1")}, "only web1"
    lab_cli.invoke("verify")
    out = lab_cli.invoke("reset", "--hosts", "web1", "--yes").stdout
    assert "reset to provisioned in" in out
    assert container_ids(lab_cli)["%s-web1" % lab_cli.lab.name] != after["%s-web1" % lab_cli.lab.name]
    lab_cli.invoke("verify")
