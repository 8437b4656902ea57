"""The Vagrantfile's VirtualBox block stays equivalent to libvirt's: VirtualBox cannot run
on this project's machines, so this reads both blocks and checks that each gives the
machine the same things (read as text; `vagrant validate` is run in the libvirt e2e)."""
import re

from fabfile.core.config import PROJECT_DIR

VAGRANTFILE = (PROJECT_DIR / "Vagrantfile").read_text()


def block(provider):
    match = re.search(rf"^      node\.vm\.provider :{provider} do \|(\w+), override\|\n(.*?)^      end\n",
                      VAGRANTFILE, re.M | re.S)
    assert match, f"no {provider} block in the Vagrantfile"
    return match.group(1), match.group(2)


# What every VM provider's block must give the machine, as a pattern per provider.
SAME = {
    "the box": (r"override\.vm\.box = lab\.fetch\(\"box\"", r"override\.vm\.box = libvirt_box\.call"),
    "the private network": (r":private_network, ip: host\[\"ip\"\], netmask: netmask",) * 2,
    "a boot timeout for slow guests": (r"override\.vm\.boot_timeout = 1200",) * 2,
    "the VM name <lab>-<host>": (r"vb\.name = \"#\{lab_name\}-#\{host_name\}\"",
                                 r"lv\.default_prefix = \"#\{lab_name\}-\""),
    "memory from lab.yml": (r"vb\.memory = host\.fetch\(\"memory\", 512\)", r"lv\.memory = host\.fetch\(\"memory\", 512\)"),
    "cpus from lab.yml": (r"vb\.cpus = host\.fetch\(\"cpus\", 1\)", r"lv\.cpus = host\.fetch\(\"cpus\", 1\)"),
    "the lab's mark": (r"/halab/lab\", lab_name", r"halab\.lab=#\{lab_name\}"),
    "the checkout's mark": (r"/halab/checkout\", checkout_id", r"halab\.checkout=#\{checkout_id\}"),
    "the checkout's path": (r"/halab/checkout-path\", checkout_dir", r"halab\.checkout-path=#\{checkout_dir\}"),
    "a serial console": (r"--uart1", r"lv\.graphics_type = \"none\""),
}


def test_virtualbox_and_libvirt_blocks_give_the_machine_the_same_things():
    _, virtualbox = block("virtualbox")
    _, libvirt = block("libvirt")
    missing = [f"{what} ({name})" for what, patterns in SAME.items()
               for name, text, pattern in zip(("virtualbox", "libvirt"), (virtualbox, libvirt), patterns)
               if not re.search(pattern, text)]
    assert not missing, missing


def test_the_libvirt_network_is_named_after_the_lab_and_the_domain_carries_the_mark():
    _, libvirt = block("libvirt")
    assert "libvirt__network_name: lab_name" in libvirt
    assert "lv.description =" in libvirt
    assert 'lv.emulator_path = "/usr/local/libexec/halab/qemu-tcg"' in libvirt
