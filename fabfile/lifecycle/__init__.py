"""lifecycle: the named sequences (provision, reset, bench), the only place that strings
the layers together. tasks.py calls these and the layers' read-only entry points."""
