"""The providers, and which one runs the lab: the one asked for, the one the lab already
uses, VirtualBox where it works, libvirt where KVM boots a guest, else Docker (also where
libvirt would run VMs only under software emulation: `--provider libvirt` asks for them)."""
from ...core import config
from ...core.errors import LabError
from ...core.state import machines_dir
from .docker import DOCKER
from . import libvirt
from .libvirt import LIBVIRT
from .virtualbox import VIRTUALBOX

PROVIDERS = {p.name: p for p in (VIRTUALBOX, LIBVIRT, DOCKER)}


def get(name):
    return PROVIDERS[name]


def usable(name):
    return PROVIDERS[name].usable()


def provider_in_use(lab_hosts, machines_dir):
    """The providers of machines this lab already created, from Vagrant's data folder."""
    found = set()
    for name in lab_hosts:
        for provider in PROVIDERS:
            if (machines_dir / name / provider / "id").exists():
                found.add(provider)
    return found


def lab_provider(lab):
    """The provider the lab's machines run on; before any exists, the environment's default
    (VAGRANT_DEFAULT_PROVIDER); None when neither says (or the machines use several)."""
    in_use = provider_in_use(lab.host_names, machines_dir(lab))
    if in_use:
        return next(iter(in_use)) if len(in_use) == 1 else None
    wanted = config.current().provider
    return wanted if wanted in PROVIDERS else None


def lab_timer_profile(lab):
    """Which VRRP timers suit the lab's machines: its provider's, and on libvirt its
    accelerator's ("libvirt/tcg"); None when the provider is unknown."""
    name = lab_provider(lab)
    return PROVIDERS[name].timer_profile() if name else None


def default_provider(usable, accelerator):
    """(provider, why) when nothing asks for one. `usable(name)` returns (ok, why);
    `accelerator()` what boots a libvirt guest here ("kvm", "tcg", "none" or "")."""
    if usable("virtualbox")[0]:
        return "virtualbox", "VirtualBox works here"
    if usable("libvirt")[0]:
        accel = accelerator()
        if accel == "kvm":
            return "libvirt", "libvirt works here and KVM boots its guests"
        if accel == "tcg":
            return "docker", ("libvirt works here, but its VMs run only under software emulation "
                              "(TCG, minutes per boot); `--provider libvirt` asks for them anyway")
        return "docker", ("libvirt works here, but whether KVM boots a guest is not known yet "
                          "(scripts/probe-accelerator.sh); `--provider libvirt` asks for VMs")
    return "docker", "neither VirtualBox nor libvirt works here"


def choose_provider(requested, in_use, usable, default=None, accelerator=None):
    """Pick the provider: `requested` wins, then the one already in use, then the
    environment's default, then `default_provider`. `usable(name)` returns (ok, why);
    `accelerator()` what boots a libvirt guest (the probe's kept answer by default)."""
    if requested and requested not in PROVIDERS:
        raise LabError(f"unknown provider {requested!r}", f"use one of: {', '.join(PROVIDERS)}")
    if len(in_use) > 1:
        raise LabError(f"this lab's machines use several providers ({', '.join(sorted(in_use))})",
                       "run `invoke destroy --yes`, then `invoke up`")
    current = next(iter(in_use), None)
    if requested and current and requested != current:
        raise LabError(f"the lab already runs on {current}; it cannot be booted on {requested} as well",
                       f"use --provider {current}, or `invoke destroy --yes` first")
    choice = requested or current or default or config.current().provider
    if not choice:
        choice, _ = default_provider(usable, accelerator or (lambda: libvirt.accelerator(probe=False)))
    ok, why = usable(choice)
    if not ok:
        raise LabError(f"provider {choice} is not usable: {why}", PROVIDERS[choice].install_fix)
    return choice
