"""Logging set-up: one line per event on stderr, ISO timestamps in UTC."""

from __future__ import annotations

import logging
import sys
import time


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{t}.{int(record.msecs):03d}Z"


def _not_aiosmtpd_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd 1.4 warns about its own legacy `login_data` on every successful AUTH: noise.
    return not str(record.msg).startswith("Session.login_data is deprecated")


def configure(level: str = "INFO", *, with_pid: bool = False) -> None:
    """``with_pid``: each line says which process wrote it (``server.processes`` > 1)."""
    handler = logging.StreamHandler(sys.stderr)
    pid = "[%(process)d] " if with_pid else ""
    handler.setFormatter(_UTCFormatter(f"%(asctime)s %(levelname)s {pid}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access logs are noise at INFO; errors still come through.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiosmtpd logs every command line at INFO; the doors log one line per event instead.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("mail.log").addFilter(_not_aiosmtpd_deprecation)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
