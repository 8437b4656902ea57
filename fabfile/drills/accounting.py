"""The drills' bookkeeping, pure: which writes were kept or lost, and latency quantiles."""
import math

QUANTILES = (("p50", 50), ("p95", 95), ("p99", 99))


def write_accounting(attempted, acknowledged, found):
    """The six counts of a drill's writes. Items are the unique texts of write requests:
    `attempted` every write sent, `acknowledged` those answered 201, `found` the texts in
    the database afterwards, already filtered by this drill's prefix.

    lost: acknowledged but not found; recovered: not acknowledged (the reply was lost)
    but found; unexpected: found but never sent by this drill."""
    attempted, acknowledged, found = set(attempted), set(acknowledged), set(found)
    return {
        "attempted": len(attempted),
        "acknowledged": len(acknowledged),
        "found": len(found),
        "lost": len(acknowledged - found),
        "recovered": len((attempted - acknowledged) & found),
        "unexpected": len(found - attempted),
    }


def latency_quantiles(latencies_ms):
    """p50, p95, p99 (nearest-rank method) and max, rounded to 0.1 ms; all None when empty."""
    ordered = sorted(latencies_ms)
    if not ordered:
        return {name: None for name, _ in QUANTILES} | {"max": None}
    result = {name: round(_nearest_rank(ordered, percent), 1) for name, percent in QUANTILES}
    result["max"] = round(ordered[-1], 1)
    return result


def _nearest_rank(ordered, percent):
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
