"""The notes app with Prometheus metrics: what Gunicorn serves (`notes_metrics:application`).

It wraps notes_app's WSGI application, counts every request (by route, method and status)
and times it, and answers GET /metrics on the app's own port (the private IP) with:
    halab_app_requests_total{route, method, status}
    halab_app_request_duration_seconds{route}   (a histogram)
    halab_app_database_up                       (1 when SELECT 1 worked at scrape time)
Gunicorn runs several worker processes: prometheus_client's multiprocess mode adds up
their counters from files in PROMETHEUS_MULTIPROC_DIR (systemd's RuntimeDirectory,
emptied at every start), which must be set before prometheus_client is imported.
"""
import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

import notes_app

REQUESTS = Counter("halab_app_requests_total", "Requests answered by the notes app",
                   ["route", "method", "status"])
LATENCY = Histogram("halab_app_request_duration_seconds", "Time to answer a request", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def route_of(path):
    """A bounded label: the route, never the raw path (one series per note id would explode)."""
    if path == "/api/health":
        return "health"
    if path == "/api/notes":
        return "notes"
    if notes_app.NOTE_PATH.fullmatch(path or ""):
        return "note"
    return "other"


class DatabaseCollector:
    """halab_app_database_up, asked at scrape time with the app's own account."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        try:
            self.store.ping()
            up = 1
        except notes_app.StoreError:
            up = 0
        family = GaugeMetricFamily("halab_app_database_up", "1 when this app host reaches its database")
        family.add_metric([], up)
        yield family


def instrument(app, store):
    def metrics(start_response):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(DatabaseCollector(store))
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    def application(environ, start_response):
        path, method = environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics" and method == "GET":
            return metrics(start_response)
        route, seen = route_of(path), {}

        def counting_start_response(status, headers, *exc_info):
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, *exc_info)

        started = time.monotonic()
        try:
            return app(environ, counting_start_response)
        finally:
            LATENCY.labels(route).observe(time.monotonic() - started)
            REQUESTS.labels(route, method if method in ("GET", "POST", "HEAD") else "other",
                            seen.get("status", "500")).inc()

    return application


application = instrument(notes_app.application, notes_app.NotesStore.from_env(os.environ))
