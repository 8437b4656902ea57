"""The failover figures computed from the client's samples."""
from fabfile.drills.client import Sample, gap_ms, outage_ms


def sample(started, finished, ok, balancer=""):
    return Sample(started, finished, "read", ok, balancer)


SAMPLES = [
    sample(9.90, 9.91, True, "lb1"),
    sample(9.95, 9.96, True, "lb1"),    # last answer of the broken balancer
    sample(10.00, 10.50, False),        # the fault is issued at 10.00
    sample(10.05, 10.55, False),
    sample(10.30, 10.31, True, "lb2"),  # first answer through the other balancer
    sample(10.35, 10.36, True, "lb2"),
]


def test_gap_runs_from_the_fault_to_the_first_success_through_the_other_balancer():
    assert gap_ms(SAMPLES, 10.0, "lb2") == 310


def test_outage_runs_from_the_last_answer_of_the_broken_balancer():
    assert outage_ms(SAMPLES, 10.0, "lb1", "lb2") == 350


def test_no_failover_means_no_gap():
    assert gap_ms(SAMPLES[:4], 10.0, "lb2") is None
    assert outage_ms(SAMPLES[:4], 10.0, "lb1", "lb2") is None


def test_answers_from_the_other_balancer_before_the_fault_do_not_count():
    early = [sample(9.0, 9.01, True, "lb2")] + SAMPLES
    assert gap_ms(early, 10.0, "lb2") == 310
