"""Which Vagrant provider runs the lab: the one asked for, the one the lab already uses,
VirtualBox where it works, else Docker."""
import glob
import os
import shutil
import subprocess

from .errors import LabError

PROVIDERS = ("virtualbox", "libvirt", "docker")


def _runs(command, timeout=10):
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def virtualbox_usable():
    if not shutil.which("VBoxManage"):
        return False, "VBoxManage not found"
    if os.path.exists("/proc/modules") and not os.path.exists("/dev/vboxdrv"):
        return False, "VirtualBox's kernel driver (/dev/vboxdrv) is not loaded"
    if not _runs(["VBoxManage", "list", "hostonlyifs"]):
        return False, "VBoxManage does not answer"
    return True, "VBoxManage works"


def libvirt_usable():
    plugin = glob.glob("/usr/share/rubygems-integration/all/specifications/vagrant-libvirt*") \
        or glob.glob(os.path.expanduser("~/.vagrant.d/gems/*/gems/vagrant-libvirt-*"))
    if not plugin:
        return False, "the vagrant-libvirt plugin is not installed"
    if not os.path.exists("/dev/kvm"):
        return False, "/dev/kvm is missing (no hardware virtualisation)"
    if not shutil.which("virsh") or not _runs(["virsh", "-c", "qemu:///system", "version"]):
        return False, "libvirtd does not answer (virsh -c qemu:///system version)"
    return True, "libvirt and KVM work"


def docker_usable():
    if not shutil.which("docker"):
        return False, "the docker command is not installed"
    if not _runs(["docker", "info"]):
        return False, "the docker daemon is not running (start it: sudo dockerd & or systemctl start docker)"
    return True, "the docker daemon answers"


CHECKS = {"virtualbox": virtualbox_usable, "libvirt": libvirt_usable, "docker": docker_usable}


def provider_in_use(lab_hosts, machines_dir):
    """The providers of machines this lab already created, from Vagrant's data folder."""
    found = set()
    for name in lab_hosts:
        for provider in PROVIDERS:
            if (machines_dir / name / provider / "id").exists():
                found.add(provider)
    return found


def choose_provider(requested, in_use, usable):
    """Pick the provider: `requested` wins, then the one already in use, then VirtualBox
    when `usable("virtualbox")` says so, else docker. `usable(name)` returns (ok, why)."""
    if requested and requested not in PROVIDERS:
        raise LabError(f"unknown provider {requested!r}", f"use one of: {', '.join(PROVIDERS)}")
    if len(in_use) > 1:
        raise LabError(f"this lab's machines use several providers ({', '.join(sorted(in_use))})",
                       "run `invoke destroy --yes`, then `invoke up`")
    current = next(iter(in_use), None)
    if requested and current and requested != current:
        raise LabError(f"the lab already runs on {current}; it cannot be booted on {requested} as well",
                       f"use --provider {current}, or `invoke destroy --yes` first")
    choice = requested or current or os.environ.get("VAGRANT_DEFAULT_PROVIDER")
    if not choice:
        choice = "virtualbox" if usable("virtualbox")[0] else "docker"
    ok, why = usable(choice)
    if not ok:
        fixes = {"docker": "run scripts/setup.sh (installs docker.io and starts the daemon)",
                 "virtualbox": "install VirtualBox, or use --provider docker",
                 "libvirt": "install vagrant-libvirt and libvirt, or use --provider docker"}
        raise LabError(f"provider {choice} is not usable: {why}", fixes[choice])
    return choice


def usable(name):
    return CHECKS[name]()
