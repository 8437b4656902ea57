"""The drills' client: open-loop, bounded. It starts a request every 1/rate seconds on a
fixed schedule whatever the replies (a client that waits for each reply would hide the
gap), each with a short timeout, and stops after `count` requests or `max_seconds`."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..checks.http import request

MAX_SECONDS = 60


@dataclass
class Sample:
    started: float      # time.monotonic() when the request was sent
    finished: float
    kind: str           # "read" or "write"
    ok: bool
    balancer: str = ""  # X-LB of the reply
    note_id: int = 0    # the id of an acknowledged write
    error: str = ""
    text: str = ""      # a write's text: the client's tag and the request's index, unique


class OpenLoopClient:
    def __init__(self, vip, rate=40, count=400, timeout=0.5, write_every=2, max_seconds=MAX_SECONDS,
                 tag="drill", port=None, tls=None):
        """`write_every`: every Nth request writes a note (0: reads only). With `tls`
        (checks.http.lab_tls), HTTPS verified against the lab's CA: every request opens
        its own connection, so its time includes the TCP and TLS handshakes."""
        if rate <= 0 or count <= 0:
            raise ValueError("rate and count must be positive")
        self.vip = vip
        self.rate = rate
        self.count = count
        self.timeout = timeout
        self.write_every = write_every
        self.max_seconds = min(max_seconds, MAX_SECONDS)
        self.tag = tag
        self.port = port
        self.tls = tls
        self.began = None  # time.monotonic() of the first request
        self.samples = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def _one(self, index):
        kind = "write" if self.write_every and index % self.write_every == 0 else "read"
        text = f"{self.tag} {index}" if kind == "write" else ""
        started = time.monotonic()
        try:
            if kind == "write":
                reply = request(self.vip, "POST", "/api/notes", {"text": text}, timeout=self.timeout,
                                port=self.port, tls=self.tls)
                ok = reply.status == 201
                note_id = int(reply.json()["id"]) if ok else 0
            else:
                reply = request(self.vip, "GET", "/", timeout=self.timeout, port=self.port, tls=self.tls)
                ok, note_id = reply.status == 200, 0
            sample = Sample(started, time.monotonic(), kind, ok, reply.headers.get("x-lb", ""), note_id,
                            "" if ok else f"HTTP {reply.status}", text)
        except (OSError, ValueError, KeyError) as exc:
            sample = Sample(started, time.monotonic(), kind, False, error=type(exc).__name__, text=text)
        with self._lock:
            self.samples.append(sample)

    def _schedule(self):
        interval = 1.0 / self.rate
        begin = self.began = time.monotonic()
        deadline = begin + self.max_seconds
        workers = max(4, int(self.rate * self.timeout * 2) + 2)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for index in range(self.count):
                due = begin + index * interval
                while not self._stop.is_set():
                    delay = due - time.monotonic()
                    if delay <= 0:
                        break
                    self._stop.wait(min(delay, 0.05))
                if self._stop.is_set() or time.monotonic() > deadline:
                    break
                pool.submit(self._one, index)

    def start(self):
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=self.max_seconds + self.timeout + 5)

    def sorted_samples(self):
        with self._lock:
            return sorted(self.samples, key=lambda s: s.started)


def first_success_through(samples, balancer, after):
    ok = [s for s in samples if s.ok and s.balancer == balancer and s.finished > after]
    return min(ok, key=lambda s: s.finished) if ok else None


def gap_ms(samples, fault_at, other_balancer):
    """Milliseconds from the fault command to the first success served by the other
    balancer (None when none came)."""
    first = first_success_through(samples, other_balancer, fault_at)
    return None if first is None else round((first.finished - fault_at) * 1000)


def outage_ms(samples, fault_at, broken_balancer, other_balancer):
    """What clients saw: from the last success through the broken balancer to the first
    success through the other one (None when the other never answered)."""
    first = first_success_through(samples, other_balancer, fault_at)
    if first is None:
        return None
    before = [s.finished for s in samples if s.ok and s.balancer == broken_balancer
              and s.finished <= first.finished]
    return round((first.finished - max(before, default=fault_at)) * 1000)
