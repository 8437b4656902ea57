"""`invoke watch`: the live lab refreshed a few times a second, with a light bounded probe
through the VIP (reads only) for requests per second and errors."""
import time

from rich.console import Console
from rich.live import Live

from ..checks.http import lab_tls
from ..checks.live import gather_all, snapshot
from ..checks.netsafety import ensure_local_route
from ..drills.client import MAX_SECONDS, OpenLoopClient
from ..views.watch import frame, traffic

PROBE_RATE = 5          # requests per second through the VIP: light
REFRESH_S = 0.3         # a frame every 0.3 s
MAX_WATCH_S = 3600      # --seconds is bounded


def watch(machines, seconds, probe=True, console=None):
    """Refresh the frame until `seconds` have passed or Ctrl-C; the connections stay open
    between frames (one per host, one frame at a time)."""
    lab = machines.lab
    seconds = min(seconds, MAX_WATCH_S)
    if probe:
        ensure_local_route(lab.vip, lab.network)
    connections, _ = machines.inventory.connections(list(lab.hosts))
    tls = lab_tls(lab) if probe else None
    client = None
    started = time.monotonic()
    try:
        with Live(console=console or Console(), refresh_per_second=4, transient=False) as screen:
            while time.monotonic() - started < seconds:
                if probe and (client is None or time.monotonic() - (client.began or time.monotonic()) > MAX_SECONDS):
                    if client is not None:
                        client.stop()
                    left = max(1.0, seconds - (time.monotonic() - started))
                    client = OpenLoopClient(lab.vip, rate=PROBE_RATE, count=int(PROBE_RATE * min(left, MAX_SECONDS)),
                                            write_every=0, max_seconds=min(left, MAX_SECONDS), tls=tls).start()
                state = snapshot(lab, gather_all(lab, connections))
                flow = traffic(client.sorted_samples(), time.monotonic()) if client else None
                screen.update(frame(state, flow, time.monotonic() - started))
                time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        pass
    finally:
        if client is not None:
            client.stop()
        for connection in connections.values():
            connection.close()
