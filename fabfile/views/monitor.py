"""`invoke monitor` as text: the URLs, a table of scrape targets, the alerts firing now and
the saved queries' answers (the report of checks.monitor.monitor_report)."""
from ..core.console import table


def _number(value, unit):
    if unit.startswith("bytes"):
        for size in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024:
                return f"{value:.1f} {size}/s"
            value /= 1024
    return f"{value:g}"


def render_text(report):
    lines = [f"Prometheus    {report['prometheus']}",
             f"Alertmanager  {report['alertmanager']}",
             f"Saved queries {report['console']}", ""]
    targets = sorted(report["targets"], key=lambda t: (t["job"] or "", t["host"] or ""))
    up = sum(1 for t in targets if t["health"] == "up")
    lines.append(f"scrape targets: {up} of {len(targets)} up")
    lines.append(table(["job", "host", "instance", "health", "last error"],
                       [[t["job"], t["host"] or "-", t["instance"], t["health"], t["last_error"][:60]]
                        for t in targets]))
    lines.append("")
    firing = [a for a in report["alerts"] if a["state"] == "firing"]
    if report["alerts"]:
        lines.append(f"alerts: {len(firing)} firing, {len(report['alerts']) - len(firing)} pending")
        lines.append(table(["alert", "state", "host", "since", "summary"],
                           [[a["alertname"], a["state"], a["host"] or "-", a["active_at"] or "-", a["summary"]]
                            for a in report["alerts"]]))
    else:
        lines.append("alerts: none firing")
    for query in report["queries"]:
        lines.append("")
        lines.append(f"{query['title']}:")
        values = query["values"]
        lines.append("  " + ("  ".join(f"{k} {_number(v, query['unit'])}" for k, v in sorted(values.items()))
                             if values else "no data yet"))
    return "\n".join(lines)
