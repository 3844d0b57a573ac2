"""CPU per call of the hot paths changed one by one, each beside its reference (run by hand; the
figures go to docs/benchmarks.md, "One timer per round trip, headers in one pass, fewer look-ups
per decision").

    .venv/bin/python bench/hot_paths.py [--repeat 3] [--only NAME ...] [--scale 1.0]

Cases (``--only`` takes a name, and may be given more than once):

  store       client CPU of a 3-command pipelined round trip (HGETALL, GET, INCR) against an
              embedded valkey-server, on the event loop ``callscreen serve`` uses: the store's own
              path (:func:`callscreen.store.run_pipeline_async`: one timer per round trip, kept
              connections) against the same commands through a plain redis-py asyncio pipeline on
              a client built the same way (:func:`callscreen.store.connect`); 20,000 round trips
  header      the bench's 23-line FastAGI header (``bench/agi_bench.py``): the one-pass parse
              (:func:`agi.protocol.parse_header_block`) against the line-by-line reference
              (:func:`agi.protocol.parse_block_lines` of the decoded block); 20,000 parses
  decide      ``decide()`` of an allowed Russian mobile number without a contact time zone (14
              candidate zones: the calling-hours windows per local date) beside a Moscow landline
              (one zone); 5,000 decisions
  nanp        ``normalize`` of ``+1 212`` numbers (the exchange table) against ``parse_number``
              (phonenumbers' full parse); 3,000 numbers, uncached
  us-national the same numbers as ten digits in a US campaign; 3,000 numbers
  ru-mobile   ``normalize`` of Russian mobiles sharing one deciding prefix (its kept answer)
              against ``parse_number``; 5,000 numbers
  bg          the same for Bulgarian mobiles sharing one deciding prefix; 5,000 numbers
  new-prefix  Russian mobiles spread one per six-digit prefix, as a live stream or a lead list
              spreads them, against ``parse_number``; 5,000 numbers, fresh ones every run (while
              every Russian mobile was kept under six digits, each was a prefix not met before:
              a full parse; most now share a prefix of two, see ``prefixes.PrefixDecider``)
  ru-national Russian mobiles dialled ``8 999 123-45-67`` in a Russian campaign, sharing one raw
              deciding prefix (:mod:`callscreen.national`), against ``parse_number``; 5,000
  uk-national the same for British mobiles dialled ``07911 12…``; 5,000 numbers
  bg-national the same for Bulgarian mobiles dialled ``0888 …``; 5,000 numbers
  new-national the same Russian mobiles dialled ``8 9…`` in a Russian campaign; 5,000 numbers,
              fresh ones every run
  new-calling-code the same written ``7 9…`` (the calling code without ``+``), as CRM exports
              often write them
  peer        the FastAGI peer identity of a connection (:func:`agi.slots.peer_of`, cached per
              address) against parsing the address each time; 20,000 calls

Every figure is this process's CPU (``time.process_time``, user and system) divided by the
operations of a run, the loop included; the store's server runs in its own process and is not
counted. Each variant runs once untimed (connections, metadata, caches), then ``--repeat`` times,
the variants of a case alternating (ABBA) so drift in the shared machine's load hits both. Before
timing, each case checks that its two variants give the same answer. The table shows the median
over the runs, the spread (lowest–highest run) and the first variant's median over the second's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>
sys.path.insert(0, str(ROOT / "bench"))

from agi_bench import HEADER  # noqa: E402

from agi.protocol import parse_block_lines, parse_header_block  # noqa: E402
from agi.slots import peer_of  # noqa: E402
from callscreen.cli.serve import event_loop_factory  # noqa: E402
from callscreen.decision import ScreeningRequest, decide  # noqa: E402
from callscreen.embedded import EmbeddedServer  # noqa: E402
from callscreen.models import Campaign, Consent, Facts, LegalBasis, Proof  # noqa: E402
from callscreen.numbers import InvalidNumber, normalize, parse_number  # noqa: E402
from callscreen.policy import PolicyBook  # noqa: E402
from callscreen.store import connect, run_pipeline_async  # noqa: E402

Run = Callable[[], float]  # one timed run of a variant: CPU seconds per operation


@dataclass(frozen=True)
class Case:
    """One per-change figure: what one operation is, and its variants (the changed path first)."""

    name: str
    unit: str
    variants: tuple[tuple[str, Run], ...]


def cpu_per_item(body: Callable[..., object], items: Sequence[tuple[object, ...]]) -> float:
    """CPU seconds per ``body(*item)`` over ``items``, the loop included."""
    started = time.process_time()
    for item in items:
        body(*item)
    return (time.process_time() - started) / len(items)


def same(label: str, first: object, second: object) -> None:
    """The two variants of a case must give the same answer, else their figures compare nothing."""
    if first != second:
        raise SystemExit(f"{label}: the variants disagree ({first!r} != {second!r})")


# --- the store round trip -------------------------------------------------------------------

STORE_COMMANDS = (("HGETALL", "hot:hash"), ("GET", "hot:string"), ("INCR", "hot:counter"))


async def plain_pipeline(client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``commands`` in one round trip through redis-py's own asyncio pipeline (the reference)."""
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)


async def cpu_per_round_trip(send: Callable[..., Awaitable[list[Any]]], client: Any, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        await send(client, STORE_COMMANDS)
    return (time.process_time() - started) / count


class StoreBench:
    """An embedded valkey-server, an event loop of ``callscreen serve``'s kind and two clients."""

    def __init__(self) -> None:
        self.server = EmbeddedServer(persist=False).start()
        self.runner = asyncio.Runner(loop_factory=event_loop_factory("auto"))
        self.ours = connect(self.server.url, asyncio=True)
        self.plain = connect(self.server.url, asyncio=True)
        try:
            self.runner.run(self._seed())
        except BaseException:
            self.close()
            raise

    async def _seed(self) -> None:
        await self.plain.hset("hot:hash", mapping={f"field{i}": "x" * 40 for i in range(5)})
        await self.plain.set("hot:string", "y" * 64)
        same("store", await run_pipeline_async(self.ours, STORE_COMMANDS[:2]),
             await plain_pipeline(self.plain, STORE_COMMANDS[:2]))

    def case(self, count: int) -> Case:
        loop = type(self.runner.get_loop()).__module__.split(".")[0]
        return Case("store", f"round trip, {loop}", (
            ("callscreen.store (one timer)",
             lambda: self.runner.run(cpu_per_round_trip(run_pipeline_async, self.ours, count))),
            ("redis-py asyncio pipeline",
             lambda: self.runner.run(cpu_per_round_trip(plain_pipeline, self.plain, count))),
        ))

    def close(self) -> None:
        for client in (self.ours, self.plain):
            self.runner.run(client.aclose())
        self.runner.close()
        self.server.stop()


# --- the FastAGI header and the peer --------------------------------------------------------

def header_case(count: int) -> Case:
    block = HEADER.format(port=4573, n="+79991234567").encode()
    same("header", parse_header_block(block), parse_block_lines(block.decode("utf-8", errors="replace")))
    items = [(block,)] * count
    return Case("header", "header", (
        ("one pass (parse_header_block)", lambda: cpu_per_item(parse_header_block, items)),
        ("line by line (parse_block_lines)",
         lambda: cpu_per_item(lambda b: parse_block_lines(b.decode("utf-8", errors="replace")), items)),
    ))


def peer_case(count: int) -> Case:
    address = "127.0.0.1"
    same("peer", peer_of(address), peer_of.__wrapped__(address))
    items = [(address,)] * count
    return Case("peer", "connection", (
        ("peer_of, cached per address", lambda: cpu_per_item(peer_of, items)),
        ("the address parsed each time", lambda: cpu_per_item(peer_of.__wrapped__, items)),
    ))


# --- the decision ---------------------------------------------------------------------------

AT = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)  # a Friday: 08:30 in Kaliningrad, 18:30 in Anadyr


def decide_case(count: int) -> Case:
    pack = PolicyBook.load().get("RU")
    campaign = Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow")
    consent = Consent("c1", "", ("promotions",), LegalBasis.CONSENT, "paper", AT - timedelta(days=9),
                      proof=Proof(form_version="v1"))
    facts = Facts(consents=(consent,))

    def request(raw: str, zones: int) -> ScreeningRequest:
        number = normalize(raw, "RU")
        asked = ScreeningRequest(raw, number, campaign, AT)
        decision = decide(asked, facts, pack)
        if len(number.timezones) != zones or not decision.allowed:
            raise SystemExit(f"decide: {raw} has {len(number.timezones)} zones, decided {decision.result} "
                             f"{decision.reason}; expected ALLOW in {zones}")
        return asked

    many, one = request("+79991234567", 14), request("+74951234567", 1)
    return Case("decide", "decision", (
        ("Russian mobile, 14 zones", lambda: cpu_per_item(decide, [(many, facts, pack)] * count)),
        ("Moscow landline, 1 zone", lambda: cpu_per_item(decide, [(one, facts, pack)] * count)),
    ))


# --- normalizing numbers --------------------------------------------------------------------

def valid(candidates: Iterator[str], region: str | None, count: int) -> list[str]:
    """The first ``count`` of ``candidates`` that are valid numbers (an invalid one costs an
    exception in both variants and would blur what is measured)."""
    found: list[str] = []
    for raw in candidates:
        try:
            parse_number(raw, region)
        except InvalidNumber:
            continue
        found.append(raw)
        if len(found) == count:
            return found
    raise SystemExit(f"fewer than {count} valid numbers to measure with: lower --scale or --repeat")


def numbers_case(name: str, numbers: Sequence[str], region: str | None) -> Case:
    """``normalize`` (its cache bypassed: every call is a first) against ``parse_number``."""
    for raw in numbers[:50]:
        same(name, normalize.__wrapped__(raw, region), parse_number(raw, region))
    items = [(raw, region) for raw in numbers]
    return Case(name, "number", (
        ("normalize", lambda: cpu_per_item(normalize.__wrapped__, items)),
        ("parse_number (full parse)", lambda: cpu_per_item(parse_number, items)),
    ))


def nanp_numbers(count: int) -> list[str]:
    rng = random.Random(1)
    return valid((f"212{rng.randint(2000000, 9999999)}" for _ in itertools.count()), "US", count)


def new_prefix_case(count: int, runs: int, name: str = "new-prefix", spelling: str = "+7{}4567",
                    region: str | None = None) -> Case:
    """Every run of either variant gets the next batch of Russian mobiles, each of a six-digit
    prefix no earlier number had; both variants get the same batches."""
    prefixes = [f"9{n:05d}" for n in range(100_000)]
    random.Random(2).shuffle(prefixes)
    numbers = valid((spelling.format(prefix) for prefix in prefixes), region, count * runs + 50)
    for raw in numbers[count * runs:]:  # checked on numbers of prefixes no run uses
        same(name, normalize.__wrapped__(raw, region), parse_number(raw, region))
    batches = [[(raw, region) for raw in numbers[i:i + count]] for i in range(0, count * runs, count)]
    ours, theirs = iter(batches), iter(batches)
    return Case(name, "number", (
        ("normalize", lambda: cpu_per_item(normalize.__wrapped__, next(ours))),
        ("parse_number (full parse)", lambda: cpu_per_item(parse_number, next(theirs))),
    ))


# --- running and reporting ------------------------------------------------------------------

CASES = ("store", "header", "decide", "nanp", "us-national", "ru-mobile", "bg", "new-prefix", "ru-national",
         "uk-national", "bg-national", "new-national", "new-calling-code", "peer")


def measure(case: Case, repeat: int) -> dict[str, list[float]]:
    """µs per operation of every run of each variant: one untimed run each, then ``repeat``
    rounds, the order of the variants reversed every other round."""
    for _label, run in case.variants:
        run()
    figures: dict[str, list[float]] = {label: [] for label, _run in case.variants}
    for round_ in range(repeat):
        order = case.variants if round_ % 2 == 0 else case.variants[::-1]
        for label, run in order:
            figures[label].append(run() * 1e6)
            print(f"  {case.name} run {round_ + 1}: {label}: {figures[label][-1]:.2f} µs", flush=True)
    return figures


def table(results: list[tuple[Case, dict[str, list[float]]]]) -> str:
    rows = [("case", "variant", "per", "median µs", "spread µs", "first : second")]
    for case, figures in results:
        medians = [statistics.median(values) for values in figures.values()]
        for index, (label, values) in enumerate(figures.items()):
            ratio = f"{medians[0] / medians[1]:.2f}" if index == 0 and len(medians) == 2 and medians[1] else ""
            rows.append((case.name if index == 0 else "", label, case.unit if index == 0 else "",
                         f"{medians[index]:.2f}", f"{min(values):.2f}–{max(values):.2f}", ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def build(name: str, scale: float, repeat: int, store: Callable[[], StoreBench]) -> Case:
    def sized(count: int) -> int:
        return max(1, round(count * scale))

    if name == "store":
        return store().case(sized(20_000))
    if name == "header":
        return header_case(sized(20_000))
    if name == "peer":
        return peer_case(sized(20_000))
    if name == "decide":
        return decide_case(sized(5_000))
    if name == "nanp":
        return numbers_case(name, ["+1" + raw for raw in nanp_numbers(sized(3_000))], None)
    if name == "us-national":
        return numbers_case(name, nanp_numbers(sized(3_000)), "US")
    if name == "ru-mobile":
        numbers = [f"+7999123{n:04d}" for n in range(sized(5_000))]
        return numbers_case(name, numbers, None)
    if name == "bg":
        numbers = [f"+359881{n:06d}" for n in range(sized(5_000))]
        return numbers_case(name, numbers, None)
    if name == "new-prefix":
        return new_prefix_case(sized(5_000), repeat + 1)
    if name == "ru-national":
        numbers = [f"8 999 123-{n // 100 % 100:02d}-{n % 100:02d}" for n in range(sized(5_000))]
        return numbers_case(name, numbers, "RU")
    if name == "uk-national":
        return numbers_case(name, [f"07911 12{n % 10_000:04d}" for n in range(sized(5_000))], "GB")
    if name == "bg-national":
        return numbers_case(name, [f"0888 {n:06d}" for n in range(sized(5_000))], "BG")
    if name == "new-national":
        return new_prefix_case(sized(5_000), repeat + 1, name, "8 {} 45-67", "RU")
    if name == "new-calling-code":
        return new_prefix_case(sized(5_000), repeat + 1, name, "7 {} 45-67", "RU")
    raise ValueError(name)


def main(argv: Sequence[str] | None = None) -> list[tuple[Case, dict[str, list[float]]]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each variant (default 3)")
    parser.add_argument("--only", action="append", choices=CASES, metavar="NAME",
                        help=f"measure only this case (repeatable): {', '.join(CASES)}")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every case's operations per run by this (default 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale above 0")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    bench: list[StoreBench] = []

    def store() -> StoreBench:
        bench.append(StoreBench())
        return bench[-1]

    results = []
    try:
        for name in args.only or CASES:
            case = build(name, args.scale, args.repeat, store)
            results.append((case, measure(case, args.repeat)))
    finally:
        for opened in bench:
            opened.close()
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(table(results))
    return results


if __name__ == "__main__":
    main()
