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


# --- the client itself, against a small server on this machine's loopback ------------------

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fabfile.drills.client import OpenLoopClient


class Balancer(BaseHTTPRequestHandler):
    """Answers like the lab through the VIP: pages with X-LB, notes with 201 and an id;
    the server's `failing` flag makes it answer 503."""
    notes = []

    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("X-LB", "lb1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(503 if self.server.failing else 200, b"page")

    def do_POST(self):
        text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
        self.notes.append(text)
        self._answer(201, json.dumps({"id": len(self.notes)}).encode())


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Balancer)
    httpd.failing = False
    Balancer.notes = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_the_client_sends_on_schedule_writes_unique_texts_and_stops_at_its_count(server):
    client = OpenLoopClient("127.0.0.1", rate=50, count=20, tag="drill-test-1", port=server.server_port).start()
    client._thread.join(timeout=5)
    time.sleep(0.2)
    samples = client.sorted_samples()
    assert len(samples) == 20 and all(s.ok for s in samples)
    writes = [s for s in samples if s.kind == "write"]
    assert [s.text for s in writes] == [f"drill-test-1 {i}" for i in range(0, 20, 2)]
    assert sorted(Balancer.notes) == sorted(s.text for s in writes)
    assert all(s.balancer == "lb1" for s in samples) and client.began is not None
    starts = [s.started for s in samples]
    assert starts[-1] - starts[0] == pytest.approx(19 / 50, abs=0.1), "open loop: a fixed schedule"


def test_failures_are_samples_too_and_a_reads_only_client_writes_nothing(server):
    server.failing = True
    client = OpenLoopClient("127.0.0.1", rate=50, count=10, write_every=0, port=server.server_port).start()
    client._thread.join(timeout=5)
    time.sleep(0.2)
    samples = client.sorted_samples()
    assert len(samples) == 10 and not any(s.ok for s in samples)
    assert {s.error for s in samples} == {"HTTP 503"} and Balancer.notes == []


def test_stop_ends_the_client_early_and_nothing_answers_is_a_failure():
    client = OpenLoopClient("127.0.0.1", rate=20, count=1000, timeout=0.2, port=9).start()
    time.sleep(0.3)
    client.stop()
    samples = client.sorted_samples()
    assert 0 < len(samples) < 20
    assert all(not s.ok and s.error for s in samples)


def test_rate_and_count_must_be_positive():
    with pytest.raises(ValueError):
        OpenLoopClient("127.0.0.1", rate=0)
