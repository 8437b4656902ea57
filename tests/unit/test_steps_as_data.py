"""Steps as data, in the style of pyinfra's tests/operations/*.json: every fixture under
fixtures/steps/<StepKind>/<case>.json gives a step, the raw output its facts' commands
print on a host, and the plan expected from them: `null` (the host is converged, nothing
planned) or the change, with its action commands exactly, in order.

Fixture fields:
  step           {"kind": <class in fabfile.converge.steps>, "args": {constructor args}}
                 (lists become tuples; Command "when" names a function of WHEN below;
                 Template "context" names a context of CONTEXTS below)
  facts          {fact key: raw command output}, parsed by the step's own facts
  changed_paths  files changed earlier in the run (optional)
  expect         null, or {"detail", "commands", and optionally "path", "secret",
                 "refresh_facts", "probe", "name"}; a command is a string, or an object
                 whose "command" and any other Action fields listed must match
  xfail          a known bug: the fixture says what should happen (optional)
A Template's rendered content stands as <sha256 of wanted> and <base64 of wanted>."""
import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from fabfile.converge import steps as S
from fabfile.remote import facts as F

FIXTURES = Path(__file__).parent / "fixtures" / "steps"
STEP_KINDS = {cls.__name__: cls for cls in (S.Packages, S.User, S.Directory, S.File, S.Template, S.Absent,
                                             S.Line, S.Link, S.Service, S.Command, S.Await)}

# --- what fixtures can name -------------------------------------------------------------

ACCOUNTS = F.sql_value("SELECT COUNT(*) FROM mysql.global_priv WHERE User='notes'")
GRANTS = "/etc/mysql/halab-grants.sql"


def grants_needed(facts, changed_paths):
    """As the db role decides: the grants file changed, or not one account per app host (2)."""
    return GRANTS in changed_paths or F.value(facts, ACCOUNTS) != "2"


WHEN = {  # name: (when, the facts it needs)
    "grants_needed": (grants_needed, (ACCOUNTS,)),
}


def lab_host(name, ip):
    return SimpleNamespace(name=name, ip=ip)


CONTEXTS = {
    "two_hosts": {
        "host": lab_host("lb1", "192.168.56.11"),
        "lab": SimpleNamespace(name="halab", network="192.168.56.0/24", vip="192.168.56.10"),
        "hosts": {"loadbalancer": [lab_host("lb1", "192.168.56.11")], "web": [lab_host("web1", "192.168.56.21")]},
    },
}


# --- loading ------------------------------------------------------------------------------

def load_fixtures():
    cases = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        data = json.loads(path.read_text())
        case_id = f"{path.parent.name}/{path.stem}"
        marks = [pytest.mark.xfail(reason=data["xfail"], strict=True)] if "xfail" in data else []
        cases.append(pytest.param(data, id=case_id, marks=marks))
    return cases


FIXTURE_CASES = load_fixtures()


def build_step(spec):
    cls = STEP_KINDS[spec["kind"]]
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["args"].items()}
    if "when" in args:
        args["when"], args["needs"] = WHEN[args["when"]]
    if "context" in args:
        args["context"] = CONTEXTS[args["context"]]
    return cls(**args)


def wanted_tokens(step):
    """What <sha256 of wanted> and <base64 of wanted> stand for, for a File or Template."""
    if not isinstance(step, S.File):
        return {}
    content = step.wanted({}).encode()
    return {"<sha256 of wanted>": hashlib.sha256(content).hexdigest(),
            "<base64 of wanted>": base64.b64encode(content).decode()}


def substitute(text, tokens):
    for token, value in tokens.items():
        text = text.replace(token, value)
    return text


def action_view(action, expected):
    """The fields of `action` that `expected` (a command string or an object) names."""
    if isinstance(expected, str):
        return action.command
    return {name: getattr(action, name) for name in expected}


def expected_view(expected, tokens):
    if isinstance(expected, str):
        return substitute(expected, tokens)
    return {k: substitute(v, tokens) if isinstance(v, str) else v for k, v in expected.items()}


def plan_fixture(data):
    step = build_step(data["step"])
    tokens = wanted_tokens(step)
    raw = {key: substitute(text, tokens) for key, text in data["facts"].items()}
    asked = {fact.key for fact in step.facts()}
    assert set(raw) <= asked, f"the fixture gives facts the step does not ask: {set(raw) - asked}"
    facts = F.parse_raw(step.facts(), raw)
    return step, tokens, step.plan(facts, set(data.get("changed_paths", [])))


# --- the data test ---------------------------------------------------------------------------

@pytest.mark.parametrize("data", FIXTURE_CASES)
def test_step_plans_what_the_fixture_expects(data):
    step, tokens, change = plan_fixture(data)
    expect = data["expect"]
    if expect is None:
        assert change is None, f"planned {change.detail!r}: {[a.command for a in change.actions]}"
        return
    assert change is not None, "planned nothing"
    assert change.step == expect.get("name", step.name)
    assert change.detail == expect["detail"]
    want = [expected_view(c, tokens) for c in expect["commands"]]
    have = [action_view(a, c) for a, c in zip(change.actions, expect["commands"])]
    assert len(change.actions) == len(want), [a.command for a in change.actions]
    assert have == want
    for name in ("path", "secret", "refresh_facts"):
        if name in expect:
            assert getattr(change, name) == expect[name], name
    if "probe" in expect:
        if expect["probe"] is None:
            assert change.probe is None
        else:
            assert change.probe is not None
            assert action_view(change.probe, expect["probe"]) == expected_view(expect["probe"], tokens)
    if isinstance(step, S.File):
        assert change.content == step.wanted({}), "a dry run diffs against what is written"


def test_every_step_kind_has_a_converged_case_and_a_change_case():
    by_kind = {}
    for param in FIXTURE_CASES:
        data = param.values[0]
        by_kind.setdefault(data["step"]["kind"], set()).add(data["expect"] is None)
    assert set(by_kind) == set(STEP_KINDS)
    for kind, outcomes in by_kind.items():
        assert outcomes == ({True} if kind == "Await" else {True, False}), kind


def test_a_fixture_fact_the_step_does_not_ask_is_refused():
    data = {"step": {"kind": "User", "args": {"user": "halab", "home": "/opt/halab-app"}},
            "facts": {"user:halbb": "yes\n"}, "expect": None}
    with pytest.raises(AssertionError, match="does not ask"):
        plan_fixture(data)


def test_template_fixtures_render_the_shipped_template():
    step = build_step({"kind": "Template", "args": {"path": "/etc/halab/hosts", "template": "common/hosts.j2",
                                                     "context": "two_hosts"}})
    lines = step.wanted({}).splitlines()
    assert lines[0] == "# /etc/hosts on lb1: written by halab from lab.yml, edits are overwritten."
    assert "# lab halab (192.168.56.0/24), virtual IP 192.168.56.10" in lines
    assert lines[-2:] == ["192.168.56.11\tlb1", "192.168.56.21\tweb1"]


# --- plans run for real, on local files ----------------------------------------------------

def sh(command):
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)


def me():
    return os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()


def test_file_plan_written_by_sh_has_the_content_and_then_converges(tmp_path):
    path = tmp_path / "halab.conf"
    path.write_text("old\n")
    user = me()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    step = S.File(str(path), "line one\n'quoted' $HOME `x`\n", mode="640", owner=user, group=group)
    change = step.plan(F.parse_raw(step.facts(), {step.facts()[0].key: sh(step.facts()[0].command).stdout}), set())
    for action in change.actions:
        ran = subprocess.run(["sh", "-c", action.command], input=action.stdin, capture_output=True)
        assert ran.returncode == 0, action.command
    assert path.read_text() == "line one\n'quoted' $HOME `x`\n"
    assert not (tmp_path / "halab.conf.halab-new").exists()
    raw = sh(step.facts()[0].command).stdout
    assert step.plan(F.parse_raw(step.facts(), {step.facts()[0].key: raw}), set()) is None


def test_line_is_appended_on_a_line_of_its_own(tmp_path):
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 AAAAold someone")  # no final newline, as editors and echo -n leave it
    step = S.Line(str(path), "ssh-ed25519 AAAAnew halab-lab", owner=me())
    change = step.plan(F.parse_raw(step.facts(), {}), set())
    assert sh(change.actions[0].command).returncode == 0
    assert path.read_text().splitlines() == ["ssh-ed25519 AAAAold someone", "ssh-ed25519 AAAAnew halab-lab"]


def test_service_record_round_trip_on_local_files(tmp_path, monkeypatch):
    """The loaded:<unit> fact and the record command agree: right after a record the service
    plans nothing; a file rewritten since (a run that failed before reloading) plans a reload."""
    monkeypatch.setattr(S, "LOADED_DIR", str(tmp_path / "loaded"))
    conf, dropin = tmp_path / "haproxy.cfg", tmp_path / "dropin.conf"
    conf.write_text("global\n")
    dropin.write_text("[Service]\n")
    step = S.Service("haproxy", reload_on=(str(conf),), restart_on=(str(dropin),))
    loaded_fact, record = S.loaded_files(step.unit, step.reload_on, step.restart_on)

    def plan():
        raw = {"service:haproxy": "enabled active\n", loaded_fact.key: sh(loaded_fact.command).stdout}
        change = step.plan(F.parse_raw(step.facts(), raw), set())
        return change and change.detail

    assert sh(loaded_fact.command).stdout.split()[:2] == ["none", "none"]
    assert plan() == "restart"          # running, never recorded
    assert sh(record).returncode == 0
    words = sh(loaded_fact.command).stdout.split()
    assert words == [hashlib.sha256(b"global\n").hexdigest(), hashlib.sha256(b"[Service]\n").hexdigest()] * 2
    assert plan() is None
    conf.write_text("global\n    maxconn 100\n")
    assert plan() == "reload"
    dropin.write_text("[Service]\nRestart=always\n")
    assert plan() == "restart"
