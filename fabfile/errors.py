"""The one exception the lab raises: what went wrong, and what to do about it."""


class LabError(Exception):
    """A failure a user can act on. `fix` says how; tasks print both and exit non-zero."""

    def __init__(self, problem, fix=None, host=None):
        self.problem = problem
        self.fix = fix
        self.host = host
        super().__init__(str(self))

    def __str__(self):
        where = f"{self.host}: " if self.host else ""
        text = f"{where}{self.problem}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text
