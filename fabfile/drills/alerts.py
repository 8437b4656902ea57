"""What the monitoring server saw of a drill: every alert that fired from the fault on,
when it fired and when it resolved (seconds after the fault), read from Prometheus'
ALERTS series; and the requests per second through each balancer over the drill. It
waits, bounded, for the VIP-moved alert to resolve once the VIP is back. Only a lab with a
monitoring server asks anything: the default lab's drills do not wait."""
import time

from ..checks.monitor import Prometheus
from ..core.errors import LabError
from ..roles.monitor import SAVED_QUERIES, monitor_host

VIP_ALERT = "VipMoved"
RESOLVE_WAIT_S = 30   # Prometheus sees the VIP back within a scrape and an evaluation (1 s each)
STEP_S = 0.25         # the resolution of the timings
RPS_QUERY = next(q for q in SAVED_QUERIES if q.name == "rps_per_balancer")


def firing_spans(series, fault_wall):
    """[{alertname, host, job, state, fired_s, resolved_s}] from ALERTS{alertstate="firing"} range series:
    the first sample after the fault, and the step after the last one (None while firing)."""
    spans = []
    now = time.time()
    for labels, values in series:
        times = [t for t, _ in values if t >= fault_wall - STEP_S]
        if not times:
            continue
        last = times[-1]
        still = now - last < 2 * STEP_S + 1
        spans.append({"alertname": labels.get("alertname"), "host": labels.get("host"), "job": labels.get("job"),
                      "state": "firing" if still else "resolved",
                      "fired_s": round(times[0] - fault_wall, 2),
                      "resolved_s": None if still else round(last + STEP_S - fault_wall, 2)})
    return sorted(spans, key=lambda s: (s["fired_s"], s["alertname"]))


def observe(lab, fault_wall, began_wall):
    """(alerts, rps per balancer) the monitoring server saw; ([], {}) without one."""
    if monitor_host(lab) is None:
        return [], {}
    try:
        prometheus = Prometheus.of(lab)
        deadline = time.monotonic() + RESOLVE_WAIT_S
        while True:
            series = prometheus.query_range('ALERTS{alertstate="firing"}', fault_wall - 1, time.time(), STEP_S)
            spans = firing_spans(series, fault_wall)
            vip = [s for s in spans if s["alertname"] == VIP_ALERT]
            if (vip and all(s["state"] == "resolved" for s in vip)) or time.monotonic() > deadline:
                break
            time.sleep(1)
        rps = {}
        for labels, values in prometheus.query_range(RPS_QUERY.expr, began_wall, time.time(), 1):
            rps[labels.get("host", "-")] = round(max(v for _, v in values), 1)
        return spans, rps
    except LabError as exc:
        # The shape of firing_spans, so that a reader of the JSON finds the same keys.
        return [{"alertname": VIP_ALERT, "host": None, "job": None, "state": "unknown", "fired_s": None,
                 "resolved_s": None, "error": exc.problem}], {}
