"""Load through a real Asterisk 22: calls originated over AMI into the sample dialplan, screened by
one ``callscreen serve`` on the embedded store (valkey, ``appendfsync always``). Run by hand:

    .venv/bin/python bench/asterisk_load.py --rate 200 --calls 1000
    .venv/bin/python bench/asterisk_load.py --rate 400 --seconds 10
    .venv/bin/python bench/asterisk_load.py --burst 500
    .venv/bin/python bench/asterisk_load.py --rate 100 --calls 1000 --profile /tmp/serve.prof
    .venv/bin/python bench/asterisk_load.py --rate 100 --calls 1000 --rounds 2 \
        --variant before=/tmp/callscreen-main --variant after=.

Everything runs on this machine, on free loopback ports, and is stopped at the end. The store is
seeded so the answers are a known mix (about half ALLOW, the rest spread over several BLOCK
reasons); EVERY call's answer is checked against the one its data calls for, and every dialed
call must have its ALLOW record in the decision log. Printed: calls offered and answered, real
answers against ``screening_unavailable`` and wrong answers, latency percentiles (what the dialer
sees, originate to answer; the server's, header to committed answer; the decision's own, the span
the decision budget bounds), CPU per call of ``callscreen serve``, Asterisk, valkey and this
load generator from ``/proc/<pid>/stat``, and the load average at start and end (the machine may
be shared: figures are floors). ``--profile FILE`` profiles the server's CPU during the run
(cProfile on the process's CPU clock, ``bench/serve_profiled.py``) and prints where it went.

``--variant NAME=TREE[,KEY=VALUE...]`` (repeatable) starts one server per variant, each running the
code of a source tree (e.g. ``git archive main | tar -x -C /tmp/callscreen-main``) with extra
environment, and ``--rounds N`` runs them in turn, rotating the order, against the same Asterisk
and store (each call names its server in ``CALLSCREEN_AGI``): a before/after comparison in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

from callscreen.models import Objection, OptOut, Suppression  # noqa: E402
from callscreen.numbers import normalize  # noqa: E402
from harness.pbx import Asterisk, Call, Dialer, Installation  # noqa: E402
from harness.processes import CALLSCREEN, free_port, process_cpu, start_serve  # noqa: E402
from harness.screening import ALWAYS, CAPTURED, LISTED, LISTED_NUMBER, NIGHT, Screening, fresh_number  # noqa: E402

ALLOW = "ALLOW"
UNAVAILABLE = "screening_unavailable"
# One cycle of the mix: what each call's data says the answer must be (ALLOW or a BLOCK reason).
MIX = (ALLOW, "no_basis", ALLOW, "opted_out", ALLOW, "outside_calling_hours", ALLOW, "objection",
       ALLOW, "complaint_suppressed", ALLOW, "invalid_number", ALLOW, "unknown_campaign", ALLOW,
       "national_dnc", ALLOW, "no_basis", ALLOW, "opted_out")
IDLE_SECONDS = 2.0
WARM_CALLS = 40
POOL = 40  # numbers per BLOCK reason (a blocked call is no attempt, so they may repeat)


@dataclass
class Planned:
    """One call to originate and the answer it must get."""

    number: str
    campaign: str
    expected: str
    call: Call | None = None


@dataclass
class Proc:
    """A process whose CPU time (user + system, without its children) is measured."""

    name: str
    pid: int
    start: float = 0.0
    used: float = 0.0

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def begin(self) -> None:
        self.start = self.cpu()

    def end(self) -> None:
        self.used = self.cpu() - self.start


@dataclass
class Seeds:
    """Numbers prepared for each expected answer."""

    allow: Iterator[str]
    pools: dict[str, list[str]] = field(default_factory=dict)


def seed(screening: Screening, allowed: int) -> Seeds:
    """Consents for ``allowed`` fresh numbers (one ALLOW each: repeated calls would meet the
    attempt caps), and a pool of numbers for each BLOCK reason."""
    store = screening.store
    numbers = [screening.consent(fresh_number()) for _ in range(allowed)]

    def pool(prepare: Callable[[str], None] | None = None, consent: bool = True) -> list[str]:
        found = []
        for _ in range(POOL):
            number = screening.consent(fresh_number()) if consent else fresh_number()
            if prepare:
                prepare(number)
            found.append(number)
        return found

    def ru(number: str):
        return normalize(number, "RU")

    pools = {
        "no_basis": pool(consent=False),
        "opted_out": pool(lambda n: store.add_opt_out(ru(n), OptOut(None, "call", CAPTURED))),
        "objection": pool(lambda n: store.add_objection(ru(n), Objection(CAPTURED, "call"))),
        "complaint_suppressed": pool(lambda n: store.suppress(store.vault.digest(ru(n).e164),
                                                              Suppression("cmp-1", CAPTURED))),
        "outside_calling_hours": pool(),
        "unknown_campaign": pool(),
        "invalid_number": ["123"],
        "national_dnc": [LISTED_NUMBER],
    }
    return Seeds(iter(numbers), pools)


CAMPAIGN_OF = {"outside_calling_hours": NIGHT, "unknown_campaign": "no-such-campaign", "national_dnc": LISTED}


def plan(seeds: Seeds, count: int) -> list[Planned]:
    cursor: Counter[str] = Counter()
    planned = []
    for expected in itertools.islice(itertools.cycle(MIX), count):
        if expected == ALLOW:
            number = next(seeds.allow)
        else:
            pool = seeds.pools[expected]
            number = pool[cursor[expected] % len(pool)]
            cursor[expected] += 1
        planned.append(Planned(number, CAMPAIGN_OF.get(expected, ALWAYS), expected))
    return planned


def answer_of(call: Call) -> str:
    """ALLOW when dialed (or allowed, with an unavailable trunk), else the BLOCK reason; '' while unknown."""
    if (call.dialed or call.allowed) and call.blocked is None:
        return ALLOW
    return call.reason if call.blocked is not None else ""


# --- metrics from the server's /metrics ---------------------------------------------------------


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[name] = float(value)
    return samples


def histogram(before: dict[str, float], after: dict[str, float], prefix: str) -> list[tuple[float, float]]:
    """``(upper bound, count)`` per bucket of the run (cumulative counts, deltas of two scrapes)."""
    rows = []
    for name, value in after.items():
        if name.startswith(prefix + "_bucket{") and 'le="' in name:
            bound = name.split('le="')[1].split('"')[0]
            rows.append((float("inf") if bound == "+Inf" else float(bound), value - before.get(name, 0.0)))
    return sorted(rows)


def bucket_percentile(rows: list[tuple[float, float]], q: float) -> str:
    """The bucket bound below which ``q`` of the observations fall ("≤ 5 ms")."""
    total = rows[-1][1] if rows else 0
    if not total:
        return "-"
    for bound, count in rows:
        if count >= q * total:
            return "> 1 s" if bound == float("inf") else f"≤ {bound * 1000:g} ms"
    return "-"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


# --- the run ----------------------------------------------------------------------------------------


def originate(dialer: Dialer, planned: list[Planned], rate: float | None, **variables: str) -> float:
    """Originate every planned call (at ``rate`` per second, or all at once) with ``variables``
    on its channel; returns the seconds it took to send them."""
    started = time.monotonic()
    for i, item in enumerate(planned):
        if rate:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        item.call = dialer.call(item.number, item.campaign, wait=False, **variables)
    return time.monotonic() - started


def wait_all(dialer: Dialer, calls: list[Call], timeout: float) -> int:
    """Wait until every call has ended; returns how many had not when the time ran out."""
    try:
        dialer.wait(calls, timeout)
        return 0
    except TimeoutError:
        return sum(1 for c in calls if not c.ended)


def store_stats(screening: Screening) -> dict[str, int]:
    """Counters of the store that explain stalls: forks (an RDB snapshot or AOF rewrite, whose
    disk writes slow every fsync behind an ALLOW) and fsyncs the store had to delay."""
    info = screening.client.info("all")
    return {"forks": int(info.get("total_forks", 0)), "aof_delayed_fsync": int(info.get("aof_delayed_fsync", 0)),
            "rdb_saves": int(info.get("rdb_saves", 0)), "aof_rewrites": int(info.get("aof_rewrites", 0))}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


AREAS = (  # (area, what a function's "file:line" or built-in name starts with or contains)
    ("AGI server and protocol (agi/)", ("agi/",)),
    ("screening core (callscreen/screening.py)", ("callscreen/screening.py",)),
    ("decision and policy", ("callscreen/decision.py", "callscreen/policy.py")),
    ("store and decision log, Python side (callscreen/store.py, decision_log.py, durability, rotation)",
     ("callscreen/store.py", "callscreen/decision_log.py", "callscreen/durability.py", "callscreen/rotation.py")),
    ("redis-py (packing, pool, parser glue)", ("redis/", "hiredis")),
    ("phonenumbers (normalize)", ("phonenumbers/", "callscreen/numbers.py")),
    ("crypto (HMAC, AES-GCM, key wrap)", ("callscreen/crypto.py", "cryptography/", "hmac.py", "_hashlib", "openssl")),
    ("records, codec, JSON, dataclasses", ("callscreen/codec.py", "callscreen/models.py", "json/", "dataclasses.py",
                                           "_json")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("logging", ("logging/",)),
    ("socket syscalls (send, recv, accept, close)", ("_socket.socket", "socket.py")),
    ("event loop (asyncio, uvloop, selectors, epoll)", ("asyncio/", "uvloop", "selectors.py", "select.epoll",
                                                         "_asyncio", "contextvars", "Context")),
)
KEY_CALLS = (  # per screened call: how often these ran (plain functions: cProfile counts every
    # resumption of a coroutine as a call, so coroutines cannot be counted this way)
    ("AGI sessions (headers parsed)", "agi/protocol.py", "parse_header"),
    ("AGI answers in one EXEC MSet (lines built)", "agi/protocol.py", "set_variables"),
    ("AGI SET VARIABLE lines built (values that are not plain)", "agi/protocol.py", "set_variable"),
    ("store round trips (redis-py pipelines packed)", "redis/asyncio/connection.py", "pack_commands"),
    ("decisions (decision.decide)", "callscreen/decision.py", "decide"),
    ("numbers normalized (numbers.normalize)", "callscreen/numbers.py", "normalize"),
)


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    return f"{filename}:{line}({name})" if filename != "~" else name


def _area(key: tuple[str, int, str]) -> str:
    where = _where(key)
    for area, needles in AREAS:
        if any(n in where for n in needles):
            return area
    return "other"


def profile_summary(path: Path, calls: int, top: int = 22) -> str:
    """Where the server's CPU went: self time by area (a partition of the total), the functions
    with the most self time, and how often key steps ran per call."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values()) or 1e-9
    areas: Counter[str] = Counter()
    for key, row in stats.items():
        area = _area(key)
        callers = row[4]
        if area == "other" and key[0] == "~" and callers:  # a built-in (len, str.encode...): its callers'
            spent = sum(c[2] for c in callers.values()) or 1e-9
            for caller, c in callers.items():
                areas[_area(caller)] += row[2] * c[2] / spent
        else:
            areas[area] += row[2]
    lines = [f"profiled CPU {total:.2f} s over {calls} calls = {total / max(calls, 1) * 1000:.2f} ms per call "
             f"(cProfile on, so inflated); self time by area (a built-in counts in its callers' areas):"]
    lines += [f"  {100 * t / total:5.1f} %  {t / max(calls, 1) * 1000:6.3f} ms/call  {area}"
              for area, t in areas.most_common()]
    lines.append("functions with the most self time:")
    ranked = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines += [f"  {100 * row[2] / total:5.1f} %  {row[1] / max(calls, 1):6.2f} calls/call  {_where(key)[-90:]}"
              for key, row in ranked]
    lines.append("per screened call:")
    for label, filename, name in KEY_CALLS:
        count = sum(row[1] for key, row in stats.items() if key[0].endswith(filename) and key[2] == name)
        lines.append(f"  {count / max(calls, 1):6.2f}  {label}")
    return "\n".join(lines)


@dataclass
class Variant:
    """One ``callscreen serve`` under test: the code of a source tree (``PYTHONPATH``), extra
    environment, its ports and its process."""

    name: str
    tree: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0

    @property
    def agi_url(self) -> str:
        return f"agi://127.0.0.1:{self.port}"


def parse_variant(text: str) -> Variant:
    """``NAME=TREE[,KEY=VALUE...]``: ``TREE`` is a source tree ('.' for this one), the pairs
    are added to that server's environment (e.g. ``CALLSCREEN_AGI_LOOP=asyncio``)."""
    name, _, rest = text.partition("=")
    tree, *pairs = rest.split(",")
    env = dict(pair.split("=", 1) for pair in pairs)
    return Variant(name, (ROOT if tree in ("", ".") else Path(tree)).resolve(), env)


def measure(dialer: Dialer, variant: Variant, planned: list[Planned], rate: float | None,
            screening: Screening, pbx: Asterisk, timeout: float, profile: Path | None) -> dict[str, object]:
    """Offer ``planned`` to ``variant`` and check and time every answer."""
    assert variant.process is not None and pbx.process is not None and screening.server.process is not None
    ami = dialer.ami
    procs = [Proc("callscreen serve", variant.process.pid), Proc("asterisk", pbx.process.pid),
             Proc("valkey", screening.server.process.pid), Proc("load generator", os.getpid())]
    for p in procs:  # what each burns with no call at all
        p.begin()
    time.sleep(IDLE_SECONDS)
    for p in procs:
        p.end()
    idle = {p.name: round(p.used / IDLE_SECONDS * 1000, 1) for p in procs}
    if profile:
        variant.process.send_signal(signal.SIGUSR1)  # bench/serve_profiled.py: start profiling
    load_start = load_average()
    store_before = store_stats(screening)
    before = scrape(variant.metrics_port)
    for p in procs:
        p.begin()
    wall = time.monotonic()
    sending = originate(dialer, planned, rate, CALLSCREEN_AGI=variant.agi_url)
    calls = [p.call for p in planned if p.call is not None]
    stuck = wait_all(dialer, calls, timeout)
    wall = time.monotonic() - wall
    for p in procs:
        p.end()
    after = scrape(variant.metrics_port)
    store_after = store_stats(screening)
    load_end = load_average()
    if profile:
        variant.process.send_signal(signal.SIGUSR2)  # stop profiling, write the stats
        deadline = time.monotonic() + 30
        while not profile.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    refused = 0
    for call in calls:
        try:
            ami.response(call.action_id, timeout=1.0)
        except Exception:
            refused += 1
    answers = Counter(answer_of(c) for c in calls)
    wrong = [(p.expected, answer_of(p.call)) for p in planned
             if p.call and answer_of(p.call) not in (p.expected, UNAVAILABLE, "")]
    unavailable, unanswered = answers[UNAVAILABLE], answers[""]
    unlogged = 0
    for p in planned:
        if p.call and answer_of(p.call) == ALLOW:
            record = screening.log.get(p.call.screen_id)
            if record is None or record.result != ALLOW:
                unlogged += 1
    to_answer = [c.screened_at - c.originated for c in calls if c.screened_at]
    tenth = max(len(planned) // 10, 1)
    timeline = [sum(1 for p in planned[i:i + tenth] if p.call and answer_of(p.call) != p.expected)
                for i in range(0, len(planned), tenth)]
    per_call = {p.name: p.used / max(len(calls), 1) * 1000 for p in procs}
    decision_rows = histogram({k: v for k, v in before.items() if 'origin="agi"' in k},
                              {k: v for k, v in after.items() if 'origin="agi"' in k}, "callscreen_decision_seconds")
    header_rows = histogram(before, after, "callscreen_agi_answer_seconds")
    quantiles = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    return {
        "variant": variant.name, "offered": len(planned), "sent_in_s": round(sending, 2), "wall_s": round(wall, 2),
        "originate_refused": refused, "answered": len(planned) - unanswered, "still_up": stuck,
        "real_answers": len(planned) - unavailable - unanswered - len(wrong), "screening_unavailable": unavailable,
        "wrong_answers": len(wrong), "wrong_examples": wrong[:5], "not_real_by_tenth_of_the_calls": timeline,
        "dialed_without_allow_record": unlogged, "answers": dict(answers),
        "dialer_originate_to_answer_ms": {q: round(pct(to_answer, v), 1) for q, v in (*quantiles, ("max", 1.0))},
        "server_header_to_answer": {q: bucket_percentile(header_rows, v) for q, v in quantiles},
        "decision_start_to_logged": {q: bucket_percentile(decision_rows, v) for q, v in quantiles},
        "cpu_ms_per_call": {k: round(v, 3) for k, v in per_call.items()},
        "idle_cpu_ms_per_s": idle,
        "store_during_run": {k: store_after[k] - store_before[k] for k in store_after},
        "ratio_callscreen_to_asterisk": round(per_call["callscreen serve"] / max(per_call["asterisk"], 1e-9), 2),
        "load_average_start": load_start, "load_average_end": load_end,
    }


def summary(results: list[dict[str, object]]) -> str:
    """One line per run, then the median of each variant's runs."""
    head = (f"{'variant':<10} {'offered':>7} {'real':>6} {'unavail':>7} {'wrong':>5} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'serve ms':>8} {'ast ms':>7} {'valkey':>6} {'ratio':>5}  load start → end")
    lines = [head]
    for r in results:
        cpu = r["cpu_ms_per_call"]
        lat = r["dialer_originate_to_answer_ms"]
        lines.append(f"{r['variant']:<10} {r['offered']:>7} {r['real_answers']:>6} {r['screening_unavailable']:>7} "
                     f"{r['wrong_answers']:>5} {lat['p50']:>7} {lat['p99']:>7} {cpu['callscreen serve']:>8.2f} "
                     f"{cpu['asterisk']:>7.2f} {cpu['valkey']:>6.2f} {r['ratio_callscreen_to_asterisk']:>5.2f}  "
                     f"{r['load_average_start']} → {r['load_average_end']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    installation = Installation.find()
    count = args.burst or args.calls or int(args.rate * args.seconds)
    rate = None if args.burst else args.rate
    variants = [parse_variant(v) for v in args.variant] or [parse_variant("this=.")]
    root = Path(tempfile.mkdtemp(prefix="cs-load-"))
    screening = Screening.start(root)
    pbx = None
    logs = []
    results: list[dict[str, object]] = []
    try:
        screening.load_registry([LISTED_NUMBER])
        t = time.monotonic()
        runs = len(variants) * args.rounds
        allowed = sum(1 for i in range(count + WARM_CALLS) if MIX[i % len(MIX)] == ALLOW) * runs
        seeds = seed(screening, allowed)
        print(f"seeded {allowed} consents in {time.monotonic() - t:.1f} s", flush=True)
        for variant in variants:
            variant.metrics_port = free_port()
            log = open(root / f"serve-{variant.name}.log", "wb")  # noqa: SIM115 - closed in finally
            logs.append(log)
            env = {**screening.env, **variant.env, "PYTHONPATH": str(variant.tree)}
            command: tuple[str, ...] = (CALLSCREEN, "serve")
            if args.profile:
                env["CALLSCREEN_BENCH_PROFILE"] = f"{args.profile}.{variant.name}"
                command = (sys.executable, str(ROOT / "bench" / "serve_profiled.py"))
            variant.process, variant.port = start_serve(
                env, "--metrics-port", str(variant.metrics_port), "--deadline-ms", str(args.deadline_ms), output=log,
                command=command)
        pbx = Asterisk(installation, variants[0].agi_url, env=screening.env, trunk=args.trunk,
                      ami_read=args.ami_read).start()
        with pbx.ami() as ami:
            dialer = Dialer(ami, prefix="load")
            for round_ in range(args.rounds):
                order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
                for variant in order:
                    warm = plan(seeds, WARM_CALLS)  # connections, campaign cache, code paths
                    originate(dialer, warm, 100, CALLSCREEN_AGI=variant.agi_url)
                    wait_all(dialer, [w.call for w in warm if w.call], 30)
                    written = Path(f"{args.profile}.{variant.name}")  # where that server writes its stats
                    written.unlink(missing_ok=True)
                    result = measure(dialer, variant, plan(seeds, count), rate, screening, pbx, args.timeout,
                                     written if args.profile else None)
                    profile = written.rename(f"{written}.{round_ + 1}") if written.exists() else None
                    result["scenario"] = f"burst {count}" if args.burst else f"{rate:g}/s, {count} calls"
                    results.append(result)
                    print(json.dumps(result, ensure_ascii=False), flush=True)
                    if profile and profile.exists():
                        print(f"--- {variant.name}, round {round_ + 1}: {profile}", flush=True)
                        print(profile_summary(profile, count), flush=True)
        print(summary(results), flush=True)
        return results
    finally:
        if pbx is not None:
            pbx.stop()
        for variant in variants:
            if variant.process is not None:
                variant.process.terminate()
                try:
                    variant.process.wait(30)
                except subprocess.TimeoutExpired:
                    variant.process.kill()
                    variant.process.wait()
        for log in logs:
            log.close()
        screening.stop()
        if args.keep:
            print(f"kept {root} (serve logs, valkey data)")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--calls", type=int, help="calls to offer at --rate")
    shape.add_argument("--seconds", type=float, help="offer --rate calls a second for this long")
    shape.add_argument("--burst", type=int, help="originate this many calls at once")
    parser.add_argument("--rate", type=float, default=200.0, help="calls originated per second (default 200)")
    parser.add_argument("--deadline-ms", type=int, default=250, help="serve --deadline-ms (default 250, the setting's)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=TREE[,KEY=VALUE...]",
                        help="a server to measure: the code of source tree TREE ('.' for this one) with extra "
                             "environment; repeat to compare servers side by side in one run (default: this=.)")
    parser.add_argument("--trunk", choices=("answering", "unavailable"), default="answering",
                        help="answering: an allowed call dials a Local test trunk that answers (a second channel "
                             "pair); unavailable: the sample's PJSIP trunk, which this bundle fails at once "
                             "(CHANUNAVAIL), so Asterisk's cost is the screening's alone (default answering)")
    parser.add_argument("--ami-read", default="all", metavar="CLASSES",
                        help="the load generator's AMI read classes: 'all' (every event, the default) or what a "
                             "dialer needs, 'call,user': Asterisk then formats and sends far fewer events per call")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant, interleaved (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every call to end")
    parser.add_argument("--profile", type=Path, help="profile each server's CPU during each run (cProfile, see "
                                                     "bench/serve_profiled.py) into PROFILE.<variant>.<round>")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (serve logs, store)")
    args = parser.parse_args()
    if not (args.calls or args.seconds or args.burst):
        args.calls = 1000
    run(args)


if __name__ == "__main__":
    main()
