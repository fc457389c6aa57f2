"""A private Postfix instance playing another MSSanté operator on this machine.

Nothing of the system's Postfix is used or touched: the instance has its own configuration
directory, queue and data directories and maildir under one temporary directory, listens on
loopback only on free ports, and logs to its own file (``maillog_file``, Postfix ≥ 3.4). It
is driven with ``postfix -c DIR start|stop`` and ``postconf -c DIR``. The Debian package is
all it needs (``postfix``, installed with ``postfix/main_mailer_type`` = "No configuration" so
that no system instance is set up or started).

What it does, like a peer operator would:

- its ``smtpd`` (:attr:`PostfixPeer.port`) requires STARTTLS and a client certificate that
  chains to our development PKI (``smtpd_tls_req_ccert``), presents the peer's operator
  certificate, and delivers mail for the peer's domain to one maildir (the ``virtual``
  agent, :meth:`PostfixPeer.delivered`), or to whatever ``virtual_transport`` says (the
  benchmark hands it to Dovecot over LMTP);
- its ``smtp`` client sends mail for our domains to our inbound door (:class:`NextHop`), with
  ``secure`` TLS (our certificate verified against the development CA, name checked) and its
  operator certificate presented as client certificate;
- a second ``smtpd`` without TLS (:attr:`PostfixPeer.inject_port`, loopback, relaying for
  ``mynetworks``) is where the tests hand it messages, as the peer's own users would.

Postfix runs its daemons as the ``postfix`` user, so the instance lives in a directory of
its own under ``/tmp`` (pytest's temporary directories are private to root), with short
paths for the UNIX sockets of its queue directory.
"""

from __future__ import annotations

import contextlib
import email
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "NextHop",
    "PostfixError",
    "PostfixPeer",
    "descendants",
    "free_port",
    "postfix_missing",
    "process_tree_cpu",
]

_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
_NOBODY = 65534  # the virtual delivery agent writes the maildir as this user


class PostfixError(RuntimeError):
    """The instance could not be started, configured or stopped (the message says why)."""


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN:
        if Path(d, name).exists():
            return str(Path(d, name))
    return None


def postfix_missing() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    for name in ("postfix", "postconf"):
        if _tool(name) is None:
            return f"Postfix is not installed ({name} not found: apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its daemons run as the postfix user)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "the postfix user or postdrop group is missing (reinstall the postfix package)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class NextHop:
    """Where the peer sends mail for ``domains`` (our inbound door) and how it checks us."""

    domains: tuple[str, ...]
    port: int
    tls_name: str  # the name our server certificate must carry (``secure match=``)
    host: str = "127.0.0.1"


# master.cf (postfix 3.x format). No service is chrooted: nothing to copy into the queue
# directory, and the paths of the configuration stay valid for every daemon.
_MASTER = """\
# service         type  private unpriv  chroot  wakeup  maxproc command + args
{peer}            inet  n       -       n       -       -       smtpd
{inject}          inet  n       -       n       -       -       smtpd
  -o smtpd_tls_security_level=none
  -o smtpd_tls_ask_ccert=no
  -o smtpd_tls_req_ccert=no
pickup            unix  n       -       n       60      1       pickup
cleanup           unix  n       -       n       -       0       cleanup
qmgr              unix  n       -       n       300     1       qmgr
tlsmgr            unix  -       -       n       1000?   1       tlsmgr
rewrite           unix  -       -       n       -       -       trivial-rewrite
bounce            unix  -       -       n       -       0       bounce
defer             unix  -       -       n       -       0       bounce
trace             unix  -       -       n       -       0       bounce
verify            unix  -       -       n       -       1       verify
flush             unix  n       -       n       1000?   0       flush
proxymap          unix  -       -       n       -       -       proxymap
proxywrite        unix  -       -       n       -       1       proxymap
smtp              unix  -       -       n       -       -       smtp
relay             unix  -       -       n       -       -       smtp
showq             unix  n       -       n       -       -       showq
error             unix  -       -       n       -       -       error
retry             unix  -       -       n       -       -       error
discard           unix  -       -       n       -       -       discard
local             unix  -       n       n       -       -       local
virtual           unix  -       n       n       -       -       virtual
lmtp              unix  -       -       n       -       -       lmtp
anvil             unix  -       -       n       -       1       anvil
scache            unix  -       -       n       -       1       scache
postlog           unix-dgram n  -       n       -       1       postlogd
"""


class PostfixPeer:
    """One private Postfix instance (see the module docstring). Use as a context manager,
    or call :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        *,
        domain: str,
        hostname: str,
        chain: Path | str,
        key: Path | str,
        ca_file: Path | str,
        next_hop: NextHop | None = None,
        name: str = "peer",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        missing = postfix_missing()
        if missing:
            raise PostfixError(missing)
        self.domain = domain.lower()
        self.hostname = hostname.lower()
        self.next_hop = next_hop
        self.root = Path(tempfile.mkdtemp(prefix=f"pfx-{name}-", dir="/tmp"))
        self.root.chmod(0o755)  # the daemons run as the postfix user
        self.etc = self.root / "etc"
        self.spool = self.root / "spool"  # queue_directory
        self.lib = self.root / "lib"  # data_directory
        self.mail = self.root / "mail"  # virtual_mailbox_base
        self.maillog = self.root / "maillog"
        self.port = free_port()  # the peer's MTA (mutual TLS required)
        self.inject_port = free_port()  # where its "users" hand it mail (no TLS, loopback)
        self._postfix = _tool("postfix") or "postfix"
        self._postconf = _tool("postconf") or "postconf"
        self._started = False

        pw = pwd.getpwnam("postfix")
        for d in (self.etc, self.spool):
            d.mkdir(mode=0o755)
        self.lib.mkdir(mode=0o700)
        os.chown(self.lib, pw.pw_uid, pw.pw_gid)
        self.mail.mkdir(mode=0o700)
        os.chown(self.mail, _NOBODY, _NOBODY)
        shutil.copyfile(chain, self.etc / "peer.chain.pem")
        shutil.copyfile(ca_file, self.etc / "ca.pem")
        key_copy = self.etc / "peer.key"
        key_copy.touch(mode=0o600)
        key_copy.write_bytes(Path(key).read_bytes())

        self._write_maps()
        (self.etc / "master.cf").write_text(
            _MASTER.format(
                peer=f"127.0.0.1:{self.port}".ljust(17),
                inject=f"127.0.0.1:{self.inject_port}".ljust(17),
            )
        )
        main = self._main_cf()
        main.update(settings or {})
        (self.etc / "main.cf").write_text(
            "# written by tests/peers/postfix.py: a private peer operator instance\n"
            + "".join(f"{k} = {v}\n" for k, v in main.items())
        )

    # --- configuration --------------------------------------------------------------------

    def _main_cf(self) -> dict[str, str]:
        etc = self.etc
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.spool),
            "data_directory": str(self.lib),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": f"postfix-{self.root.name}",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "myhostname": self.hostname,
            "mydomain": self.domain,
            "myorigin": "$mydomain",
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:5.1.1 no local delivery on this peer",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_peername_lookup": "no",
            # The peer's own domain: every address goes to one maildir ("inbox/").
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail),
            "virtual_mailbox_maps": "static:inbox/",
            "virtual_uid_maps": f"static:{_NOBODY}",
            "virtual_gid_maps": f"static:{_NOBODY}",
            "virtual_minimum_uid": "100",
            # Our domains: to our inbound door, over verified TLS with a client certificate.
            "transport_maps": f"texthash:{etc / 'transport'}",
            "smtp_tls_security_level": "secure",
            "smtp_tls_policy_maps": f"texthash:{etc / 'tls_policy'}",
            "smtp_tls_CAfile": str(etc / "ca.pem"),
            "smtp_tls_chain_files": f"{etc / 'peer.key'}, {etc / 'peer.chain.pem'}",
            "smtp_tls_loglevel": "1",
            # As a server: mutual TLS, the client certificate must chain to the same CA.
            "smtpd_tls_chain_files": f"{etc / 'peer.key'}, {etc / 'peer.chain.pem'}",
            "smtpd_tls_CAfile": str(etc / "ca.pem"),
            "smtpd_tls_security_level": "encrypt",
            "smtpd_tls_ask_ccert": "yes",
            "smtpd_tls_req_ccert": "yes",
            "smtpd_tls_received_header": "yes",
            "smtpd_tls_loglevel": "1",
            # Tests want retries within seconds, not minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "delay_warning_time": "0h",
        }

    def _write_maps(self) -> None:
        hop = self.next_hop
        transport, policy = "", ""
        if hop is not None:
            dest = f"[{hop.host}]:{hop.port}"
            transport = "".join(f"{d.lower()} smtp:{dest}\n" for d in hop.domains)
            policy = f"{dest} secure match={hop.tls_name}\n"
        (self.etc / "transport").write_text(transport)
        (self.etc / "tls_policy").write_text(policy)

    def set(self, **settings: str) -> None:
        """``postconf -e`` for main.cf parameters; takes effect at the next :meth:`restart`."""
        args = [f"{k}={v}" for k, v in settings.items()]
        self._run(self._postconf, "-c", str(self.etc), "-e", *args)

    def unset(self, *names: str) -> None:
        self._run(self._postconf, "-c", str(self.etc), "-X", *names)

    # --- lifecycle ------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> str:
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise PostfixError(f"{' '.join(args)} timed out after {timeout:.0f} s") from None
        if done.returncode != 0:
            raise PostfixError(
                f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}\n"
                + self.log()[-3000:]
            )
        return done.stdout

    def start(self, timeout: float = 30) -> PostfixPeer:
        self._run(self._postfix, "-c", str(self.etc), "start", timeout=timeout)
        self._started = True
        deadline = time.monotonic() + timeout
        for port in (self.port, self.inject_port):
            while True:
                with socket.socket() as s:
                    s.settimeout(1)
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostfixError(f"postfix never listened on {port}:\n{self.log()[-3000:]}")
                time.sleep(0.05)
        return self

    def master_pid(self) -> int | None:
        try:
            return int((self.spool / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie is gone for our purposes.
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat[stat.rindex(")") + 2] == "Z":
                return False
        return True

    def processes(self) -> list[int]:
        """The master and every process under it (live ones)."""
        master = self.master_pid()
        if master is None or not self._alive(master):
            return []
        return [master, *descendants(master)]

    def stop(self, timeout: float = 20) -> None:
        """``postfix stop``; after ``timeout`` seconds, ``postfix abort`` then SIGKILL for
        the instance's own processes (by id)."""
        if not self._started:
            return
        pids = self.processes()
        with contextlib.suppress(PostfixError):
            self._run(self._postfix, "-c", str(self.etc), "stop", timeout=timeout)
        deadline = time.monotonic() + timeout
        while any(self._alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if any(self._alive(p) for p in pids):
            with contextlib.suppress(PostfixError):
                self._run(self._postfix, "-c", str(self.etc), "abort", timeout=10)
            time.sleep(0.5)
            for p in pids:
                if self._alive(p):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
        self._started = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostfixPeer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- using it -------------------------------------------------------------------------

    def inject(
        self,
        mail_from: str,
        rcpts: Sequence[str],
        data: bytes,
        *,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> None:
        """Hand a message to the peer as one of its users would (plain SMTP on loopback)."""
        with smtplib.SMTP("127.0.0.1", self.inject_port, timeout=30) as s:
            s.ehlo("client.peer.test")
            refused = s.sendmail(mail_from, list(rcpts), data, list(mail_options),
                                 list(rcpt_options))  # fmt: skip
            if refused:
                raise PostfixError(f"postfix refused {refused}")

    def delivered(self) -> list[bytes]:
        """Every message in the peer's maildir, oldest first."""
        files: list[Path] = []
        for sub in ("new", "cur"):
            d = self.mail / "inbox" / sub
            if d.is_dir():
                files.extend(p for p in d.iterdir() if p.is_file())
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.read_bytes() for p in files]

    def wait_delivered(
        self, count: int, timeout: float = 30, *, matching: bytes | None = None
    ) -> list[bytes]:
        """Wait until the maildir holds ``count`` messages (containing ``matching``)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.delivered() if matching is None or matching in m]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def message_ids(self) -> list[str]:
        ids = []
        for raw in self.delivered():
            value = email.message_from_bytes(raw).get("Message-ID")
            if value:
                ids.append(value.strip())
        return ids

    def log(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 30) -> str | None:
        """The first log line matching the regular expression, waiting for it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def queued(self) -> int:
        """Messages in the instance's queue (not yet delivered or bounced)."""
        total = 0
        for q in _QUEUES:
            for _dirpath, _dirs, files in os.walk(self.spool / q):
                total += len(files)
        return total


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def process_tree_cpu(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes and of their reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # proc(5): utime, stime, cutime, cstime are fields 14-17 (1-based, pid first).
        total += sum(int(f) for f in fields[11:15])
    return total / tick
