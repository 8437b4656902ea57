"""Which writes a drill kept, lost or recovered, and its latency quantiles."""
from fabfile.drills.accounting import latency_quantiles, write_accounting

SENT = ["d1-w0", "d1-w1", "d1-w2", "d1-w3"]


def test_every_acknowledged_write_found_means_nothing_lost():
    counts = write_accounting(SENT, SENT[:3], set(SENT[:3]))
    assert counts == {"attempted": 4, "acknowledged": 3, "found": 3,
                      "lost": 0, "recovered": 0, "unexpected": 0}


def test_an_acknowledged_write_missing_from_the_database_is_lost():
    counts = write_accounting(SENT, SENT, {"d1-w0", "d1-w2", "d1-w3"})
    assert counts["lost"] == 1
    assert counts["found"] == 3


def test_a_write_whose_reply_was_lost_but_which_was_stored_is_recovered():
    counts = write_accounting(SENT, ["d1-w0", "d1-w1"], {"d1-w0", "d1-w1", "d1-w3"})
    assert counts["recovered"] == 1
    assert counts["lost"] == 0


def test_a_stored_write_this_drill_never_sent_is_unexpected():
    counts = write_accounting(SENT, SENT, set(SENT) | {"d1-w99"})
    assert counts["unexpected"] == 1
    assert counts["found"] == 5
    assert counts["lost"] == counts["recovered"] == 0


def test_duplicates_are_counted_once():
    counts = write_accounting(SENT + SENT[:1], SENT[:1] * 2, {"d1-w0"})
    assert counts["attempted"] == 4
    assert counts["acknowledged"] == 1


def test_no_writes_at_all():
    assert write_accounting([], [], set()) == dict.fromkeys(
        ("attempted", "acknowledged", "found", "lost", "recovered", "unexpected"), 0)


def test_quantiles_use_the_nearest_rank():
    latencies = [float(ms) for ms in range(1, 101)]  # 1 .. 100 ms, shuffled order must not matter
    assert latency_quantiles(list(reversed(latencies))) == {"p50": 50.0, "p95": 95.0, "p99": 99.0,
                                                          "max": 100.0}


def test_quantiles_of_a_few_values_pick_real_samples():
    assert latency_quantiles([3.04, 500.0, 4.0]) == {"p50": 4.0, "p95": 500.0, "p99": 500.0, "max": 500.0}


def test_quantiles_round_to_a_tenth_of_a_millisecond():
    assert latency_quantiles([3.14159]) == {"p50": 3.1, "p95": 3.1, "p99": 3.1, "max": 3.1}


def test_no_latencies_gives_no_quantiles():
    assert latency_quantiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}
