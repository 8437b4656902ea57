"""The one writer for every report (provision, verify, failover and bench JSON, the HTML
pages, the SVG drawing): written next to its target and renamed, so a reader never sees
half a report."""
import json
import os
from pathlib import Path


def write_text(path, text):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=2) + "\n")
