"""Debian's headless chromium for tests: open a local file as a person would, offline.

Every run gets a fresh profile, a bounded time, and a host resolver that resolves nothing,
so a page that tried to fetch anything from outside could not. With `net_log`, chromium also
records every request it made; `page_requests` reads back the ones the page itself made
(chromium's own background requests, also unresolvable here, are left out)."""
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

TIMEOUT_S = 60
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND")


def available():
    return shutil.which("chromium") is not None


def _run(arguments, net_log=None):
    with tempfile.TemporaryDirectory(prefix="halab-chromium-") as profile:
        command = ["chromium", *FLAGS, f"--user-data-dir={profile}"]
        if net_log:
            command.append(f"--log-net-log={net_log}")
        result = subprocess.run(command + arguments, capture_output=True, text=True, timeout=TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def dump_dom(path, net_log=None):
    """The DOM chromium built from the file, serialised."""
    return _run(["--dump-dom", Path(path).resolve().as_uri()], net_log)


def screenshot(path, out_png, size=(1400, 2400), net_log=None):
    """A PNG of the file as shown in a window of `size` (width, height) pixels."""
    width, height = size
    _run([f"--screenshot={out_png}", f"--window-size={width},{height}", Path(path).resolve().as_uri()], net_log)
    return Path(out_png)


def page_requests(net_log):
    """The URLs of the network requests the opened page made (its network isolation key is
    file://); chromium's own background requests carry another key and are left out."""
    log = json.loads(Path(net_log).read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start_job and "url" in event.get("params", {})
            and "file://" in event["params"].get("network_isolation_key", "")]


def dump_url(url, host):
    """The DOM chromium built from a page of the lab (`host`: its IP, the only address the
    resolver lets through; the caller has checked the route to it)."""
    flags = [f for f in FLAGS if not f.startswith("--host-resolver-rules")]
    with tempfile.TemporaryDirectory(prefix="halab-chromium-") as profile:
        command = ["chromium", *flags, f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
                   f"--user-data-dir={profile}", "--dump-dom", url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout
