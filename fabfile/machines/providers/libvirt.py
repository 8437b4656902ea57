"""The libvirt provider (vagrant-libvirt): each host a QEMU domain `<lab>-<host>` on a
libvirt network named after the lab, from a box built locally. KVM where it boots a
guest, else QEMU's software emulation (TCG), found by booting the box
(scripts/probe-accelerator.sh). Each domain's description carries the checkout's mark."""
import filecmp
import glob
import ipaddress
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

from ...core.config import PROJECT_DIR
from ...core.console import say
from ...core.errors import LabError
from ..ownership import CHECKOUT_LABEL, MINE, PATH_LABEL, UNKNOWN, Item, Survey, checkout_id, owner_of
from .base import Provider, run_cli

URI = "qemu:///system"
SCRIPTS = PROJECT_DIR / "scripts"
BOX_SCRIPT = SCRIPTS / "build-libvirt-box.sh"
PROBE_SCRIPT = SCRIPTS / "probe-accelerator.sh"
TCG_WRAPPER = SCRIPTS / "qemu-tcg"
TCG_EMULATOR = "/usr/local/libexec/halab/qemu-tcg"   # where the Vagrantfile points libvirt
STORAGE_POOL = "default"
STORAGE_DIR = "/var/lib/libvirt/images"
VIRSH_TIMEOUT_S = 60
VIRSH_FIX = "check libvirtd: `invoke doctor`"
PROBE_TIMEOUT_S = 300   # a KVM try (60 s) and a TCG boot (150 s at most), with margin
TCG_SLOWNESS = 8
STATES = {"running": "running", "shut off": "shutoff", "paused": "paused", "in shutdown": "stopping",
          "crashed": "shutoff", "pmsuspended": "suspended", "idle": "running", "blocked": "running"}
MARK = re.compile(r"(halab\.[\w-]+)=(\S+)")
BOX_IMAGE = re.compile(r"^(halab-libvirt-[0-9a-f]+)_vagrant_box_image_\S+$")  # vagrant-libvirt's name


def virsh(*args, check=True, timeout=VIRSH_TIMEOUT_S):
    return run_cli("virsh", args, options=("-q", "-c", URI), timeout=timeout, fix=VIRSH_FIX, check=check)


def plugin_installed():
    return bool(glob.glob("/usr/share/rubygems-integration/all/specifications/vagrant-libvirt*")
                or glob.glob(os.path.expanduser("~/.vagrant.d/gems/*/gems/vagrant-libvirt-*")))


def accelerator(probe=True):
    """"kvm", "tcg" or "none": what boots the box here. Asked of the probe script, which
    keeps its answer; with probe=False only the kept answer ("" when there is none)."""
    try:
        result = subprocess.run([str(PROBE_SCRIPT)] + ([] if probe else ["--cached"]),
                                capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return "none" if probe else ""
    return result.stdout.strip()


def box_name():
    return subprocess.run([str(BOX_SCRIPT), "--name"], capture_output=True, text=True,
                          check=True).stdout.strip()


def box_added(name):
    home = os.environ.get("VAGRANT_HOME", os.path.expanduser("~/.vagrant.d"))
    return os.path.isdir(os.path.join(home, "boxes", name))


def box_built():
    return box_added(box_name())


def build_box(echo):
    """Build and add the box when its recipe changed; its progress goes to `echo`."""
    proc = subprocess.Popen([str(BOX_SCRIPT)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        echo(line.rstrip())
    if proc.wait() != 0:
        raise LabError("building the libvirt box failed (see the lines above)",
                       "run scripts/build-libvirt-box.sh as root to see the whole output")


def install_tcg_wrapper():
    """Put scripts/qemu-tcg where the Vagrantfile points libvirt, when it is not there."""
    if os.path.exists(TCG_EMULATOR) and filecmp.cmp(TCG_WRAPPER, TCG_EMULATOR, shallow=False):
        return False
    try:
        os.makedirs(os.path.dirname(TCG_EMULATOR), exist_ok=True)
        shutil.copy(TCG_WRAPPER, TCG_EMULATOR + ".tmp")
        os.chmod(TCG_EMULATOR + ".tmp", 0o755)
        os.replace(TCG_EMULATOR + ".tmp", TCG_EMULATOR)
    except OSError as exc:
        raise LabError(f"cannot install QEMU's TCG wrapper at {TCG_EMULATOR}: {exc}",
                       "run scripts/setup.sh as root") from None
    return True


def ensure_storage_pool():
    if virsh("pool-info", STORAGE_POOL, check=False).returncode == 0:
        if "running" not in virsh("pool-info", STORAGE_POOL).stdout:
            virsh("pool-start", STORAGE_POOL)
        return False
    os.makedirs(STORAGE_DIR, exist_ok=True)
    virsh("pool-define-as", STORAGE_POOL, "dir", "--target", STORAGE_DIR)
    virsh("pool-start", STORAGE_POOL)
    virsh("pool-autostart", STORAGE_POOL)
    return True


def parse_volume_list(text):
    """{volume: path} from `virsh -q vol-list POOL`."""
    return dict(line.split(None, 1) for line in text.splitlines() if len(line.split(None, 1)) == 2)


def backing_path(volume_xml):
    """The file a volume is an overlay of, or None."""
    path = ElementTree.fromstring(volume_xml).find("backingStore/path")
    return None if path is None else path.text


def stale_box_images(volumes, box_present, backing_paths):
    """The pool's copies of the lab's boxes that nothing needs any more: vagrant-libvirt
    uploads a box's disk into the pool at its first use and leaves it there when the box is
    removed (a new recipe removes the old box). Kept while their box is still added or a
    disk in the pool is an overlay of them."""
    stale = []
    for volume, path in volumes.items():
        image = BOX_IMAGE.match(volume)
        if image and not box_present(image.group(1)) and path not in backing_paths:
            stale.append(volume)
    return sorted(stale)


def prune_box_images():
    """Delete the stale box images (see stale_box_images); the volumes deleted."""
    volumes = parse_volume_list(virsh("vol-list", STORAGE_POOL).stdout)
    if not stale_box_images(volumes, box_added, backing_paths=set()):
        return []   # the usual case: one vol-list, no volume read
    backing = {backing_path(virsh("vol-dumpxml", "--pool", STORAGE_POOL, volume).stdout)
               for volume in volumes if not BOX_IMAGE.match(volume)}
    stale = stale_box_images(volumes, box_added, backing)
    for volume in stale:
        virsh("vol-delete", "--pool", STORAGE_POOL, volume)
    return stale


def domain_name(lab, host):
    return f"{lab.name}-{host}"


def parse_domain_list(text):
    """{name: state} from `virsh list --all` (header-less with -q: id, name, state)."""
    found = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            found[parts[1]] = parts[2].strip()
    return found


def parse_mark(description):
    """{label: value} of the halab.* marks in a domain's description."""
    return dict(MARK.findall(description or ""))


def network_subnets(xml_text):
    """The IPv4 subnets a libvirt network's XML gives the host (<ip address netmask|prefix>)."""
    subnets = []
    for ip in ElementTree.fromstring(xml_text).findall("ip"):
        address = ip.get("address")
        mask = ip.get("prefix") or ip.get("netmask")
        if address and mask and ip.get("family", "ipv4") == "ipv4":
            subnets.append(ipaddress.ip_network(f"{address}/{mask}", strict=False))
    return subnets


def network_conflicts(lab, networks):
    """LabErrors for the libvirt networks in the way of this lab's: another network on an
    overlapping subnet, or a network of the lab's name on another subnet. `networks`:
    {name: [ip_network]}. Pure, for unit tests."""
    problems = []
    for name, subnets in sorted(networks.items()):
        for subnet in subnets:
            if name == lab.name and subnet != lab.network:
                problems.append(LabError(
                    f"libvirt network {name!r} exists on {subnet}, but the lab file says {lab.network}",
                    "run `invoke destroy --yes` to remove the old lab, then `invoke up`"))
            elif name != lab.name and subnet.overlaps(lab.network):
                problems.append(LabError(
                    f"libvirt network {name!r} ({subnet}) overlaps this lab's {lab.network}",
                    f"give this lab another network in its lab file, or destroy the lab that owns "
                    f"{name!r} (LAB={name} invoke destroy --yes), or remove it: "
                    f"virsh net-destroy {name}; virsh net-undefine {name}"))
    return problems


def survey_domains(lab, domains, marks, uuids, network, known_uuids, used_libvirt, me):
    """Who owns each domain named like this lab's hosts and the network of the lab's name.
    `domains`: {name: state}; `marks`: {name: {label: value}}; `uuids`: {name: uuid};
    `network`: None, or the names of the domains attached to it. A domain without a mark
    is this checkout's when its Vagrant knows its uuid; the network belongs to the single
    owner of its domains, or to this checkout when nothing is attached and this checkout
    ran the lab on libvirt. Pure, for unit tests."""
    hosts = {domain_name(lab, h): h for h in lab.host_names}
    items = []
    for name in sorted(domains):
        if name not in hosts:
            continue
        mark = marks.get(name, {})
        known = uuids.get(name, "") in known_uuids
        items.append(Item("libvirt domain", name, name, owner_of(mark.get(CHECKOUT_LABEL, ""), known, me),
                          mark.get(PATH_LABEL, ""), known, hosts[name]))
    if network is not None:
        attached = [i for i in items if i.name in network]
        owners = {(i.owner, i.path) for i in attached}
        if attached and len(owners) == 1 and len(attached) == len(network):
            owner, path = next(iter(owners))
        elif not network and used_libvirt:
            owner, path = MINE, ""
        else:
            owner, path = UNKNOWN, ""
        items.append(Item("network", lab.name, lab.name, owner, path))
    by_hand = []
    for item in items:
        if item.owner == UNKNOWN and item.kind == "libvirt domain":
            by_hand.append(f"virsh destroy {item.name}; virsh undefine {item.name} --remove-all-storage")
        elif item.owner == UNKNOWN:
            by_hand.append(f"virsh net-destroy {item.name}; virsh net-undefine {item.name}")
    return Survey(items, by_hand)


def lab_domains(lab):
    names = {domain_name(lab, h) for h in lab.host_names}
    return {n: s for n, s in parse_domain_list(virsh("list", "--all").stdout).items() if n in names}


def attached_domains(network, domains):
    """The names of `domains` with an interface on `network`."""
    attached = []
    for name in domains:
        listing = virsh("domiflist", name, check=False).stdout
        if any(line.split()[2:3] == [network] for line in listing.splitlines() if line.strip()):
            attached.append(name)
    return attached


def all_networks():
    """{name: [ip_network]} of every libvirt network."""
    names = virsh("net-list", "--all", "--name").stdout.split()
    return {name: network_subnets(virsh("net-dumpxml", name).stdout) for name in names}


def survey(lab, machines_dir):
    domains = lab_domains(lab)
    marks = {n: parse_mark(virsh("desc", n, check=False).stdout) for n in domains}
    uuids = {n: virsh("domuuid", n, check=False).stdout.strip() for n in domains}
    known = {p.read_text().strip() for p in machines_dir.glob("*/libvirt/id")}
    network = None
    if virsh("net-info", lab.name, check=False).returncode == 0:
        network = attached_domains(lab.name, domains)
    used = any(machines_dir.glob("*/libvirt"))
    return survey_domains(lab, domains, marks, uuids, network, known, used, checkout_id())


def remove_lab_leftovers(lab, found):
    removed = []
    domains = lab_domains(lab)
    for item in found.mine:
        if item.kind == "libvirt domain" and item.name in domains:
            if domains[item.name] != "shut off":
                virsh("destroy", item.name, check=False)
            virsh("undefine", item.name, "--managed-save", "--snapshots-metadata", "--remove-all-storage")
            removed.append(f"libvirt domain {item.name}")
    if any(i.kind == "network" for i in found.mine) and \
            virsh("net-info", lab.name, check=False).returncode == 0:
        virsh("net-destroy", lab.name, check=False)
        virsh("net-undefine", lab.name)
        removed.append(f"libvirt network {lab.name}")
    return removed


def machine_states(lab, machines_dir):
    """{host: (state, "libvirt")} in Vagrant's words, from one `virsh list`."""
    domains = lab_domains(lab)
    states = {}
    for host in lab.host_names:
        known = (machines_dir / host / "libvirt" / "id").exists()
        state = domains.get(domain_name(lab, host))
        states[host] = (STATES.get(state, state) if known and state else "not created", "libvirt")
    return states


class LibvirtProvider(Provider):
    name = "libvirt"
    has_snapshots = True
    install_fix = "run scripts/setup.sh as root (installs libvirt and vagrant-libvirt, starts libvirtd)"

    def timer_profile(self):
        # A TCG guest keeps time many times worse than a KVM one: each has its own timers.
        return "libvirt" if accelerator(probe=False) == "kvm" else "libvirt/tcg"

    def slowness(self):
        # Under TCG a guest runs several times slower than under KVM, five guests share
        # the machine's cores, and the machine may be busy with other work.
        return 1 if accelerator(probe=False) == "kvm" else TCG_SLOWNESS

    def usable(self):
        if not plugin_installed():
            return False, "the vagrant-libvirt plugin is not installed"
        try:
            ok = shutil.which("virsh") and subprocess.run(
                ["virsh", "-c", URI, "version"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            return False, f"libvirtd does not answer (virsh -c {URI} version)"
        accel = accelerator(probe=False)
        if accel == "none":
            return False, "QEMU boots no guest here, under KVM or TCG (scripts/probe-accelerator.sh --force)"
        if accel == "kvm":
            return True, "libvirt answers; guests run under KVM"
        if accel == "tcg":
            return True, "libvirt answers; guests run only under software emulation (TCG): slow"
        return True, "libvirt answers; the accelerator is found by booting the box on first `invoke up`"

    def prepare(self, machines, hosts):
        lab = machines.lab
        problems = network_conflicts(lab, all_networks())  # refused before anything changes
        if problems:
            raise problems[0]
        found = self.survey(lab, machines.machines_dir)
        machines.refuse_leftovers("libvirt domains", found.orphans, found)
        if not box_built():
            build_box(lambda line: say("box", line.removeprefix("[box] ")))
        accel = accelerator()
        if accel not in ("kvm", "tcg"):
            raise LabError("QEMU boots no guest on this machine, under KVM or TCG",
                           "see scripts/probe-accelerator.sh --force, or use --provider docker")
        if accel == "tcg" and install_tcg_wrapper():
            say("libvirt", f"installed QEMU's TCG wrapper as {TCG_EMULATOR}")
        if ensure_storage_pool():
            say("libvirt", f"created the storage pool {STORAGE_POOL} ({STORAGE_DIR})")
        for volume in prune_box_images():
            say("libvirt", f"deleted {volume} from the pool {STORAGE_POOL}: the image of a box "
                "that a newer recipe replaced, and no disk uses it")

    def states(self, machines):
        return machine_states(machines.lab, machines.machines_dir)

    def survey(self, lab, machines_dir):
        return survey(lab, machines_dir)

    def remove_leftovers(self, lab, machines_dir, found=None):
        return remove_lab_leftovers(lab, found if found is not None else self.survey(lab, machines_dir))

    def crash(self, machines, host):
        virsh("destroy", domain_name(machines.lab, host))
        machines.inventory.invalidate([host])

    def console_argv(self, lab, host, command=None):
        """The guest's serial console, where the box's getty logs root in (ttyS0)."""
        if command:
            raise LabError(f"{host}'s serial console is an interactive shell; it cannot run one command",
                           f"open it without --command (invoke console {host}), press Enter for the "
                           "root prompt, and leave with Ctrl-]")
        return ["virsh", "-c", URI, "console", domain_name(lab, host)]


LIBVIRT = LibvirtProvider()
