"""The console: what the lab prints. Lines that say which host they come from, tables,
verdicts. Progress goes through `say`, one line per host and event; reports are data that
the tasks print (as tables) or write (core.report.write_json)."""
import sys
import threading

_lock = threading.Lock()
NAME_WIDTH = 6


def say(host, message, stream=None):
    """One line per message line, prefixed with the host it concerns."""
    stream = stream or sys.stdout
    with _lock:
        for line in str(message).splitlines() or [""]:
            stream.write(f"{host:<{NAME_WIDTH}}| {line}\n")
        stream.flush()


def info(message):
    with _lock:
        print(message, flush=True)


def error(message):
    with _lock:
        print(message, file=sys.stderr, flush=True)


def table(headers, rows):
    """A plain-text table, columns as wide as their widest cell."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
