"""Numbers dialled in national form: ``normalize`` against phonenumbers' full parse.

Run by hand:  .venv/bin/python bench/national_numbers.py [--n 5000] [--rounds 3] [--only uk]
Prints process CPU time per number for each case, uncached (``normalize.__wrapped__``), next to
``parse_number``: the full parse that every national-form number took before
:mod:`callscreen.national`. Rounds alternate the two. Each case's region is prepared first, as
``callscreen serve`` does at start, so no case pays for reading the patterns.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
from collections.abc import Callable

from callscreen import numbers as module
from callscreen.national import NationalAnswers
from callscreen.numbers import InvalidNumber, normalize, parse_number, prepare


def _cases(n: int) -> dict[str, tuple[str, list[str]]]:
    rng = random.Random(1201)
    return {
        "russian 8 999 123 …, one prefix": ("RU", [f"8 999 123-{i // 100 % 100:02d}-{i % 100:02d}" for i in range(n)]),
        "uk 07911 12…, one prefix": ("GB", [f"07911 12{i % 10000:04d}" for i in range(n)]),
        "bulgarian 0888 …, one prefix": ("BG", [f"0888 {i % 1000000:06d}" for i in range(n)]),
        "russian 8 9…, every prefix new": ("RU", [f"8 9{i:05d}{rng.randrange(10000):04d}" for i in range(n)]),
    }


def _cpu_per_number(parse: Callable[[str, str], object], region: str, numbers: list[str]) -> float:
    start = time.process_time()
    for raw in numbers:
        with contextlib.suppress(InvalidNumber):
            parse(raw, region)
    return (time.process_time() - start) / len(numbers) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    for name, (region, numbers) in _cases(args.n).items():
        if args.only and args.only not in name:
            continue
        prepare([region])
        full, fast = [], []
        for _ in range(args.rounds):
            full.append(_cpu_per_number(parse_number, region, numbers))
            if "new" in name:  # every round's numbers must be new prefixes again
                module._NATIONAL_ANSWERS = NationalAnswers()
                normalize.__wrapped__(numbers[0], region)  # the region and length are met
            fast.append(_cpu_per_number(normalize.__wrapped__, region, numbers))
        print(f"{name:36} full parse {min(full):6.1f}–{max(full):6.1f} µs   "
              f"normalize {min(fast):6.1f}–{max(fast):6.1f} µs")


if __name__ == "__main__":
    main()
