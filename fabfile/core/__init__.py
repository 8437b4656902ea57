"""core: the lab model and its validation, errors, the console, configuration, state."""
