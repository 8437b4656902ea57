"""What every lab host gets, whatever its role: the lab's names, the lab's SSH key, a
message of the day. Its steps run before the role's own."""
from ..converge.steps import Directory, File, InterfaceUp, Line, Service, Template

HOME = "/home/vagrant"
LAB_HOSTS = "/etc/halab/hosts"
HOSTS_UNIT = "/etc/systemd/system/halab-hosts.service"
HOSTS_UNIT_TEXT = f"""# Written by halab: puts the lab's names back into /etc/hosts at every boot.
[Unit]
Description=The lab's host names in /etc/hosts
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'cat {LAB_HOSTS} > /etc/hosts'

[Install]
WantedBy=multi-user.target
"""


def steps(ctx):
    private_key, public_key = ctx.secrets["lab_ssh_key"]
    context = ctx.template_context()
    names = " ".join(ctx.lab.host_names)
    return [
        InterfaceUp(ctx.host.ip),  # the private network first: the other hosts need it
        # The lab's own key: `ssh web1` from any lab host, as the vagrant user.
        File(f"{HOME}/.ssh/id_ed25519", private_key, mode="600", owner="vagrant", group="vagrant", secret=True),
        Line(f"{HOME}/.ssh/authorized_keys", public_key, owner="vagrant"),
        File("/etc/ssh/ssh_config.d/halab.conf",
             f"# Lab hosts trust each other's host keys on first use (written by halab).\n"
             f"Host {names}\n    StrictHostKeyChecking accept-new\n"),
        # Docker bind-mounts /etc/hosts into the container: it can be rewritten, not
        # replaced, and Docker writes its own at every start. A copy of the lab's and a
        # unit that puts it back at boot keep the names across halt and up.
        Directory("/etc/halab"),
        Template(LAB_HOSTS, template="common/hosts.j2", context=context),
        Template("/etc/hosts", template="common/hosts.j2", context=context, in_place=True),
        File(HOSTS_UNIT, HOSTS_UNIT_TEXT),
        Service("halab-hosts", restart_on=(LAB_HOSTS, HOSTS_UNIT), can_reload=False),
        Template("/etc/motd", template="common/motd.j2", context=context),
    ]
