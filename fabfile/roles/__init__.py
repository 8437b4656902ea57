"""roles: one module per server kind, owning everything about it (settings, packages,
files, services, listeners, the steps that build it, the checks that prove it). A new
role is one module here, its templates under templates/<role>/, and its name in
core.lab.ROLE_COUNTS."""
from . import common, firewall
from .app import APP
from .base import Check, Inbound, RoleContext, all_services
from .db import DB
from .loadbalancer import LOADBALANCER
from .monitor import MONITOR
from .web import WEB

ROLES = {role.name: role for role in (LOADBALANCER, WEB, APP, DB, MONITOR)}


def role_of(host):
    return ROLES[host.role]


def host_context(lab, host, secrets, ssh_source=""):
    return RoleContext(lab, host, role_of(host).settings(lab), secrets, ssh_source)


def host_plan(lab, host, secrets, ssh_source=""):
    """(steps, extra facts) that make `host`: the common steps, its role's, its firewall,
    its exporters'. `ssh_source`: where the host sees the lab's SSH come from."""
    ctx = host_context(lab, host, secrets, ssh_source)
    role = role_of(host)
    return role.host_steps(ctx, firewall.steps(ctx)), role.facts(ctx)


__all__ = ["ROLES", "Check", "Inbound", "firewall", "RoleContext", "all_services", "role_of", "host_context", "host_plan"]
