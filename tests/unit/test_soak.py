"""The soak's pure parts: its inputs, its arithmetic, the
transitions log it reads, the report it writes, and CPU burners that always end."""
import time

import pytest

from fabfile.core.errors import LabError
from fabfile.drills.cpuload import CpuBurners
from fabfile.lifecycle import soak as S
from fabfile.remote import facts as F
from fabfile.roles import loadbalancer as LB


NOTIFY_LOG = """\
2026-11-23T22:30:01.123+00:00 host=lb2 type=INSTANCE instance=VI_hsoak state=MASTER priority=100
2026-11-23T22:30:01.410+00:00 host=lb2 type=INSTANCE instance=VI_hsoak state=BACKUP priority=100
"""


# --- the transitions log --------------------------------------------------------------------

def test_transitions_after_a_bookmark_parse_the_notify_lines():
    fact = LB.transitions_after(3)
    assert fact.command == f"tail -n +4 {LB.TRANSITIONS_LOG}"
    parsed = F.parse_raw([fact], {fact.key: NOTIFY_LOG})[fact.key]
    assert [(t["host"], t["state"]) for t in parsed] == [("lb2", "MASTER"), ("lb2", "BACKUP")]
    assert parsed[0]["at"] == "2026-11-23T22:30:01.123+00:00" and parsed[0]["type"] == "INSTANCE"
    assert F.parse_raw([fact], {})[fact.key] == []


def test_the_bookmark_is_the_line_count():
    fact = LB.transitions_logged()
    assert F.parse_raw([fact], {fact.key: "7\n"})[fact.key] == 7
    assert F.parse_raw([fact], {fact.key: ""})[fact.key] == 0  # no log yet


# --- inputs and arithmetic ------------------------------------------------------------------

@pytest.mark.parametrize("minutes, advert_ints, wrong", [
    (0, [], "--minutes 0"), (-1, [], "--minutes -1"), (S.MAX_MINUTES + 1, [], "out of range"),
    (1, [0], "--advert-int 0 "), (1, [0.005], "0.005"), (1, [41], "41"), (1, [0.123], "0.123"),
    (1, [0.1, 0.1], "twice")])
def test_bad_input_is_refused_with_a_fix(minutes, advert_ints, wrong):
    with pytest.raises(LabError, match=wrong) as caught:
        S.check_inputs(minutes, advert_ints)
    assert caught.value.fix


def test_good_input_passes():
    S.check_inputs(0.5, [0.05, 0.1, 0.2, 1, 40.95])


def test_master_down_interval_and_rate():
    assert S.master_down_ms(0.1, 100) == 361
    assert S.master_down_ms(1, 100) == 3609
    assert S.per_hour(2, 600) == 12.0
    assert S.per_hour(0, 0) is None


def test_the_rendered_advert_interval_is_read_as_seconds():
    assert S.rendered_advert_int(("advert_int", "1.0")) == 1.0
    assert S.rendered_advert_int(("advert_int", "0.2")) == 0.2
    assert S.rendered_advert_int(()) is None and S.rendered_advert_int(("advert_int", "x")) is None


def test_tasks_parse_the_advert_list():
    import tasks
    assert tasks.seconds_list("0.05, 0.1,0.2") == [0.05, 0.1, 0.2]
    assert tasks.seconds_list(None) == []
    with pytest.raises(LabError, match="not a list of seconds"):
        tasks.seconds_list("0.1,fast")


# --- the report -----------------------------------------------------------------------------

def soaked(advert_int, transitions=(), seconds=600.0):
    run = S.SettingRun(advert_int, S.master_down_ms(advert_int, 100), seconds=seconds,
                       transitions=list(transitions), load_average=[2.0, 4.0], requests=3000, failed=0,
                       states_after={"lb1": "MASTER", "lb2": "BACKUP"}, complete=True)
    return run


def test_report_shape_and_verdict():
    flap = [LB.parse_transition(line) for line in NOTIFY_LOG.splitlines()]
    report = S.SoakReport("hsoak", "docker", 2, 2, 0.1, [soaked(0.05, flap), soaked(0.1)], restored=True)
    data = report.as_json()
    assert data["configured"] == {"advert_int": 0.1} and data["restored"] is True and data["burners"] == 2
    first, second = data["settings"]
    assert first["transitions"] == 2 and first["false_transitions_per_hour"] == 12.0
    assert first["minutes"] == 10.0 and first["load_average"] == {"mean": 3.0, "max": 4.0}
    assert first["master_down_ms"] == 180 and second["transitions"] == 0
    assert not report.passed  # a false transition fails the soak
    assert "12.0" in report.table() and "0.05" in report.table()
    assert S.SoakReport("hsoak", "docker", 2, 2, 0.1, [soaked(0.1)], restored=None).passed
    assert not S.SoakReport("hsoak", "docker", 2, 2, 0.1, [soaked(0.1)], restored=False).passed
    unfinished = soaked(0.1)
    unfinished.complete = False
    assert not S.SoakReport("hsoak", "docker", 2, 2, 0.1, [unfinished]).passed


# --- CPU burners ----------------------------------------------------------------------------

def test_burners_spin_and_are_killed_on_the_way_out():
    with pytest.raises(KeyboardInterrupt):
        with CpuBurners(30, count=2) as burners:
            assert len(burners.running()) == 2
            pids = burners.pids
            raise KeyboardInterrupt
    assert burners.running() == [] and len(pids) == 2


def test_burners_end_by_themselves_at_their_deadline():
    with CpuBurners(0.3, count=1) as burners:
        deadline = time.monotonic() + 10
        while burners.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert burners.running() == []


def test_burn_time_is_bounded():
    for seconds in (0, -1, 10 ** 6):
        with pytest.raises(ValueError):
            CpuBurners(seconds)
