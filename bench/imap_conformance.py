"""Run Dovecot's imaptest scripted tests one by one against an IMAP server and summarise them.

imaptest is built OUTSIDE this repository (see docs/imap-conformance.md): this script only
drives the binary and reads its output. Each test script runs alone (``test=DIR/NAME``) so
that every script gets its own verdict: passed, failed (with imaptest's explanation) or
skipped because the server does not advertise a capability listed in the script's
``capabilities:`` header.

    .venv/bin/python bench/imap_conformance.py --imaptest /work/ext/imaptest-23/src/imaptest \\
        --tests /work/ext/imaptest-23/src/tests --port 41993 --ssl \\
        --user camille.martin@demo.mssante.fr --password PASSWORD [--json OUT]
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path


def server_capabilities(host: str, port: int, use_ssl: bool, user: str, password: str) -> set[str]:
    if use_ssl:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
    else:
        client = imaplib.IMAP4(host, port)
    client.login(user, password)
    _, data = client.capability()
    client.logout()
    return {c.upper() for c in data[0].decode().split()}


def required(script: Path) -> list[str]:
    for line in script.read_text(errors="replace").splitlines():
        if not line.strip():
            break  # the header ends at the first empty line
        key, _, value = line.partition(":")
        if key.strip().lower() == "capabilities":
            return value.split()
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--imaptest", required=True)
    ap.add_argument("--tests", required=True, type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ssl", action="store_true", help="implicit TLS (imaptest ssl=any-cert)")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--only", nargs="*", help="run only these scripts")
    ap.add_argument("--json", type=Path, help="write the per-script results here")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    caps = server_capabilities(args.host, args.port, args.ssl, args.user, args.password)
    env = dict(os.environ)
    env.setdefault("LD_LIBRARY_PATH", "/usr/lib/dovecot")
    scripts = sorted(p for p in args.tests.iterdir() if p.is_file() and p.suffix != ".mbox")
    if args.only:
        scripts = [p for p in scripts if p.name in set(args.only)]
    results = []
    for script in scripts:
        need = required(script)
        missing = [c for c in need if c.upper() not in caps]
        if missing:
            results.append({"script": script.name, "status": "skipped", "missing": missing})
            print(f"{script.name:32} skipped (not advertised: {' '.join(missing)})")
            continue
        cmd = [args.imaptest, f"host={args.host}", f"port={args.port}", f"user={args.user}",
               f"pass={args.password}", f"test={script}"]  # fmt: skip
        if args.ssl:
            cmd.append("ssl=any-cert")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                  env=env)  # fmt: skip
            out = done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            out = f"TIMEOUT after {args.timeout}s\n{exc.stdout or ''}{exc.stderr or ''}"
        summary = re.search(r"(\d+) test groups: (\d+) failed", out)
        failed = summary is None or summary.group(2) != "0"
        details = [b for b in out.split("\n\n") if "*** Test" in b or b.startswith("Error:")]
        errors = [ln for ln in out.splitlines() if ln.startswith("Error:")]
        status = "failed" if failed else "passed"
        results.append({"script": script.name, "status": status, "requires": need,
                        "failures": details if failed else [], "errors": errors})  # fmt: skip
        print(
            f"{script.name:32} {status}" + (f" ({len(errors)} imaptest errors)" if errors else "")
        )
    counts = {
        s: sum(1 for r in results if r["status"] == s) for s in ("passed", "failed", "skipped")
    }
    print(f"\n{len(results)} scripts: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped (capability not advertised)")  # fmt: skip
    for r in results:
        if r["status"] == "failed":
            print(f"\n=== {r['script']} (requires: {' '.join(r['requires']) or 'IMAP4rev1'})")
            print("\n".join(r["failures"])[:4000])
    if args.json:
        args.json.write_text(
            json.dumps({"capabilities": sorted(caps), "results": results}, indent=1)
        )
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
