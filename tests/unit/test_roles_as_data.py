"""Roles as data: for a host in a given state (the raw output of each fact command, as
the facts script would return it), the exact list of (step, detail) its role plans.

Each case is a JSON file under fixtures/roles/<role>/<case>.json:

    {"description": "...",
     "host": "lb1",                      # a host of lab.yml, or of `hosts` below
     "hosts": {"web2": {...}, ...},      # optional: the lab's hosts instead of lab.yml's
     "extends": "converged",             # optional: start from that case's facts
     "facts": {"fact key": "raw output" | "@converged"},
     "plan": [["step name", "detail"], ...],   # [] for a converged host
     "commands": {"step name": ["action shown or command", ...]}}   # optional

"@converged" stands for the raw output a converged host returns: for a File/Template's
`file:<path>` fact, sha256 of the content the step wants plus its mode, owner and group
("@converged 644 root root": the wanted content with that mode, owner and group);
for a Service's `loaded:<unit>` fact, recorded hashes equal to the current ones. A fact
the case leaves out reads as the empty output (a missing file, a missing package).

The steps come from `fabfile.roles.host_plan`, exactly as `invoke provision` builds them,
and are planned in order the way the engine does (changed paths accumulate)."""
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from fabfile.converge.steps import File, Service
from fabfile.core.lab import load_lab, parse_lab
from fabfile.remote import facts as F
from fabfile.roles import host_plan
from tests.unit.fakes import fake_tls

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "roles"
CONVERGED = "@converged"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKEKEY\n-----END OPENSSH PRIVATE KEY-----\n"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEFAKEFAKE halab-lab"
SECRETS = {"db_password": "fake-Db_pass", "lab_ssh_key": (PRIVATE_KEY, PUBLIC_KEY), "tls": fake_tls(), "exporter_db_password": "fake-Exp_pass"}
# recorded "reload restart" hashes, then the current ones: equal, nothing stale
LOADED_CONVERGED = "aaa bbb\naaa\nbbb"
SSH_SOURCE = "172.17.0.1"  # where the hosts see Vagrant's SSH come from (Docker's default bridge)
# Every host's firewall, converged, for the cases that are about something else.
FIREWALL_CONVERGED = {
    "file:/etc/halab/firewall.nft": CONVERGED,
    "firewall:loaded": "ccc\nccc",
    "file:/etc/systemd/system/halab-firewall.service": CONVERGED,
    "service:halab-firewall": "enabled active",
    "loaded:halab-firewall": CONVERGED,
}


def load_case(path):
    case = json.loads(path.read_text())
    if "extends" in case:
        base = load_case(path.with_name(case["extends"] + ".json"))
        inherited = {k: v for k, v in base.items() if k in ("host", "hosts")}
        case = {**inherited, **case, "facts": {**base["facts"], **case["facts"]}}
    if not set(case["facts"]) & set(FIREWALL_CONVERGED):
        case = {**case, "facts": {**FIREWALL_CONVERGED, **case["facts"]}}
    return case


def case_lab(case):
    default = load_lab(PROJECT_DIR / "lab.yml")
    if "hosts" not in case:
        return default
    data = {"name": default.name, "network": str(default.network), "vip": default.vip,
            "hosts": case["hosts"]}
    return parse_lab(yaml.safe_dump(data))


def converged_raw(key, steps, parsed, stat=None):
    """The raw output of `key` on a host where its step has nothing to do; `stat`
    ("mode owner group") replaces the step's own for a file whose content alone is right."""
    for step in steps:
        if isinstance(step, File) and key == F.file(step.path).key:
            content = step.wanted(parsed)
            return f"{hashlib.sha256(content.encode()).hexdigest()}\n{stat or f'{step.mode} {step.owner} {step.group}'}"
        if isinstance(step, Service) and key == f"loaded:{step.unit}":
            return LOADED_CONVERGED
    raise AssertionError(f"{key}: @converged is only for a File/Template's file: or a Service's loaded: fact")


def plan_case(case):
    """([(step name, detail)], {step name: Change}) that the host's steps plan from the case's facts."""
    lab = case_lab(case)
    host = lab.host(case["host"])
    steps, extra = host_plan(lab, host, SECRETS, SSH_SOURCE)
    wanted = F.unique([*extra, *(f for step in steps for f in step.facts())])
    keys = {f.key for f in wanted}
    unknown = sorted(set(case["facts"]) - keys)
    assert not unknown, f"the case names facts the steps do not ask: {unknown}"
    raw = {k: v for k, v in case["facts"].items() if not v.startswith(CONVERGED)}
    parsed = F.parse_raw(wanted, raw)  # what the converged content depends on (addresses)
    for key, value in case["facts"].items():
        if value.startswith(CONVERGED):
            raw[key] = converged_raw(key, steps, parsed, value[len(CONVERGED):].strip() or None)
    facts = F.parse_raw(wanted, raw)
    changed_paths, planned, changes = set(), [], {}
    for step in steps:
        change = step.plan(facts, changed_paths)
        if change is None:
            continue
        assert change.step == step.name
        planned.append([step.name, change.detail])
        changes[step.name] = change
        if change.path:
            changed_paths.add(change.path)
    return planned, changes


CASES = sorted(FIXTURES.glob("*/*.json"))


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_role_plans_exactly(path):
    case = load_case(path)
    planned, changes = plan_case(case)
    assert planned == case["plan"], case.get("description", "")
    for step_name, expected in case.get("commands", {}).items():
        actions = changes[step_name].actions
        assert [a.shown or a.command for a in actions] == expected


def test_every_role_has_a_fresh_and_a_converged_case():
    cases = {(p.parent.name, p.stem) for p in CASES}
    for role in ("loadbalancer", "web", "app", "db"):
        assert (role, "converged") in cases or any(r == role and c.endswith("converged") for r, c in cases)
    assert {"loadbalancer", "web", "app", "db"} <= {p.parent.name for p in CASES}
    assert len(CASES) >= 20


def test_fresh_balancer_installs_its_packages_before_any_role_file():
    planned, changes = plan_case(load_case(FIXTURES / "loadbalancer" / "fresh.json"))
    names = [name for name, _ in planned]
    role_start = names.index("packages haproxy keepalived curl prometheus-node-exporter nftables")
    assert names[role_start - 1] == "file /etc/motd"  # the common steps come first, then the role's
    assert names[role_start + 1:] == [
        "directory /etc/systemd/system/haproxy.service.d",
        "file /etc/systemd/system/haproxy.service.d/keepalived.conf",
        "directory /etc/haproxy/tls", "file /etc/haproxy/tls/site.pem", "file /etc/haproxy/tls/ca.crt",
        "file /etc/haproxy/haproxy.cfg", "file /etc/keepalived/notify.sh", "file /etc/keepalived/keepalived.conf",
        "service haproxy", "service keepalived", "VRRP state metrics",
        # then the exporters, once the service they watch runs
        "directory /var/lib/prometheus/node-exporter", "file /etc/default/prometheus-node-exporter",
        "service prometheus-node-exporter"]
    assert changes["packages haproxy keepalived curl prometheus-node-exporter nftables"].refresh_facts is True


def test_unknown_fact_in_a_case_is_refused():
    case = {"host": "lb1", "facts": {"file:/etc/nowhere": ""}, "plan": []}
    with pytest.raises(AssertionError, match="file:/etc/nowhere"):
        plan_case(case)


def test_converged_marker_depends_on_the_addresses_for_keepalived():
    """keepalived.conf names the interface; a converged file on eth1 is drift on eth2."""
    case = load_case(FIXTURES / "loadbalancer" / "converged.json")
    assert plan_case(case)[0] == []
    lab = case_lab(case)
    steps, extra = host_plan(lab, lab.host("lb1"), SECRETS, SSH_SOURCE)
    wanted = F.unique([*extra, *(f for s in steps for f in s.facts())])
    eth1 = F.parse_raw(wanted, {"addresses": case["facts"]["addresses"]})
    raw_eth1 = converged_raw("file:/etc/keepalived/keepalived.conf", steps, eth1)
    moved = dict(case, facts={**case["facts"], "addresses": case["facts"]["addresses"].replace("eth1", "eth2"),
                              "file:/etc/keepalived/keepalived.conf": raw_eth1})
    assert plan_case(moved)[0] == [["file /etc/keepalived/keepalived.conf", "written"],
                                   ["service keepalived", "reload"]]
