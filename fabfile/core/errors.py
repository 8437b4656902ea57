"""The one exception the lab raises: what went wrong, and what to do about it."""


class LabError(Exception):
    """A failure a user can act on. `fix` says how; tasks print both and exit non-zero.
    `host` and `step` say where it happened when it happened on a lab host."""

    def __init__(self, problem, fix=None, host=None, step=None):
        self.problem = problem
        self.fix = fix
        self.host = host
        self.step = step
        super().__init__(str(self))

    def __str__(self):
        where = f"{self.host}: " if self.host else ""
        what = f"{self.step}: " if self.step else ""
        text = f"{where}{what}{self.problem}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


def step_failed(step, output, fix=None):
    """A provisioning step that failed on its host: the step's name and what the host said."""
    return LabError(output.strip(), fix, step=step)
