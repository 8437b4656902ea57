"""The libvirt provider (vagrant-libvirt): VMs under QEMU, with KVM where it works."""
import glob
import os
import shutil
import subprocess

from ...core.errors import LabError
from .base import Provider

LIBVIRT_URI = "qemu:///system"


def domain_name(lab, host):
    """vagrant-libvirt's domain name: the Vagrantfile's default_prefix, then the machine."""
    return f"{lab.name}-{host}"


class LibvirtProvider(Provider):
    name = "libvirt"
    has_snapshots = True
    install_fix = "install vagrant-libvirt and libvirt, or use --provider docker"

    def usable(self):
        plugin = glob.glob("/usr/share/rubygems-integration/all/specifications/vagrant-libvirt*") \
            or glob.glob(os.path.expanduser("~/.vagrant.d/gems/*/gems/vagrant-libvirt-*"))
        if not plugin:
            return False, "the vagrant-libvirt plugin is not installed"
        if not os.path.exists("/dev/kvm"):
            return False, "/dev/kvm is missing (no hardware virtualisation)"
        try:
            ok = shutil.which("virsh") and subprocess.run(
                ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            return False, "libvirtd does not answer (virsh -c qemu:///system version)"
        return True, "libvirt and KVM work"

    def console_argv(self, lab, host, command=None):
        """The guest's serial console (the box's kernel and getty speak on ttyS0)."""
        if command:
            raise LabError(f"{host}'s serial console is a login prompt; it cannot run one command",
                           f"open it without --command (invoke console {host}), log in as vagrant, "
                           "and leave with Ctrl-]")
        return ["virsh", "-c", LIBVIRT_URI, "console", domain_name(lab, host)]


LIBVIRT = LibvirtProvider()
