"""The views as a person sees them: rendered to files, opened in Debian's headless chromium
with no way to resolve any host name, the DOM it built checked and a screenshot kept."""
import json
import os
import shutil
import struct
from pathlib import Path

import pytest

from fabfile.core.config import PROJECT_DIR
from fabfile.core.lab import DEFAULT_LAB_FILE, parse_lab
from fabfile.views.drill_report import render_report
from fabfile.views.graph import svg
from tests import browser
from tests.html_elements import elements, external_references, metric_values, with_class

FIXTURE = Path(__file__).parents[1] / "unit" / "fixtures" / "drill_report.json"

# A real browser: scripts/setup.sh installs Debian's chromium; without it these fail, loudly.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def chromium():
    assert browser.available(), "chromium is not installed: run scripts/setup.sh (apt-get install chromium)"


@pytest.fixture(scope="module")
def report():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def report_file(report, tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "report.html"
    path.write_text(render_report(report))
    return path


@pytest.fixture(scope="module")
def topology_file(tmp_path_factory):
    lab = parse_lab(DEFAULT_LAB_FILE.read_text(), DEFAULT_LAB_FILE)
    path = tmp_path_factory.mktemp("views") / "topology.svg"
    path.write_text(svg(lab))
    return path, lab


def png_size(path):
    header = Path(path).read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


def keep(png):
    """Leave the screenshot where a person can look at it: HALAB_ARTIFACTS, else
    .lab/artifacts/ (git-ignored)."""
    folder = Path(os.environ.get("HALAB_ARTIFACTS") or PROJECT_DIR / ".lab" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, folder / png.name)
    return folder / png.name


def test_the_browser_builds_one_section_per_drill_with_its_figures(report, report_file, tmp_path):
    net_log = tmp_path / "net.json"
    found = elements(browser.dump_dom(report_file, net_log=net_log))
    sections = [e for e in found if e.tag == "section" and "drill" in e.classes]
    assert [s.attrs["data-scenario"] for s in sections] == [d["scenario"] for d in report["drills"]]
    for index, drill in enumerate(report["drills"], 1):
        assert len(with_class(found, "fault-window", index)) == 1
        bands = {b.attrs["data-balancer"] for b in with_class(found, "vip-band", index)}
        assert bands == {"lb1", "lb2"}
        shown = metric_values(found, index)
        assert {m: int(shown[m]) for m in drill["writes"]} == drill["writes"]
        assert {m: float(shown[m]) for m in drill["latency_ms"]} == drill["latency_ms"]
    assert browser.page_requests(net_log) == []


def test_the_report_screenshot_shows_a_full_page(report_file, tmp_path):
    net_log = tmp_path / "net.json"
    png = browser.screenshot(report_file, tmp_path / "report.png", (1400, 2400), net_log=net_log)
    assert png_size(png) == (1400, 2400)
    assert png.stat().st_size > 50_000, "a page of charts compresses to far more than a blank one"
    keep(png)
    assert browser.page_requests(net_log) == []


def test_the_topology_opens_as_a_drawing_of_every_host(topology_file, tmp_path):
    path, lab = topology_file
    net_log = tmp_path / "net.json"
    dom = browser.dump_dom(path, net_log=net_log)
    drawn = {e.attrs["data-host"]: e.text for e in elements(dom) if "data-host" in e.attrs}
    assert set(drawn) == set(lab.host_names)
    for host in lab.hosts:
        assert host.name in drawn[host.name] and host.ip in drawn[host.name]
    assert lab.vip in dom
    png = browser.screenshot(path, tmp_path / "topology.png", (1000, 1000))
    assert png.stat().st_size > 20_000
    keep(png)
    assert browser.page_requests(net_log) == []


def test_nothing_outside_is_referenced(report_file, topology_file):
    assert external_references(report_file.read_text()) == []
    assert external_references(topology_file[0].read_text()) == []


def test_the_request_check_does_see_a_page_that_reaches_out(tmp_path):
    """The control: without it, an empty list of requests would prove nothing."""
    page = tmp_path / "reaches-out.html"
    page.write_text('<!DOCTYPE html><p>hello</p><img src="http://example.invalid/pixel.png">')
    net_log = tmp_path / "net.json"
    browser.dump_dom(page, net_log=net_log)
    assert browser.page_requests(net_log) == ["http://example.invalid/pixel.png"]


# --- a real drill, a real lab --------------------------------------------------------------

def test_a_real_drill_report_shows_its_timeline_bands_and_accounting(lab_cli, provisioned, tmp_path):
    report_json, page = tmp_path / "drill.json", tmp_path / "drill-report.html"
    lab_cli.invoke("failover", "--scenario", "haproxy", "--json", str(report_json), "--html", str(page))
    report = json.loads(report_json.read_text())
    drill = report["drills"][0]
    writes = drill["writes"]
    assert writes["lost"] == 0 and writes["unexpected"] == 0
    assert writes["attempted"] >= writes["acknowledged"] == drill["writes_acked"] > 0
    assert writes["found"] == writes["acknowledged"] + writes["recovered"]
    assert drill["fault_ms"] < drill["undo_ms"] <= drill["end_ms"]
    assert len(drill["timeline"]) == drill["requests"]
    assert {b for s in drill["vip_samples"] for b in s["holders"]} == {"lb1", "lb2"}

    net_log = tmp_path / "net.json"
    found = elements(browser.dump_dom(page, net_log=net_log))
    sections = [e for e in found if e.tag == "section" and "drill" in e.classes]
    assert [s.attrs["data-scenario"] for s in sections] == ["haproxy"]
    assert len(with_class(found, "fault-window", 1)) == 1
    assert {b.attrs["data-balancer"] for b in with_class(found, "vip-band", 1)} == {"lb1", "lb2"}
    shown = metric_values(found, 1)
    assert {m: int(shown[m]) for m in writes} == writes
    assert browser.page_requests(net_log) == []
    png = keep(browser.screenshot(page, tmp_path / "drill-report.png", (1400, 1800)))
    print(f"drill report screenshot: {png}")


def test_the_lab_graph_renders_every_host_and_the_vip(lab_cli, provisioned, tmp_path):
    drawing = tmp_path / "topology.svg"
    lab_cli.invoke("graph", "--svg", str(drawing), "--live")
    found = elements(browser.dump_dom(drawing))
    texts = " ".join(e.text for e in found)
    for host in lab_cli.lab.hosts:
        assert host.name in texts and host.ip in texts
    assert lab_cli.lab.vip in texts and "holds the VIP" in texts
    mermaid = lab_cli.invoke("graph", "--mermaid").stdout
    assert mermaid.startswith("flowchart TB") and mermaid.count("subgraph") == mermaid.count("\n    end")
    keep(browser.screenshot(drawing, tmp_path / "topology.png", (1200, 900)))


def test_watch_once_agrees_with_verify(lab_cli, provisioned, tmp_path):
    frame = json.loads(lab_cli.invoke("watch", "--once", "--json").stdout)
    report = tmp_path / "verify.json"
    lab_cli.invoke("verify", "--json", str(report))
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    vip = checks["VIP held by exactly one balancer"]
    assert frame["vip_holder"] == vip["host"] == "lb1"
    backends = checks["HAProxy sees every web backend UP"]["detail"]
    assert all(f"{name} {state}" in backends for name, state in frame["backends"].items()), (frame, backends)
    assert set(frame["vrrp"].values()) == {"MASTER", "BACKUP"}
