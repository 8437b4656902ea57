"""End-to-end tests: a real lab on the docker provider, booted once for the session and
destroyed at the end. Tests run in file order: boot, provision, verify, lifecycle.

HALAB_E2E_PROVIDERS (default `docker`) names the providers to test, e.g.
`docker,libvirt`: libvirt's tests (test_0_libvirt.py) boot five VMs of their own, first
and alone, and destroy them before the docker lab boots. `.ci/run` adds libvirt where
QEMU boots a guest."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fabfile.core.config import PROJECT_DIR
from fabfile.core.lab import load_lab

# HALAB_E2E_LAB_FILE: another lab file (its own name and subnet), so that two e2e runs on
# one machine never share a lab.
# Absolute: some tests run the commands from another checkout.
LAB_FILE = Path(os.environ.get("HALAB_E2E_LAB_FILE") or Path(__file__).with_name("lab.yml")).resolve()
INVOKE = [sys.executable, "-m", "invoke"]
PROVIDERS = [p.strip() for p in os.environ.get("HALAB_E2E_PROVIDERS", "docker").split(",") if p.strip()]
# The libvirt lab: VMs under QEMU, on their own name and subnet.
LIBVIRT_LAB_FILE = Path(os.environ.get("HALAB_E2E_LIBVIRT_LAB_FILE") or Path(__file__).with_name("lab-libvirt.yml"))


class LabCLI:
    """Runs the project's own commands against the test lab, as a user would."""

    def __init__(self, lab_file=LAB_FILE, provider="docker"):
        self.lab = load_lab(lab_file)
        self.provider = provider
        self.env = dict(os.environ, LAB_FILE=str(lab_file), VAGRANT_DEFAULT_PROVIDER=provider)

    def invoke(self, *args, check=True, timeout=900):
        result = subprocess.run([*INVOKE, *args], cwd=PROJECT_DIR, env=self.env, text=True,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"invoke {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def run(self, command, *options, check=True):
        return self.invoke("run", command, *options, check=check)

    def docker_names(self, kind):
        cmd = ["docker", kind, "ls", "--format", "{{.Name}}"] if kind == "network" else \
            ["docker", "ps", "-a", "--format", "{{.Names}}"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="session")
def lab_cli():
    cli = LabCLI()
    cli.invoke("up", "--provider", "docker")
    yield cli
    cli.invoke("destroy", "--yes", check=False)


def read_json(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def provisioned(lab_cli, tmp_path_factory):
    """The lab provisioned once; the report of that cold run."""
    report = tmp_path_factory.mktemp("provision") / "cold.json"
    lab_cli.invoke("provision", "--json", str(report))
    return read_json(report)
