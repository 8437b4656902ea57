"""What every lab host gets, whatever its role: the lab's names and a message of the day."""
from ..render import render
from ..steps import File, Line

HOME = "/home/vagrant"


def steps(ctx):
    private_key, public_key = ctx.secrets["lab_ssh_key"]
    names = " ".join(ctx.lab.host_names)
    return [
        # The lab's own key: `ssh web1` from any lab host, as the vagrant user.
        File(f"{HOME}/.ssh/id_ed25519", lambda facts: private_key, mode="600", owner="vagrant",
             group="vagrant", secret=True),
        Line(f"{HOME}/.ssh/authorized_keys", public_key, owner="vagrant"),
        File("/etc/ssh/ssh_config.d/halab.conf", lambda facts:
             f"# Lab hosts trust each other's host keys on first use (written by halab).\n"
             f"Host {names}\n    StrictHostKeyChecking accept-new\n"),
        # Docker bind-mounts /etc/hosts into the container: it can be rewritten, not replaced.
        File("/etc/hosts", lambda facts: render("common/hosts.j2", ctx.context()), in_place=True),
        File("/etc/motd", lambda facts: render("common/motd.j2", ctx.context())),
    ]
