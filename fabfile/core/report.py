"""The one JSON writer for every report (provision, verify, failover, bench, monitor):
written next to its target and renamed, so a reader never sees half a report."""
import json
import os
from pathlib import Path


def write_json(path, data):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path
