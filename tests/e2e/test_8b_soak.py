"""`invoke soak` on the test lab: a short soak at another advert interval reports per
setting, keeps every core busy while it runs, and leaves the lab as configured, whether it
ends or is interrupted."""
import os
import signal
import subprocess
import time

import pytest

from fabfile.core.config import PROJECT_DIR
from fabfile.drills.cpuload import MARKER
from fabfile.roles.loadbalancer import KEEPALIVED_CONF, LOADBALANCER

from .conftest import INVOKE, read_json

pytestmark = pytest.mark.e2e

SETTING_KEYS = {"advert_int", "master_down_ms", "minutes", "transitions", "false_transitions_per_hour",
                "load_average", "requests", "failed_requests", "complete", "states_after", "transition_log"}


def configured_advert_int(lab):
    return LOADBALANCER.settings(lab)["advert_int"]


def another_advert_int(lab):
    return 0.3 if configured_advert_int(lab) != 0.3 else 0.2


def advert_ints_rendered(lab_cli):
    """{balancer: the advert_int its keepalived.conf says}."""
    out = lab_cli.run(f"grep -E '^\\s*advert_int' {KEEPALIVED_CONF}", "--roles", "loadbalancer", "--sudo").stdout
    found = {}
    for line in out.splitlines():
        host, _, rest = line.partition("|")
        if "advert_int" in rest:
            found[host.strip()] = float(rest.split()[-1])
    return found


def burners_left():
    # -ww: the whole command line (piped, ps cuts it at 80 columns, before the marker)
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if MARKER in line and "ps -ww" not in line]


def assert_lab_as_configured(lab_cli, tmp_path):
    wanted = configured_advert_int(lab_cli.lab)
    assert advert_ints_rendered(lab_cli) == {"lb1": wanted, "lb2": wanted}
    report = tmp_path / "after.json"
    lab_cli.invoke("provision", "--roles", "loadbalancer", "--json", str(report))
    assert read_json(report)["changed"] == 0   # restored through provision: nothing left to converge
    assert burners_left() == []
    lab_cli.invoke("verify")


def test_bad_input_is_refused_before_anything_changes(provisioned, lab_cli):
    for options, says in ((["--minutes", "0"], "--minutes 0.0 is out of range"),
                          (["--advert-int", "0.123"], "not a VRRPv3 advert interval"),
                          (["--advert-int", "0.1,fast"], "not a list of seconds")):
        result = lab_cli.invoke("soak", *options, check=False)
        assert result.returncode == 1 and says in result.stderr, result.stderr
        assert "rendering keepalived.conf" not in result.stdout
    assert burners_left() == []


def test_a_short_soak_reports_each_setting_and_restores_the_timers(provisioned, lab_cli, tmp_path):
    other = another_advert_int(lab_cli.lab)
    path = tmp_path / "soak.json"
    result = lab_cli.invoke("soak", "--minutes", "0.5", "--advert-int", str(other), "--json", str(path),
                            check=False)
    # 0: no false transition; 1: some, and the verdict says so. Anything else is a failure.
    assert result.returncode in (0, 1), result.stderr
    data = read_json(path)
    assert data["lab"] == lab_cli.lab.name and data["provider"] == "docker"
    assert data["burners"] == data["cores"] == len(os.sched_getaffinity(0))
    assert data["configured"] == {"advert_int": configured_advert_int(lab_cli.lab)}
    assert data["restored"] is True
    [setting] = data["settings"]
    assert set(setting) == SETTING_KEYS
    assert setting["advert_int"] == other and setting["complete"] is True
    assert setting["master_down_ms"] == round((3 * other + 156 * other / 256) * 1000)
    assert 0.45 <= setting["minutes"] <= 0.7
    assert setting["transitions"] == len(setting["transition_log"])
    assert setting["false_transitions_per_hour"] == round(setting["transitions"] * 60 / setting["minutes"], 1) \
        or abs(setting["false_transitions_per_hour"] - setting["transitions"] * 60 / setting["minutes"]) < 1
    assert setting["load_average"]["mean"] > 0 and setting["load_average"]["max"] >= setting["load_average"]["mean"]
    assert setting["requests"] >= 100   # 5 a second for 30 s, bounded
    assert setting["states_after"] == {"lb1": "MASTER", "lb2": "BACKUP"}
    assert data["passed"] == (setting["transitions"] == 0) == (result.returncode == 0)
    assert "false / hour" in result.stdout and f"advert_int {other:g}" in result.stdout
    assert_lab_as_configured(lab_cli, tmp_path)


def test_an_interrupted_soak_stops_its_burners_and_restores_the_timers(provisioned, lab_cli, tmp_path):
    other = another_advert_int(lab_cli.lab)
    soak = subprocess.Popen([*INVOKE, "soak", "--minutes", "3", "--advert-int", str(other)], cwd=PROJECT_DIR,
                            env=lab_cli.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        seen, deadline = [], time.monotonic() + 300
        for line in soak.stdout:
            seen.append(line)
            if line.startswith(f"soak: advert_int {other:g} s") or time.monotonic() > deadline:
                break
        assert any(line.startswith(f"soak: advert_int {other:g} s") for line in seen), "".join(seen)
        time.sleep(5)
        assert len(burners_left()) == len(os.sched_getaffinity(0))   # soaking: every core busy
        assert advert_ints_rendered(lab_cli) == {"lb1": other, "lb2": other}
        soak.send_signal(signal.SIGINT)
        rest, _ = soak.communicate(timeout=180)
    finally:
        if soak.poll() is None:
            soak.kill()
    assert soak.returncode == 130, "".join(seen) + rest
    assert "restoring the configured advert_int" in rest
    assert_lab_as_configured(lab_cli, tmp_path)
