"""CPU per FastAGI header: line by line against one read (run by hand; in-process, no sockets).

    .venv/bin/python bench/agi_header.py [--headers 20000] [--rounds 2]

Feeds the bench's 23-line Asterisk header to a fresh reader, reads and parses it: with
``readline`` and :class:`agi.protocol.HeaderReader` (how the server read it before), and with
:meth:`agi.stream.HeaderStreamReader.read_header` and :func:`agi.protocol.parse_header_block`
(how it reads it now); then the parse alone. Rounds alternate, so drift in load hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>
sys.path.insert(0, str(ROOT / "bench"))

from agi_bench import HEADER  # noqa: E402

from agi.protocol import MAX_HEADER_BYTES, HeaderReader, parse_header_block  # noqa: E402
from agi.stream import HeaderStreamReader  # noqa: E402

DATA = HEADER.format(port=4573, n="+79991234567").encode()


async def line_by_line(count: int) -> None:
    for _ in range(count):
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES)
        reader.feed_data(DATA)
        lines = HeaderReader()
        while not lines.done:
            lines.feed(await reader.readline())
        lines.header()


async def one_read(count: int) -> None:
    for _ in range(count):
        reader = HeaderStreamReader(limit=MAX_HEADER_BYTES)
        reader.feed_data(DATA)
        parse_header_block(await reader.read_header(MAX_HEADER_BYTES))


async def parse_only(count: int) -> None:
    for _ in range(count):
        parse_header_block(DATA)


async def main(count: int, rounds: int) -> None:
    for _ in range(rounds):
        for name, run in (("line by line", line_by_line), ("one read", one_read), ("parse alone", parse_only)):
            started = time.process_time()
            await run(count)
            print(f"{name}: {(time.process_time() - started) / count * 1e6:.1f} µs CPU per header", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--headers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.headers, args.rounds))
