"""Preflight: every prerequisite of the lab, with a verdict and the fix."""
import importlib.metadata
import os
import shutil
import subprocess
from dataclasses import dataclass

from ..core.config import ENVIRONMENT
from ..core.errors import LabError
from ..core.lab import ROLES, check_provider_network, load_lab
from ..machines.providers import PROVIDERS, choose_provider, default_provider, docker, libvirt, usable
from ..roles import ROLES as ROLE_MODULES

PYTHON_PACKAGES = ("fabric", "invoke", "python-vagrant", "jinja2", "paramiko", "pyyaml")


@dataclass
class Finding:
    item: str
    verdict: str  # ok | warn | fail
    detail: str
    fix: str = ""


def check_lab_file():
    try:
        lab = load_lab()
        for role in ROLE_MODULES.values():
            role.settings(lab)  # lab.yml's settings: names each role knows
    except LabError as exc:
        return None, Finding("lab.yml", "fail", exc.problem, exc.fix or "")
    counts = ", ".join(f"{len(lab.with_role(r))} {r}" for r in ROLES if lab.with_role(r) or r != "monitor")
    return lab, Finding("lab.yml", "ok", f"lab {lab.name}: {counts}; {lab.network}, VIP {lab.vip}")


def check_vagrant():
    if not shutil.which("vagrant"):
        return Finding("vagrant", "fail", "not found", "run scripts/setup.sh, or install Vagrant")
    out = subprocess.run(["vagrant", "--version"], capture_output=True, text=True).stdout.strip()
    return Finding("vagrant", "ok", out)


def check_providers():
    findings, any_ok = [], False
    for name in PROVIDERS:
        ok, why = usable(name)
        any_ok = any_ok or ok
        findings.append(Finding(f"provider {name}", "ok" if ok else "warn", why))
    if not any_ok:
        findings.append(Finding("providers", "fail", "no provider is usable",
                                "run scripts/setup.sh (installs docker.io and starts it)"))
        return findings
    try:
        chosen = choose_provider(None, set(), usable)
        _, why = default_provider(usable, lambda: libvirt.accelerator(probe=False))
        findings.append(Finding("provider choice", "ok", f"`invoke up` uses {chosen} unless told "
                                                         f"otherwise (--provider): {why}"))
    except LabError as exc:
        findings.append(Finding("provider choice", "fail", exc.problem, exc.fix or ""))
    return findings


def check_box():
    if not usable("docker")[0]:
        return Finding("docker box", "warn", "docker is not usable; box not checked")
    image = docker.box_image()
    if docker.box_built():
        return Finding("docker box", "ok", f"{image} is built")
    fix = "`invoke up` builds it (a minute), or run scripts/build-docker-box.sh"
    if not shutil.which("debootstrap"):
        return Finding("docker box", "fail", f"{image} is not built and debootstrap is missing",
                       "apt-get install debootstrap (scripts/setup.sh does it)")
    return Finding("docker box", "warn", f"{image} is not built yet", fix)


def check_libvirt():
    """The libvirt box and what boots it, where libvirt answers."""
    if not usable("libvirt")[0]:
        return []
    box = libvirt.box_name()
    if not libvirt.box_built():
        return [Finding("libvirt box", "warn", f"{box} is not built yet",
                        "`invoke up --provider libvirt` builds it (about 7 minutes), or run "
                        "scripts/build-libvirt-box.sh")]
    accel = libvirt.accelerator(probe=False)
    found = [Finding("libvirt box", "ok", f"{box} is built")]
    if accel == "kvm":
        found.append(Finding("libvirt accelerator", "ok", "KVM boots the box"))
    elif accel == "tcg":
        found.append(Finding("libvirt accelerator", "warn",
                             "only software emulation (TCG) boots the box: VMs work, minutes per boot",
                             "docker stays the default here; --provider libvirt for VMs"))
    else:
        found.append(Finding("libvirt accelerator", "warn", "not probed yet",
                             "scripts/probe-accelerator.sh (boots the box for up to 3 minutes)"))
    return found


def check_network(lab):
    findings = []
    try:
        check_provider_network(lab, "virtualbox")
        findings.append(Finding("network (VirtualBox)", "ok", f"{lab.network} is in the host-only range"))
    except LabError as exc:
        verdict = "fail" if usable("virtualbox")[0] else "warn"
        findings.append(Finding("network (VirtualBox)", verdict, exc.problem, exc.fix or ""))
    for name, label, conflicts in (("docker", "Docker", lambda: docker.network_conflicts(lab, docker.networks())),
                                   ("libvirt", "libvirt", lambda: libvirt.network_conflicts(lab, libvirt.all_networks()))):
        if not usable(name)[0]:
            continue
        problems = conflicts()
        for problem in problems:
            findings.append(Finding(f"network ({name})", "fail", problem.problem, problem.fix or ""))
        if not problems:
            findings.append(Finding(f"network ({name})", "ok", f"no other {label} network overlaps {lab.network}"))
    return findings


def check_memory(lab):
    wanted = sum(h.memory for h in lab.hosts)
    available = None
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) // 1024
    if available is None:
        return Finding("memory", "warn", "could not read /proc/meminfo")
    detail = f"{available} MiB available, lab.yml asks {wanted} MiB"
    if available < wanted:
        return Finding("memory", "fail", detail, "lower memory: in lab.yml or free memory")
    return Finding("memory", "ok", detail)


def check_python_packages():
    missing, versions = [], []
    for name in PYTHON_PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Finding("python packages", "fail", f"missing: {', '.join(missing)}",
                       "run scripts/setup.sh (pip install -r requirements.txt into .venv)")
    return Finding("python packages", "ok", ", ".join(versions))


def check_environment(environ=None):
    """Which of the lab's environment variables are set: they change what every command does."""
    environ = os.environ if environ is None else environ
    found = [f"{name}={environ[name]} ({what})" for name, what in ENVIRONMENT.items() if environ.get(name)]
    return Finding("environment", "ok", "; ".join(found) if found else "none of "
                   + ", ".join(ENVIRONMENT) + " is set: lab.yml and the defaults decide")


def run_checks():
    lab, lab_finding = check_lab_file()
    findings = [check_environment(), lab_finding, check_vagrant(), *check_providers(), check_box(), *check_libvirt()]
    if lab:
        findings += [*check_network(lab), check_memory(lab)]
    findings.append(check_python_packages())
    return findings
