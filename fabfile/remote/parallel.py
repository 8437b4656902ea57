"""Commands on many hosts at once, one SSH connection each, output prefixed by host."""
import threading
import time
from dataclasses import dataclass

from invoke.exceptions import CommandTimedOut

from ..core.console import say


@dataclass
class HostResult:
    host: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    error: str = ""  # set when the host could not be reached at all

    @property
    def ok(self):
        return not self.error and self.exit_code == 0


def run_one(name, connection, command, sudo=False, timeout=None):
    started = time.monotonic()
    try:
        runner = connection.sudo if sudo else connection.run
        result = runner(command, hide=True, warn=True, timeout=timeout, in_stream=False)
    except CommandTimedOut as exc:
        return no_answer(name, exc.timeout)
    except Exception as exc:  # unreachable host, auth failure: report, don't crash
        return HostResult(name, -1, error=f"{type(exc).__name__}: {exc}".strip())
    if result.exited == -1 and timeout and time.monotonic() - started >= timeout:
        # Invoke's timer killed the command, but the run ended before the timer's thread
        # did, so it returned "no exit status" instead of raising CommandTimedOut.
        return no_answer(name, timeout)
    return HostResult(name, result.exited, result.stdout, result.stderr)


def no_answer(name, timeout):
    return HostResult(name, -1, error=f"no answer within {timeout:.0f}s (is the host frozen?)")




def in_parallel(func, items, on_interrupt=None):
    """[func(item) for item in items], each in a thread of its own, results in order.
    The threads are daemons: on Ctrl-C, `on_interrupt()` runs (close the connections)
    and the KeyboardInterrupt goes on at once; a thread still waiting on a frozen host
    does not hold the program's exit."""
    results = [None] * len(items)
    errors = []

    def work(index, item):
        try:
            results[index] = func(item)
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
    except KeyboardInterrupt:
        if on_interrupt:
            on_interrupt()
        raise
    if errors:
        raise errors[0]
    return results


def run_parallel(connections, command, sudo=False, timeout=None, echo=True):
    """Run `command` on every connection at once; returns {host: HostResult}, in lab order.
    With `echo`, each host's output is printed as soon as the host finishes."""
    def task(item):
        name, connection = item
        result = run_one(name, connection, command, sudo=sudo, timeout=timeout)
        if echo:
            echo_result(result)
        return result

    def close_all():  # closing the connections ends the commands at once
        for connection in connections.values():
            connection.close()

    results = in_parallel(task, list(connections.items()), on_interrupt=close_all)
    return {r.host: r for r in results}


def echo_result(result):
    if result.error:
        say(result.host, f"unreachable: {result.error}")
        return
    for text in (result.stdout, result.stderr):
        if text.strip():
            say(result.host, text.rstrip("\n"))


def failure_summary(results):
    """'lb2 (exit 1), web1 (unreachable)' for the hosts that failed, or ''."""
    failed = []
    for r in results.values():
        if r.error:
            failed.append(f"{r.host} ({'not running' if r.error == 'not running' else 'no answer' if r.error.startswith('no answer') else 'unreachable'})")
        elif r.exit_code != 0:
            failed.append(f"{r.host} (exit {r.exit_code})")
    return ", ".join(failed)
