"""The VIP sampler: asks both balancers at once, every SAMPLE_EVERY_S, whether they hold
the VIP, on connections of its own. A balancer that does not answer counts as not holding
it. The two answers of one sample come from two guests that each take their own time to
answer (hundreds of ms apart on a slow guest), so a clean handover can look like both
holding the VIP: a sample that says so is asked again at once, and only an overlap that is
still there is kept. A split brain lasts at least an advert interval; a handover does not."""
from concurrent.futures import ThreadPoolExecutor
import threading
import time

from ..remote import facts as F
from ..remote.connection import connect
from ..roles.loadbalancer import balancers

SAMPLE_EVERY_S = 0.1
SAMPLE_TIMEOUT_S = 2


class VipSampler:
    def __init__(self, lab, endpoints_of, max_seconds):
        self.lab = lab
        self.endpoints_of = endpoints_of
        self.max_seconds = max_seconds
        self.samples = []  # (time.monotonic(), frozenset of holders)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._connections = {}

    def _holds(self, name):
        try:
            if name not in self._connections:
                endpoint = self.endpoints_of().get(name)
                if endpoint is None:
                    return False
                self._connections[name] = connect(endpoint, connect_timeout=1)
            fact = F.addresses()
            result = self._connections[name].run(fact.command, hide=True, warn=True, timeout=SAMPLE_TIMEOUT_S)
            return fact.parse(result.stdout).holds(self.lab.vip)
        except Exception:
            self._connections.pop(name, None)
            return False

    def _ask(self, pool, names):
        return frozenset(n for n, held in zip(names, pool.map(self._holds, names)) if held)

    def _loop(self):
        names = [h.name for h in balancers(self.lab)]
        deadline = time.monotonic() + self.max_seconds
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="vip-sampler") as pool:
            while not self._stop.is_set() and time.monotonic() < deadline:
                holders = self._ask(pool, names)
                if len(holders) > 1:
                    holders = self._ask(pool, names)
                self.samples.append((time.monotonic(), holders))
                self._stop.wait(SAMPLE_EVERY_S)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        for connection in self._connections.values():
            connection.close()

    @property
    def split_brain(self):
        return any(len(holders) > 1 for _, holders in self.samples)
