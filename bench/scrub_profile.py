"""Where a scrub's CPU goes, per row (run by hand): each stage of one scrubbing process, and valkey.

    .venv/bin/python bench/scrub_profile.py [--numbers 2e6] [--rows 1e6] [--area-codes 330] [--runs 3]
        [--workers 1] [--batch-rows 5000] [--with-records 1]

Loads a synthetic US registry (``--numbers`` over ``--area-codes``, as ``bench/registry_bench.py``
does), writes a lead list of ``--rows`` NANP numbers in three spellings (``--with-records``
percent of them with a consent on file: 1 unless told), then scrubs it ``--runs`` times: the
first with no exchange table, the next with the table the first learned. Each run prints
rows/s, the CPU per row of the scrubbing process(es) and of valkey-server (from /proc), and,
with one process, the CPU per row spent in each stage: the per-batch functions of the scrub are
wrapped to add up their ``time.process_time``, so a stage's figure includes the stages it calls
(``screen_codes`` holds most of the others; ``run_pipeline``, ``parse`` and ``decide`` are the
numbers with records inside ``_screen_full``). With ``--workers`` > 1 only the totals are
printed (the stages run in the worker processes).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_bench as bench

from blocklists import scrub
from callscreen.embedded import EmbeddedServer
from harness.processes import process_cpu

STAGES = (  # (where, function): a stage missing from the code under test (an older tree) is skipped
    ("blocklists.scrub", "_screen_batch"), ("blocklists.scrub.BatchScreener", "screen_codes"),
    ("blocklists.lead_numbers.LeadNumbers", "locate_batch"), ("callscreen.crypto.NumberVault", "digests"),
    ("blocklists.scrub", "_probe_wire"), ("blocklists.registry_bits.RegistryBits", "plan"),
    ("blocklists.scrub", "bulk"),
    ("blocklists.registry_bits.RegistryBits", "read"), ("blocklists.scrub.BatchScreener", "_with_records"),
    ("blocklists.scrub.BatchScreener", "_decide_all"), ("blocklists.scrub.BatchScreener", "_screen_full"),
    # inside _screen_full, the numbers with records: their facts' round trip, reading them, deciding
    ("blocklists.scrub", "run_pipeline"), ("callscreen.store.FactQuery", "parse"), ("blocklists.scrub", "decide"),
)


def _owner(where: str) -> Any:
    """The module or class at ``where`` (a module, or a module and a class), or None."""
    try:
        return importlib.import_module(where)
    except ImportError:
        module, _, name = where.rpartition(".")
        return getattr(importlib.import_module(module), name, None)


def timed_stages(totals: Counter[str]) -> None:
    """Wrap each stage so that its CPU time adds up in ``totals``."""
    for where, name in STAGES:
        owner = _owner(where)
        function = None if owner is None else getattr(owner, name, None)
        if function is None:
            continue

        def wrapper(*args: Any, _function: Callable[..., Any] = function, _name: str = name, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return _function(*args, **kwargs)
            finally:
                totals[_name] += time.process_time() - started

        setattr(owner, name, functools.wraps(function)(wrapper))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=float, default=2e6)
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--area-codes", type=int, default=bench.AREA_CODES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-rows", type=int, default=scrub.BATCH_ROWS)
    parser.add_argument("--with-records", type=float, default=1.0,
                        help="percent of the lead list's rows with a consent on file (default 1)")
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    timed_stages(totals)
    rng = random.Random(2026)
    with EmbeddedServer(persist=False) as server, tempfile.TemporaryDirectory() as folder:
        assert server.process is not None
        client = redis.Redis.from_url(server.url)
        world = bench.scrub_world(client, args.numbers, args.area_codes, int(args.rows), Path(folder), rng,
                                  args.with_records / 100)
        keys, vault, campaign, pack, at, leads = world
        table: dict[str, Any] = {}
        for run in range(args.runs):
            engine = bench.scrub_engine(args.workers, client, server.url, keys, vault, campaign, pack, at, table)
            totals.clear()
            valkey, own, children = process_cpu(server.process.pid), time.process_time(), os.times()
            with open(Path(folder) / "out.csv", "w", newline="") as sink:
                summary = scrub.scrub_csv(engine, leads, sink, workers=args.workers, batch_rows=args.batch_rows)
            valkey, own = process_cpu(server.process.pid) - valkey, time.process_time() - own
            done = os.times()
            children_cpu = done.children_user + done.children_system - children.children_user - children.children_system
            table.update(summary.learned_exchanges)
            per_row = 1e6 / summary.rows
            print(f"run {run + 1} ({'exchange table kept' if run else 'first run'}, {args.workers} process(es)): "
                  f"{summary.rate:,.0f} rows/s; CPU per row: scrub {(own + children_cpu) * per_row:.1f} µs, "
                  f"valkey {valkey * per_row:.1f} µs"
                  + (f" (parent {own * per_row:.1f}, workers {children_cpu * per_row:.1f})" if args.workers > 1 else "")
                  + f"; load {os.getloadavg()[0]:.1f}", flush=True)
            if args.workers == 1:
                print("    " + "  ".join(f"{name} {seconds * per_row:.2f}" for name, seconds in totals.most_common()))


if __name__ == "__main__":
    main()
