"""The monitoring server seen from this machine: Prometheus' and Alertmanager's URLs, the
state of every scrape target, the alerts firing now and the saved queries' answers, all
read from Prometheus' HTTP API over the lab network, after the route check, with short
timeouts. The report speaks Prometheus' own vocabulary (job, instance, health,
alertname, state)."""
import json
import urllib.parse
from dataclasses import dataclass

from ..core.errors import LabError
from ..roles import ROLES
from ..roles.monitor import SAVED_QUERIES, monitor_host
from .http import request
from .netsafety import ensure_local_route

API_TIMEOUT_S = 3.0


def require_monitor(lab):
    host = monitor_host(lab)
    if host is None:
        raise LabError(f"{lab.path.name} has no monitoring server",
                       "add mon1: {role: monitor, ip: ...} to lab.yml; see labs/monitored.yml")
    return host


@dataclass
class Prometheus:
    """Prometheus' HTTP API on the lab's monitoring server."""
    ip: str
    port: int

    @classmethod
    def of(cls, lab):
        host = require_monitor(lab)
        ensure_local_route(host.ip, lab.network)
        return cls(host.ip, ROLES["monitor"].settings(lab)["prometheus_port"])

    @property
    def url(self):
        return f"http://{self.ip}:{self.port}/"

    def api(self, path, **params):
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            reply = request(self.ip, "GET", f"/api/v1/{path}{query}", timeout=API_TIMEOUT_S, port=self.port)
            body = reply.json()
        except (OSError, ValueError) as exc:
            raise LabError(f"Prometheus at {self.url} did not answer /api/v1/{path}: {exc}",
                           "is mon1 provisioned? `invoke provision --hosts mon1`, then `invoke verify`")
        if reply.status != 200 or body.get("status") != "success":
            raise LabError(f"Prometheus /api/v1/{path} answered {reply.status}: {body.get('error', body)}")
        return body["data"]

    def targets(self):
        return [{"job": t["labels"].get("job"), "instance": t["labels"].get("instance"),
                 "host": t["labels"].get("host"), "health": t.get("health"),
                 "last_error": t.get("lastError", "")}
                for t in self.api("targets", state="active")["activeTargets"]]

    def alerts(self):
        return [{"alertname": a["labels"].get("alertname"), "state": a.get("state"),
                 "host": a["labels"].get("host"), "active_at": a.get("activeAt"),
                 "summary": a.get("annotations", {}).get("summary", "")}
                for a in self.api("alerts")["alerts"]]

    def query(self, expr):
        """[(labels, value)] of an instant query."""
        return [(r["metric"], float(r["value"][1])) for r in self.api("query", query=expr)["result"]]

    def query_range(self, expr, start, end, step):
        """[(labels, [(unix time, value)])] of a range query."""
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]


def saved_query_answers(prometheus):
    answers = []
    for q in SAVED_QUERIES:
        rows = prometheus.query(q.expr)
        answers.append({"name": q.name, "title": q.title, "expr": q.expr, "unit": q.unit,
                        "values": {labels.get(q.by, "-"): round(value, 3) for labels, value in rows}})
    return answers


def monitor_report(lab):
    """What `invoke monitor` shows, as a dict (its --json)."""
    prometheus = Prometheus.of(lab)
    host = require_monitor(lab)
    settings = ROLES["monitor"].settings(lab)
    return {"prometheus": prometheus.url,
            "alertmanager": f"http://{host.ip}:{settings['alertmanager_port']}/",
            "console": f"{prometheus.url}consoles/halab.html",
            "targets": prometheus.targets(),
            "alerts": prometheus.alerts(),
            "queries": saved_query_answers(prometheus)}


def dumps(report):
    return json.dumps(report, indent=2)
