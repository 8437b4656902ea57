"""The geometry of a drill's two charts, as plain data for templates/views/_charts.svg.j2:
the timeline (VIP holders, requests, fault, gap, outage) and the latency over time.

Times are milliseconds since the drill's client started; x and y are SVG user units."""
import math
from dataclasses import dataclass

WIDTH = 1000
PLOT_LEFT = 120           # room for the lane labels
PLOT_RIGHT = 975
BAND_HEIGHT = 18
LANE_HEIGHT = 26
ROW_SPACING = 8
TIME_STEPS_MS = (100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 15000, 30000, 60000, 120000)
MAX_TICKS = 12


@dataclass(frozen=True)
class TimeScale:
    end_ms: float

    @classmethod
    def covering(cls, end_ms):
        """A scale from 0 to end_ms rounded up to a whole tick step."""
        step = tick_step(end_ms)
        return cls(max(step, math.ceil(end_ms / step) * step))

    def x(self, t_ms):
        t_ms = min(max(t_ms, 0), self.end_ms)
        return round(PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * t_ms / self.end_ms, 1)

    def ticks(self):
        step = tick_step(self.end_ms)
        return [{"x": self.x(t), "label": seconds(t)} for t in range(0, int(self.end_ms) + 1, step)]


def tick_step(end_ms):
    return next((s for s in TIME_STEPS_MS if end_ms / s <= MAX_TICKS), TIME_STEPS_MS[-1])


def seconds(t_ms):
    return f"{t_ms / 1000:g} s"


def chart_end_ms(drill):
    """The last moment anything in the drill happened."""
    moments = [drill.get("end_ms"), drill.get("undo_ms"), drill.get("fault_ms")]
    moments += [r.get("t_ms", 0) + (r.get("latency_ms") or 0) for r in drill.get("timeline") or []]
    moments += [s.get("t_ms") for s in drill.get("vip_samples") or []]
    return max([m for m in moments if isinstance(m, (int, float))], default=1000) or 1000


# --- the timeline -----------------------------------------------------------------------------

def timeline_chart(drill, balancer_css):
    """Rows top to bottom: one VIP band per balancer, reads, writes, gap and outage brackets."""
    scale = TimeScale.covering(chart_end_ms(drill))
    y = 34
    bands = []
    samples = sorted(drill.get("vip_samples") or [], key=lambda s: s.get("t_ms", 0))
    windows = sample_windows(samples, scale.end_ms)
    if samples:
        for balancer in drill_balancers(drill):
            bands.append(vip_band(balancer, balancer_css, windows, scale, y))
            y += BAND_HEIGHT + ROW_SPACING
    split = [{"x": scale.x(start), "width": width(scale, start, end), "title": span_title("split brain", start, end)}
             for start, end in spans_where(windows, lambda holders: len(holders) > 1)]
    bands_bottom = y - ROW_SPACING

    lanes = []
    requests = drill.get("timeline") or []
    if requests:
        y += 4
        for kind, label in (("read", "reads"), ("write", "writes")):
            lanes.append(request_lane(label, [r for r in requests if r.get("kind") == kind], balancer_css, scale, y))
            y += LANE_HEIGHT + ROW_SPACING

    brackets = failover_brackets(drill, scale, y + 6)
    y += 6 + 20 * len(brackets) + 6
    axis_y = y
    return {
        "width": WIDTH, "height": axis_y + 44, "top": 30, "axis_y": axis_y,
        "left": PLOT_LEFT, "right": PLOT_RIGHT, "ticks": scale.ticks(),
        "fault_window": fault_window(drill, scale),
        "markers": moment_markers(drill, scale),
        "bands": bands, "bands_top": 34, "bands_bottom": bands_bottom,
        "split_brain": split, "lanes": lanes, "brackets": brackets,
    }


def drill_balancers(drill):
    named = list(drill.get("balancers") or [])
    named += [drill.get("master"), drill.get("other")]
    for sample in drill.get("vip_samples") or []:
        named += sample.get("holders") or []
    return [b for b in dict.fromkeys(named) if b]


def sample_windows(samples, end_ms):
    """(start, end, holders) per sample: a sample stands for the time until the next one."""
    times = [s.get("t_ms", 0) for s in samples]
    ends = times[1:] + [max(end_ms, times[-1])] if times else []
    return [(start, end, set(s.get("holders") or [])) for start, end, s in zip(times, ends, samples)]


def spans_where(windows, predicate):
    """Merge consecutive windows whose holders satisfy the predicate into (start, end) spans."""
    spans = []
    for start, end, holders in windows:
        if not predicate(holders):
            continue
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def width(scale, start, end):
    return max(round(scale.x(end) - scale.x(start), 1), 1.0)


def span_title(what, start, end):
    return f"{what} from {seconds(start)} to {seconds(end)}"


def vip_band(balancer, balancer_css, windows, scale, y):
    spans = spans_where(windows, lambda holders: balancer in holders)
    return {"balancer": balancer, "css": balancer_css(balancer), "y": y, "height": BAND_HEIGHT,
            "label": f"VIP on {balancer}",
            "spans": [{"x": scale.x(start), "width": width(scale, start, end),
                       "title": span_title(f"{balancer} holds the VIP", start, end)} for start, end in spans]}


def request_lane(label, requests, balancer_css, scale, y):
    marks = []
    for request in sorted(requests, key=lambda r: r.get("t_ms", 0)):
        ok = bool(request.get("ok"))
        marks.append({"x": round(scale.x(request.get("t_ms", 0)) - 1, 1),
                      "y": y + (6 if ok else 0), "height": LANE_HEIGHT - (12 if ok else 0),
                      "css": balancer_css(request.get("balancer")) if ok else "failed",
                      "title": request_title(request)})
    return {"label": label, "y": y, "height": LANE_HEIGHT, "marks": marks}


def request_title(request):
    kind = request.get("kind") or "request"
    latency = request.get("latency_ms")
    took = f", {latency:g} ms" if isinstance(latency, (int, float)) else ""
    if request.get("ok"):
        outcome = f"answered by {request.get('balancer') or 'an unnamed balancer'}"
    else:
        outcome = f"failed ({request.get('error') or 'no reason recorded'})"
    return f"{kind} at {request.get('t_ms', 0) / 1000:.3f} s: {outcome}{took}"


def fault_window(drill, scale):
    fault, undo = drill.get("fault_ms"), drill.get("undo_ms")
    if not isinstance(fault, (int, float)):
        return None
    until = undo if isinstance(undo, (int, float)) else scale.end_ms
    return {"x": scale.x(fault), "width": width(scale, fault, until),
            "title": span_title("the fault is in place", fault, until)}


def moment_markers(drill, scale):
    """Vertical lines: the fault and its undoing."""
    markers = []
    for key, label, css in (("fault_ms", "fault", "fault-line"), ("undo_ms", "undo", "undo-line")):
        moment = drill.get(key)
        if isinstance(moment, (int, float)):
            markers.append({"x": scale.x(moment), "label": f"{label} {seconds(moment)}", "css": css})
    if len(markers) == 2 and markers[1]["x"] - markers[0]["x"] < 90:
        markers[1]["anchor"] = "start"       # keep two close labels apart
    for marker in markers:
        marker.setdefault("anchor", "middle" if marker["css"] == "fault-line" else "start")
    return markers


def failover_brackets(drill, scale, y):
    """The gap runs from the fault to the first success through the other balancer; the
    outage ends at that same moment and starts at the last success through the broken one."""
    fault, gap, outage = drill.get("fault_ms"), drill.get("gap_ms"), drill.get("outage_ms")
    if not isinstance(fault, (int, float)) or not isinstance(gap, (int, float)):
        return []
    first_success = fault + gap
    brackets = [bracket("gap", f"gap {gap:g} ms", fault, first_success, scale, y)]
    if isinstance(outage, (int, float)):
        brackets.append(bracket("outage", f"outage {outage:g} ms", first_success - outage, first_success,
                                scale, y + 20))
    return brackets


def bracket(css, label, start, end, scale, y):
    x1, x2 = scale.x(start), scale.x(end)
    label_on_the_left = x2 > PLOT_RIGHT - 160
    return {"css": css, "label": label, "x1": x1, "x2": max(x2, x1 + 1), "y": y,
            "label_x": x1 - 6 if label_on_the_left else x2 + 6,
            "anchor": "end" if label_on_the_left else "start",
            "title": f"{label}: from {seconds(start)} to {seconds(end)}"}


# --- the latency chart ------------------------------------------------------------------------

LATENCY_TOP = 16
LATENCY_BOTTOM = 176


def latency_chart(drill, balancer_css):
    """Each request's latency against its start time, on a log scale (a 3 ms answer and a
    500 ms timeout both stay readable)."""
    requests = [r for r in drill.get("timeline") or [] if isinstance(r.get("latency_ms"), (int, float))]
    if not requests:
        return None
    scale = TimeScale.covering(chart_end_ms(drill))
    latencies = [max(r["latency_ms"], 0.1) for r in requests]
    low = 10 ** math.floor(math.log10(min(latencies)))
    high = max(10 ** math.ceil(math.log10(max(latencies))), low * 100)
    y_of = log_scale(low, high)
    points = [{"x": scale.x(r.get("t_ms", 0)), "y": y_of(max(r["latency_ms"], 0.1)),
               "css": balancer_css(r.get("balancer")) if r.get("ok") else "failed",
               "title": request_title(r)} for r in requests]
    y_ticks = []
    value = low
    while value <= high * 1.0001:
        y_ticks.append({"y": y_of(value), "label": milliseconds(value)})
        value *= 10
    window = fault_window(drill, scale)
    return {"width": WIDTH, "height": LATENCY_BOTTOM + 44, "top": LATENCY_TOP, "axis_y": LATENCY_BOTTOM,
            "left": PLOT_LEFT, "right": PLOT_RIGHT, "ticks": scale.ticks(), "y_ticks": y_ticks,
            "fault_window": window, "points": points}


def log_scale(low, high):
    span = math.log10(high) - math.log10(low)

    def y_of(value):
        share = (math.log10(value) - math.log10(low)) / span
        return round(LATENCY_BOTTOM - share * (LATENCY_BOTTOM - LATENCY_TOP), 1)
    return y_of


def milliseconds(value):
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"
