"""A private Dovecot instance taking mail over LMTP into maildirs, for the SMTP benchmark.

Its own configuration file, base directory, log and mail directory under one temporary
directory (``dovecot -c FILE``), LMTP on a UNIX socket only (no IMAP, no network listener),
a static userdb (every address of the configured domain is a user, mail owned by ``nobody``),
and Dovecot's default durability: ``mail_fsync = optimized`` fsyncs each delivered message
before LMTP answers 250. Debian packages: ``dovecot-core`` and ``dovecot-lmtpd``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.peers.postfix import descendants

__all__ = ["DovecotLMTP", "dovecot_missing"]

_NOBODY = 65534


def dovecot_missing() -> str | None:
    exe = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(exe).exists():
        return "Dovecot is not installed (apt-get install dovecot-core dovecot-lmtpd)"
    if not Path("/usr/lib/dovecot/lmtp").exists():
        return "Dovecot's LMTP server is not installed (apt-get install dovecot-lmtpd)"
    if os.geteuid() != 0:
        return "a private Dovecot instance is started as root here"
    return None


class DovecotLMTP:
    def __init__(self, name: str = "dovecot") -> None:
        missing = dovecot_missing()
        if missing:
            raise RuntimeError(missing)
        self.exe = shutil.which("dovecot") or "/usr/sbin/dovecot"
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
        self.root.chmod(0o755)
        self.run_dir = self.root / "run"  # base_dir: the LMTP socket lives here
        self.mail = self.root / "mail"
        self.log = self.root / "dovecot.log"
        self.config = self.root / "dovecot.conf"
        for d in (self.run_dir, self.root / "state"):
            d.mkdir(mode=0o755)
        self.mail.mkdir(mode=0o700)
        os.chown(self.mail, _NOBODY, _NOBODY)
        self.config.write_text(self._conf())
        self._started = False

    @property
    def lmtp_socket(self) -> Path:
        return self.run_dir / "lmtp"

    def _conf(self) -> str:
        return f"""\
# written by bench/dovecot.py: a private LMTP-only instance
base_dir = {self.run_dir}
state_dir = {self.root / "state"}
log_path = {self.log}
info_log_path = {self.log}
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 100
mail_location = maildir:{self.mail}/%d/%n
mail_fsync = optimized
auth_mechanisms = plain
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={_NOBODY} gid={_NOBODY} home={self.mail}/%d/%n allow_all_users=yes
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  process_min_avail = 0
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""

    def start(self, timeout: float = 20) -> DovecotLMTP:
        # The daemon keeps the descriptors it was given: a file, not a pipe we would wait on.
        with (self.root / "start.out").open("w+") as out:
            done = subprocess.run([self.exe, "-c", str(self.config)], stdout=out, stderr=out,
                                  stdin=subprocess.DEVNULL, timeout=timeout)  # fmt: skip
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"dovecot did not start: {out.read().strip()}")
        self._started = True
        deadline = time.monotonic() + timeout
        while not self.lmtp_socket.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot never opened its LMTP socket:\n{self.log_text()}")
            time.sleep(0.05)
        return self

    def master_pid(self) -> int | None:
        try:
            return int((self.run_dir / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def processes(self) -> list[int]:
        master = self.master_pid()
        if master is None:
            return []
        return [master, *descendants(master)]

    def count(self) -> int:
        """Messages delivered so far (files in every maildir's new/ and cur/)."""
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for domain in os.scandir(self.mail):
                for user in os.scandir(domain.path):
                    for sub in ("new", "cur"):
                        with contextlib.suppress(FileNotFoundError):
                            total += sum(1 for _ in os.scandir(os.path.join(user.path, sub)))
        return total

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        if not self._started:
            return
        pids = self.processes()
        if pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[0], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        for p in pids:
            if _alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        self._started = False

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotLMTP:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] == "Z":
            return False
    return True
