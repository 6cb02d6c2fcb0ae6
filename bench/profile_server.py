"""Profile the API process under CDS evaluate load with py-spy (not part of ``make bench``):

    .venv/bin/python -m bench.profile_server [--engine sqlite] [--rate 40] [--seconds 20]

Prints the functions with the most samples (inclusive and own), clinicos frames as file:line,
and keeps py-spy's collapsed stacks in the work directory for a flame graph."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from bench.cases import example_request_bodies
from bench.databases import add_clinician, fresh_database
from bench.loadgen import build_request, open_loop
from bench.options import REPOSITORY, Options
from bench.server import HOST, Server, check_bodies

PY_SPY = REPOSITORY / ".venv" / "bin" / "py-spy"
PATH = "/api/v1/cds/evaluate"


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` without the line number."""
    head, sep, _ = frame.rpartition(":")
    return f"{head})" if sep else frame


def summarize(collapsed: Path, top: int = 25) -> str:
    """Inclusive and self sample shares per frame from py-spy's collapsed (``--format raw``)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for function in {_function(frame) for frame in frames}:
            inclusive[function] += count
        own[frames[-1]] += count
    out = [f"{total} samples", "", "inclusive, per function (clinicos frames):"]
    ours = [(f, n) for f, n in inclusive.most_common() if "clinicos/" in f]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours[:top]]
    out += ["", "own time, per line (any frame):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_server")
    parser.add_argument("--engine", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    options = Options(work_dir=Path(tempfile.mkdtemp(prefix="clinicos-profile-")))
    with fresh_database(args.engine, options, "profile") as db:
        email, password = add_clinician(db)
        with Server(db) as server:
            token = server.login(email, password)
            check_bodies(server, token, PATH, example_request_bodies())
            payloads = [
                build_request("POST", HOST, server.port, PATH, body=b, token=token)
                for b in example_request_bodies()
            ]
            collapsed = options.work_dir / "profile.txt"
            spy = subprocess.Popen(  # noqa: S603 - fixed arguments
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(server.ps.pid),
                    "--format",
                    "raw",
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    "200",
                    "--output",
                    str(collapsed),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result = asyncio.run(
                open_loop(HOST, server.port, payloads, rate=args.rate, duration=args.seconds)
            )
            spy.wait(timeout=60)
    print(result.summary())
    print(summarize(collapsed))
    print(f"\ncollapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()
