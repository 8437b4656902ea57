"""The drill report page, rendered from canned failover results."""
import copy
import json
from pathlib import Path

import pytest

from fabfile.views.drill_report import render_bench, render_report
from tests.html_elements import elements, external_references, metric_values, with_class

FIXTURE = Path(__file__).parent / "fixtures" / "drill_report.json"


@pytest.fixture(scope="module")
def report():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def page(report):
    return render_report(report)


@pytest.fixture(scope="module")
def found(page):
    return elements(page)


def test_one_section_per_drill_in_order(report, found):
    sections = [e for e in found if e.tag == "section" and "drill" in e.classes]
    assert [s.attrs["data-scenario"] for s in sections] == [d["scenario"] for d in report["drills"]]


def test_every_drill_shows_its_fault_window(report, found):
    for index, _ in enumerate(report["drills"], 1):
        assert len(with_class(found, "fault-window", index)) == 1


def test_every_drill_shows_one_vip_band_per_balancer(report, found):
    for index, drill in enumerate(report["drills"], 1):
        bands = with_class(found, "vip-band", index)
        assert sorted(b.attrs["data-balancer"] for b in bands) == sorted(drill["balancers"])


def test_each_band_is_drawn_where_its_balancer_held_the_vip(found):
    held = {b.attrs["data-balancer"]: b.text for b in with_class(found, "vip-band", 1)}
    assert "lb1 holds the VIP from 0 s to 1.1 s" in held["lb1"]
    assert "lb2 holds the VIP from 1.1 s to 5.3 s" in held["lb2"]


def test_every_request_is_a_mark_in_its_lane(report, found):
    for index, drill in enumerate(report["drills"], 1):
        lanes = {lane.attrs["data-lane"]: lane for lane in with_class(found, "lane", index)}
        marks = with_class(found, "mark", index)
        assert len(marks) == len(drill["timeline"])
        writes = sum(1 for r in drill["timeline"] if r["kind"] == "write")
        assert lanes["writes"].text.count("write at") == writes
        assert lanes["reads"].text.count("read at") == len(drill["timeline"]) - writes


def test_marks_are_coloured_by_balancer_and_failures_apart(report, found):
    drill = report["drills"][1]
    marks = with_class(found, "mark", 2)
    assert sum(1 for m in marks if "failed" in m.classes) == drill["failed"]
    assert sum(1 for m in marks if "lb-0" in m.classes) == sum(1 for r in drill["timeline"] if r["balancer"] == "lb1")
    assert sum(1 for m in marks if "lb-1" in m.classes) == sum(1 for r in drill["timeline"] if r["balancer"] == "lb2")


def test_gap_and_outage_are_drawn_with_their_values(report, found):
    for index, drill in enumerate(report["drills"], 1):
        [gap] = with_class(found, "gap", index)
        [outage] = with_class(found, "outage", index)
        assert f"gap {drill['gap_ms']} ms" in gap.text
        assert f"outage {drill['outage_ms']} ms" in outage.text


def test_the_write_accounting_equals_the_report(report, found):
    for index, drill in enumerate(report["drills"], 1):
        shown = metric_values(found, index)
        for metric, value in drill["writes"].items():
            assert int(shown[metric]) == value, metric


def test_the_latency_quantiles_equal_the_report(report, found):
    for index, drill in enumerate(report["drills"], 1):
        shown = metric_values(found, index)
        for metric in ("p50", "p95", "p99", "max"):
            assert float(shown[metric]) == drill["latency_ms"][metric], metric


def test_verdict_split_brain_and_recovery_are_stated(report, found):
    for index, drill in enumerate(report["drills"], 1):
        facts = {e.attrs["data-fact"]: e.text for e in found if e.section == index and "data-fact" in e.attrs}
        assert "passed" in facts["verdict"]
        assert "no" in facts["split-brain"]
        assert f"{drill['recovery_s']} s" in facts["recovery"]


def test_there_is_a_latency_chart_per_drill(report, found):
    for index, drill in enumerate(report["drills"], 1):
        assert len([e for e in found if e.section == index and e.tag == "circle"]) == len(drill["timeline"])


def test_the_page_references_nothing_outside_itself(page):
    assert external_references(page) == []
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()


def test_the_external_reference_check_itself_catches_them():
    hostile = '<img src="https://x.test/a.png"><a href="http://x.test">x</a><div style="background:url(http://x)">'
    assert len(external_references(hostile)) >= 3


def test_a_hostile_scenario_name_is_escaped(report):
    drill = copy.deepcopy(report["drills"][0])
    drill["scenario"] = '"><script>alert(1)</script><x a="'
    drill["timeline"][0]["error"] = "<img src=x onerror=alert(2)>"
    page = render_report({"drills": [drill]}, title="<b>lab</b>")
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "<b>lab</b>" not in page
    [section] = [e for e in elements(page) if e.tag == "section"]
    assert section.attrs["data-scenario"] == drill["scenario"]


def test_split_brain_is_drawn_where_both_hold_the_vip(report):
    drill = copy.deepcopy(report["drills"][0])
    drill["vip_samples"][20]["holders"] = ["lb1", "lb2"]
    drill["vip_samples"][21]["holders"] = ["lb1", "lb2"]
    drill["split_brain"], drill["passed"] = True, False
    found = elements(render_report({"drills": [drill]}))
    [split] = with_class(found, "split-brain")
    assert "split brain from 2 s to 2.2 s" in split.text
    facts = {e.attrs["data-fact"]: e.text for e in found if "data-fact" in e.attrs}
    assert "yes" in facts["split-brain"]
    assert "failed" in facts["verdict"]


def test_an_old_report_renders_what_it_has_and_says_what_is_missing():
    old = {"passed": True, "drills": [{
        "scenario": "halt", "master": "lb1", "gap_ms": 800, "outage_ms": 850, "requests": 120, "failed": 30,
        "split_brain": False, "writes_acked": 45, "writes_found": 45, "recovered": True, "recovery_s": 41.0,
        "vip_after": "lb1", "failback": True, "passed": True}]}
    page = render_report(old)
    found = elements(page)
    [missing] = with_class(found, "missing", 1)
    assert "timeline" in missing.text and "VIP samples" in missing.text and "fault" in missing.text
    shown = metric_values(found, 1)
    assert shown["acknowledged"] == "45" and shown["found"] == "45"
    assert shown["lost"] == "not recorded" and shown["p50"] == "not recorded"
    assert "predates the full write accounting" in page
    assert not with_class(found, "fault-window")


def test_missing_quantiles_are_computed_from_the_timeline(report):
    drill = copy.deepcopy(report["drills"][0])
    del drill["latency_ms"]
    page = render_report({"drills": [drill]})
    assert float(metric_values(elements(page), 1)["max"]) == report["drills"][0]["latency_ms"]["max"]
    assert "Computed here from the timeline" in page


def test_a_report_without_drills_says_so():
    page = render_report({})
    assert "This report has no drills" in page
    assert "<section class=\"drill\"" not in page


def test_a_drill_that_never_failed_over_has_no_gap(report):
    drill = copy.deepcopy(report["drills"][0])
    drill.update(gap_ms=None, outage_ms=None, passed=False)
    found = elements(render_report({"drills": [drill]}))
    assert not with_class(found, "gap", 1) and not with_class(found, "outage", 1)
    facts = {e.attrs["data-fact"]: e.text for e in found if "data-fact" in e.attrs}
    assert "no failover" in facts["gap"]


def test_the_bench_page_has_its_steps_then_its_drills(report):
    bench = {"provider": "docker", "passed": True,
             "steps": [{"step": "up (box built)", "seconds": 41.27}, {"step": "verify", "seconds": 3.5}],
             "failover": [{"scenario": "haproxy", "median_gap_ms": 132, "median_outage_ms": 153, "median_failed": 4}],
             "drills": report["drills"]}
    page = render_bench(bench)
    found = elements(page)
    cells = [e.text.strip() for e in found if e.tag == "td" and e.section == 0]
    assert "up (box built)" in cells and "41.27" in cells and "verify" in cells
    assert page.index("up (box built)") < page.index('<section class="drill"')
    assert len([e for e in found if e.tag == "section" and "drill" in e.classes]) == 2
    assert external_references(page) == []
