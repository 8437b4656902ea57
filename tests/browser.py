"""Debian's headless chromium for tests: open a local file as a person would, offline.

Every run gets a fresh profile, a bounded time, and a host resolver that resolves nothing,
so a page that tried to fetch anything from outside could not. With `net_log`, chromium also
records every request it made; `page_requests` reads back the ones the page itself made
(chromium's own background requests, also unresolvable here, are left out)."""
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

TIMEOUT_S = 60
RESOLVE_NOTHING = "MAP * ~NOTFOUND"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def available():
    return shutil.which("chromium") is not None


def _run(arguments, net_log=None, names=None, trusted_ca=None):
    """chromium with a fresh profile. `names` ({name: address}) are the only names it
    resolves; a name that is an IP address (mapped to itself) is let through as it is.
    `trusted_ca` is a CA certificate it trusts, through an NSS database in a home of its
    own (where chromium on Linux reads the user's trusted authorities)."""
    with tempfile.TemporaryDirectory(prefix="halab-chromium-") as profile:
        command = ["chromium", *FLAGS, f"--user-data-dir={profile}/data",
                   f"--host-resolver-rules={resolver_rules(names)}"]
        env = dict(os.environ)
        if names is not None:  # a web page: a home of its own, so only `trusted_ca` is trusted
            env["HOME"] = profile
        if trusted_ca:
            _trust(Path(profile) / ".pki" / "nssdb", trusted_ca)
        if net_log:
            command.append(f"--log-net-log={net_log}")
        result = subprocess.run(command + arguments, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def resolver_rules(names):
    """--host-resolver-rules that resolve only `names`: a name to its address, an IP
    address (chromium maps literals too) excluded from the catch-all that resolves nothing."""
    names = names or {}
    literal = [n for n in names if _is_ip(n)]
    rules = [f"MAP {name} {address}" for name, address in names.items() if name not in literal]
    return ", ".join(rules + [RESOLVE_NOTHING] + [f"EXCLUDE {ip}" for ip in literal])


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _trust(nssdb, ca_file):
    """An NSS database that trusts `ca_file` to identify web sites (certutil: libnss3-tools)."""
    nssdb.mkdir(parents=True)
    for args in (["-N", "--empty-password"], ["-A", "-t", "C,,", "-n", "lab CA", "-i", str(ca_file)]):
        subprocess.run(["certutil", "-d", f"sql:{nssdb}", *args], check=True, capture_output=True, timeout=30)


def trust_available():
    return shutil.which("certutil") is not None


def dump_dom(path, net_log=None):
    """The DOM chromium built from the file, serialised."""
    return _run(["--dump-dom", Path(path).resolve().as_uri()], net_log)


def dump_url(url, names, trusted_ca=None, net_log=None):
    """The DOM chromium built from `url`, resolving only `names` ({name: address}; a lab
    host's IP as {ip: ip}), trusting `trusted_ca` (a CA certificate file) if given."""
    return _run(["--dump-dom", url], net_log, names, trusted_ca)


def screenshot_url(url, out_png, names, trusted_ca, size=(1200, 900)):
    width, height = size
    _run([f"--screenshot={out_png}", f"--window-size={width},{height}", url], None, names, trusted_ca)
    return Path(out_png)


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

