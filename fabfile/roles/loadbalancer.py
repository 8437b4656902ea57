"""HAProxy in front of the web tier, keepalived holding the VIP for the pair."""
from ..render import render
from ..steps import Directory, File, Packages, Service

PACKAGES = ("haproxy", "keepalived", "curl")
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
NOTIFY_SCRIPT = "/etc/keepalived/notify.sh"
HAPROXY_DROPIN = "/etc/systemd/system/haproxy.service.d/keepalived.conf"


def interface_fact(host):
    """The interface that carries the host's private IP: found, never assumed."""
    return {"iface": f"ip -o -4 addr show | awk '$4 ~ /^{host.ip.replace('.', '[.]')}\\// {{print $2; exit}}'"}


def steps(ctx):
    lab, host, settings = ctx.lab, ctx.host, ctx.settings
    balancers = lab.with_role("loadbalancer")
    is_master = host == balancers[0]
    peer = balancers[1] if is_master else balancers[0]

    def keepalived_conf(facts):
        iface = facts.get("iface")
        if not iface:
            raise ctx.fail(f"no interface carries {host.ip}; is the private network up?")
        # keepalived's process tracking needs the kernel's process-event connector, which
        # a container (its own network namespace) does not have.
        in_container = facts.get("container", "none") not in ("", "none")
        return render("loadbalancer/keepalived.conf.j2", ctx.context(
            settings=dict(settings, track_process=settings["track_process"] and not in_container),
            peer=peer, iface=iface, state="MASTER" if is_master else "BACKUP",
            priority=settings["priority_master"] if is_master else settings["priority_backup"]))

    return [
        Packages(PACKAGES),
        Directory("/etc/systemd/system/haproxy.service.d"),
        File(HAPROXY_DROPIN, lambda facts: render("loadbalancer/haproxy-keepalived.conf.j2", ctx.context())),
        File(HAPROXY_CFG, lambda facts: render("loadbalancer/haproxy.cfg.j2", ctx.context()),
             validate="haproxy -c -f {path}"),
        File(NOTIFY_SCRIPT, lambda facts: render("loadbalancer/keepalived-notify.sh.j2", ctx.context()),
             mode="755", validate="sh -n {path}"),
        File(KEEPALIVED_CONF, keepalived_conf, mode="640", validate="keepalived -t -f {path}"),
        Service("haproxy", reload_on=(HAPROXY_CFG,), restart_on=(HAPROXY_DROPIN,)),
        Service("keepalived", reload_on=(KEEPALIVED_CONF, NOTIFY_SCRIPT)),
    ]


def fact_queries(ctx):
    return {**interface_fact(ctx.host), "container": "systemd-detect-virt --container"}
