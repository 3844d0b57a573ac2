"""``callscreen serve ARGS`` with cProfile timed by the process's CPU clock, for bench/asterisk_load.py.

SIGUSR1 starts profiling, SIGUSR2 stops it and writes the stats to the file named by
``CALLSCREEN_BENCH_PROFILE`` (so start-up and warm-up stay out of the figures), then forgets them. The clock is
``time.process_time``: user and system CPU of the process, so time the kernel spends in a
``send`` counts where the call was made, and time spent waiting for the CPU counts nowhere.
cProfile adds its own overhead to every Python call, which inflates pure-Python parts against
C and kernel work: read the shares, not the absolute times.

    python bench/serve_profiled.py --port 4573 ...   (any ``callscreen serve`` options)
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from typing import Any

from callscreen.cli.main import main

profiler = cProfile.Profile(time.process_time)


def start(_signum: int, _frame: Any) -> None:
    profiler.enable()


def stop(_signum: int, _frame: Any) -> None:
    profiler.disable()
    profiler.dump_stats(os.environ["CALLSCREEN_BENCH_PROFILE"])
    profiler.clear()  # the next SIGUSR1 starts from nothing


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.exit(main(["serve", *sys.argv[1:]]))
