"""Errors the CLI turns into one line on stderr and an exit status."""


class CommandError(Exception):
    """A refused command; `status` is the process exit code (2: bad usage or config)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
