"""Pure renderers that turn the lab model and drill results into pages a person can read."""
