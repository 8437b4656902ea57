"""The failover report (or a bench result) as one self-contained HTML page: per drill a
timeline of every request, the VIP holders, the fault, gap and outage, the latency, the
write accounting and the verdict. Pure: data in, text out; nothing external is referenced."""
from ..drills.accounting import latency_quantiles
from .drill_charts import latency_chart, timeline_chart
from .templating import render

WRITE_METRICS = ("attempted", "acknowledged", "found", "lost", "recovered", "unexpected")
LATENCY_METRICS = ("p50", "p95", "p99", "max")
BALANCER_COLOURS = 4    # .lb-0 .. .lb-3 in the page's style sheet; more balancers reuse them


def render_report(report, title="halab failover drills"):
    drills = report.get("drills") or []
    return render("drill_report.html.j2", **page(title, report.get("passed"), drills))


def render_bench(bench, title="halab bench"):
    drills = bench.get("drills") or []
    context = page(title, bench.get("passed"), drills)
    context["bench"] = {
        "provider": bench.get("provider") or "not recorded",
        "steps": [{"step": s.get("step", "?"), "seconds": s.get("seconds")}
                  for s in bench.get("steps") or []],
        "medians": [{"scenario": m.get("scenario", "?"), "gap_ms": number(m.get("median_gap_ms")),
                     "outage_ms": number(m.get("median_outage_ms")), "failed": number(m.get("median_failed"))}
                    for m in bench.get("failover") or []],
    }
    return render("drill_report.html.j2", **context)


def page(title, passed, drills):
    balancer_css = BalancerColours(drills)
    return {"title": title, "verdict": verdict(passed), "bench": None,
            "legend": balancer_css.legend(),
            "drills": [drill_view(drill, index, balancer_css) for index, drill in enumerate(drills, 1)]}


class BalancerColours:
    """One colour class per balancer name, the same in every drill of the page."""

    def __init__(self, drills):
        names = []
        for drill in drills:
            names += drill.get("balancers") or []
            names += [drill.get("master"), drill.get("other")]
            names += [r.get("balancer") for r in drill.get("timeline") or []]
        self.names = [n for n in dict.fromkeys(names) if n]

    def __call__(self, name):
        if name not in self.names:
            return "lb-unknown"
        return f"lb-{self.names.index(name) % BALANCER_COLOURS}"

    def legend(self):
        return [{"name": name, "css": self(name)} for name in self.names]


def drill_view(drill, index, balancer_css):
    missing = []
    has_timeline = bool(drill.get("timeline"))
    has_samples = bool(drill.get("vip_samples"))
    if not has_timeline:
        missing.append("the per-request timeline (no request marks, no latency chart)")
    if not has_samples:
        missing.append("the VIP samples (no VIP holder bands, split brain cannot be drawn)")
    if not isinstance(drill.get("fault_ms"), (int, float)):
        missing.append("the fault's moment (no fault line, window, gap or outage brackets)")
    writes, writes_note = write_rows(drill)
    latency, latency_note = latency_rows(drill)
    return {
        "index": index, "anchor": f"drill-{index}",
        "scenario": str(drill.get("scenario") or "unnamed"),
        "verdict": verdict(drill.get("passed")),
        "facts": facts(drill),
        "timeline": timeline_chart(drill, balancer_css) if has_timeline or has_samples else None,
        "latency_chart": latency_chart(drill, balancer_css) if has_timeline else None,
        "writes": writes, "writes_note": writes_note,
        "latency": latency, "latency_note": latency_note,
        "missing": missing,
    }


def verdict(passed):
    return {True: "passed", False: "failed"}.get(passed, "unknown")


def yes_no(value):
    return {True: "yes", False: "no"}.get(value, "not recorded")


def number(value):
    """A figure as shown: whole numbers bare, others to 0.1, None as 'not recorded'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}"


def with_unit(value, unit):
    shown = number(value)
    return "not recorded" if shown is None else f"{shown} {unit}"


def facts(drill):
    """The drill's headline figures: (key, label, shown value)."""
    if drill.get("recovered") is False:
        recovery = "not recovered"
    else:
        recovery = with_unit(drill.get("recovery_s"), "s")
    requests, failed = drill.get("requests"), drill.get("failed")
    answered = (f"{failed} of {requests}" if requests is not None and failed is not None else "not recorded")
    gap = drill.get("gap_ms")
    return [
        ("verdict", "verdict", verdict(drill.get("passed"))),
        ("split-brain", "split brain", yes_no(drill.get("split_brain"))),
        ("recovery", "recovery", recovery),
        ("broken", "broken balancer", drill.get("master") or "not recorded"),
        ("gap", "gap", "no failover" if "gap_ms" in drill and gap is None else with_unit(gap, "ms")),
        ("outage", "outage", with_unit(drill.get("outage_ms"), "ms")),
        ("failed", "requests failed", answered),
        ("vip-after", "VIP afterwards", drill.get("vip_after") or "not recorded"),
    ]


def write_rows(drill):
    writes = drill.get("writes")
    note = ""
    if not isinstance(writes, dict):
        writes = {}
        if "writes_acked" in drill or "writes_found" in drill:
            writes = {"acknowledged": drill.get("writes_acked"), "found": drill.get("writes_found")}
            note = "This report predates the full write accounting: only acknowledged and found writes were recorded."
        else:
            note = "This report has no write accounting."
    return [{"metric": m, "value": number(writes.get(m))} for m in WRITE_METRICS], note


def latency_rows(drill):
    quantiles = drill.get("latency_ms")
    note = ""
    if not isinstance(quantiles, dict):
        latencies = [r["latency_ms"] for r in drill.get("timeline") or []
                     if isinstance(r.get("latency_ms"), (int, float))]
        if latencies:
            quantiles = latency_quantiles(latencies)
            note = "Computed here from the timeline: the report did not record them."
        else:
            quantiles = {}
            note = "This report has no latency figures."
    return [{"metric": m, "value": number(quantiles.get(m))} for m in LATENCY_METRICS], note
