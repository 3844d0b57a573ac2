"""A Russian lead list scrubbed (run by hand): numbers dialled ``8 9XX XXX-XX-XX``, as most Russian
call centres write them, in a Russian campaign.

    .venv/bin/python bench/scrub_national.py [--rows 2e5] [--with-records 1] [--runs 2] [--written 8|7|+7]

Writes ``--rows`` Russian mobiles spread evenly over the whole 9XX range (``--written 7``:
``7 9XX…``, the calling code without ``+``, as CRM exports often write them; ``+7``: E.164) (random digits, so
nearly every six-digit prefix is met), gives ``--with-records`` percent of them a consent on
file, then scrubs the list ``--runs`` times with one process and with two, on an embedded
valkey-server. Prints rows/s and the CPU per row of the scrubbing process(es), and the count
of each answer (the same in every run, or something is wrong). Compare trees with
``PYTHONPATH=<tree>``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_bench as bench

from blocklists import scrub
from callscreen.crypto import NumberVault
from callscreen.embedded import EmbeddedServer
from callscreen.models import Campaign, Consent, LegalBasis, Proof
from callscreen.numbers import InvalidNumber, normalize
from callscreen.policy import PolicyBook
from callscreen.store import Store


def write_leads(path: Path, rows: int, rng: random.Random, written: str = "8") -> None:
    with open(path, "w") as handle:
        handle.write("id,phone\n")
        for i in range(rows):
            handle.write(f"{i},{written} 9{rng.randint(0, 99):02d} {rng.randint(0, 999):03d}-"
                         f"{rng.randint(0, 99):02d}-{rng.randint(0, 99):02d}\n")


def consented(path: Path, share: float) -> list[str]:
    """Every row's number whose turn it is (``share`` of the rows, spread evenly), if valid."""
    found = []
    with open(path) as handle:
        next(handle)
        for i, line in enumerate(handle):
            if bench.on_file(i, share):
                raw = line.split(",", 1)[1].strip()
                try:
                    normalize(raw, "RU")
                except InvalidNumber:
                    continue
                found.append(raw)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=float, default=2e5)
    parser.add_argument("--with-records", type=float, default=1.0, help="percent of rows with a consent (default 1)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--written", choices=("8", "7", "+7"), default="8", help="what precedes 9XX (default 8)")
    args = parser.parse_args()
    with EmbeddedServer(persist=False) as server, tempfile.TemporaryDirectory() as folder:
        client = redis.Redis.from_url(server.url)
        keys = (os.urandom(32), os.urandom(32))
        vault = NumberVault(*keys)
        store = Store(client, vault)
        campaign = store.put_campaign(Campaign("ru", "promotions", "RU", "RU", "Europe/Moscow"))
        pack = PolicyBook.load().for_campaign(campaign)
        at = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=1)
        while at.weekday() >= 5:  # a working day: calling hours hold in Moscow at noon
            at -= timedelta(days=1)
        leads = Path(folder) / "leads.csv"
        write_leads(leads, int(args.rows), random.Random(5), args.written)
        store.add_consents([(normalize(raw, "RU"), Consent(f"c-{i}", "", ("promotions",), LegalBasis.CONSENT,
                                                           "web_form", at - timedelta(days=30),
                                                           proof=Proof(form_text="Call me")), None)
                            for i, raw in enumerate(consented(leads, args.with_records / 100))])
        for run in range(args.runs):
            for workers in (1, 2):
                engine = bench.scrub_engine(workers, client, server.url, keys, vault, campaign, pack, at)
                cpu = bench.scrub_cpu()
                with open(Path(folder) / "out.csv", "w") as out:
                    summary = scrub.scrub_csv(engine, leads, out, workers=workers)
                cpu = bench.scrub_cpu() - cpu
                print(f"run {run + 1}, {workers} process(es): {summary.rate:,.0f} rows/s; CPU per row "
                      f"{cpu / summary.rows * 1e6:.1f} µs; {dict(summary.reasons.most_common())}; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
