"""CPU burners: one busy process per core of this machine, to show how the lab behaves on a
loaded machine (`invoke soak`). Each is bounded three ways: it ends by itself at its
deadline, it ends when its parent is gone (a killed soak leaves nothing spinning), and
`CpuBurners` kills it on every way out of its `with` block, Ctrl-C included."""
import os
import subprocess
import sys
import time

MAX_BURN_S = 4 * 3600      # no burner outlives this, whatever it is asked
MARKER = "halab-cpu-burner"  # on each burner's command line: `pgrep -f halab-cpu-burner`
STOP_TIMEOUT_S = 5

# The burner itself: spin until the deadline (time.monotonic() is system-wide on Linux) or
# until its parent dies (it is then adopted by another process and its parent id changes).
BURN = """
import os, sys, time
deadline, parent = float(sys.argv[2]), int(sys.argv[3])
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(100000):
        pass
"""


def cores():
    """The cores this process may run on (what "every core busy" means here)."""
    return len(os.sched_getaffinity(0))


class CpuBurners:
    """`with CpuBurners(seconds):` keeps `count` cores (default: all) busy for at most
    `seconds`, and no longer than the block."""

    def __init__(self, seconds, count=None):
        if not 0 < seconds <= MAX_BURN_S:
            raise ValueError(f"burn seconds must be in (0, {MAX_BURN_S}]")
        self.seconds = seconds
        self.count = cores() if count is None else count
        self.processes = []

    def __enter__(self):
        deadline = time.monotonic() + self.seconds
        try:
            for _ in range(self.count):
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-c", BURN, MARKER, repr(deadline), str(os.getpid())],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def pids(self):
        return [p.pid for p in self.processes]

    def running(self):
        return [p.pid for p in self.processes if p.poll() is None]

    def stop(self):
        """Kill every burner and reap it (bounded)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
