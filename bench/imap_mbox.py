"""A synthetic mbox for imaptest's stress and benchmark modes (its ``mbox=`` parameter).

imaptest appends messages from an mbox file and tracks them by Message-ID, so every message
needs a unique one. Dovecot's own sample (``dovecot-crlf``, mailing-list mail) is downloaded
from dovecot.org; this machine has no network access, so this writes a comparable file:
CRLF line ends, plain and multipart messages of 1-40 KB, French text, unique Message-IDs.

    .venv/bin/python bench/imap_mbox.py /tmp/imap-bench.mbox --messages 2000
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = [
    "patient",
    "consultation",
    "compte",
    "rendu",
    "cardiologie",
    "examen",
    "résultat",
    "biologie",
    "ordonnance",
    "hospitalisation",
    "sortie",
    "suivi",
    "traitement",
    "médecin",
    "infirmier",
    "laboratoire",
    "radiologie",
    "échographie",
    "bilan",
    "sanguin",
    "tension",
    "glycémie",
    "allergie",
    "antécédents",
    "courrier",
    "confrère",
]


def _text(rng: random.Random, size: int) -> str:
    lines, line, total = [], [], 0
    while total < size:
        word = rng.choice(WORDS)
        line.append(word)
        total += len(word) + 1
        if len(line) >= 11:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\r\n".join(lines)


def message(rng: random.Random, n: int) -> str:
    sender = f"dr.{rng.choice(['martin', 'bernard', 'petit', 'durand'])}{n % 97}@demo.mssante.fr"
    headers = [
        f"From: Dr {sender.split('@')[0]} <{sender}>",
        f"To: camille.martin@demo.mssante.fr, secretariat{n % 13}@demo.mssante.fr",
        f"Cc: archive{n % 7}@demo.mssante.fr" if n % 3 == 0 else "",
        f"Subject: Compte rendu {n} - {rng.choice(WORDS)} {rng.choice(WORDS)}",
        f"Date: {['Mon', 'Tue', 'Wed', 'Thu', 'Fri'][n % 5]}, {1 + n % 28:02d} Oct 2026 "
        f"{n % 24:02d}:{n % 60:02d}:{(7 * n) % 60:02d} +0200",
        f"Message-ID: <bench-{n}-{rng.getrandbits(48):012x}@demo.mssante.fr>",
        "MIME-Version: 1.0",
    ]
    if n % 4 == 0:
        boundary = f"=_b{n}"
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{_text(rng, rng.randint(500, 4000))}\r\n"
            f'--{boundary}\r\nContent-Type: application/pdf; name="cr{n}.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="cr{n}.pdf"\r\n\r\n'
            + "\r\n".join("JVBERi0xLjQKJcfs" * 4 for _ in range(rng.randint(10, 400)))
            + f"\r\n--{boundary}--\r\n"
        )
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    else:
        body = _text(rng, rng.randint(300, 6000)) + "\r\n"
        headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    head = "\r\n".join(h for h in headers if h)
    return f"{head}\r\n\r\n{body}"


def write_mbox(path: Path, count: int, seed: int = 5) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        for n in range(1, count + 1):
            msg = message(rng, n)
            # mboxrd quoting of body lines starting with "From "
            msg = msg.replace("\r\nFrom ", "\r\n>From ")
            out.write(f"From bench@demo.mssante.fr  Fri Oct  2 10:00:{n % 60:02d} 2026\r\n")
            out.write(msg)
            out.write("\r\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("path", type=Path)
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()
    write_mbox(args.path, args.messages)
    print(f"{args.path}: {args.messages} messages, {args.path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
