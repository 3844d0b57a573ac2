"""``callscreen serve``: the FastAGI server Asterisk asks before every marketing call.

Retention runs in the background every ``retention_interval_hours`` (the last run, in the store,
says when it is due; a Redis lock lets one process of one host run it), and its last run is on
``/metrics``. One process by default; ``--workers N`` forks N processes that each bind the port with
SO_REUSEPORT (the kernel spreads connections over them) under a small supervisor that
forwards SIGTERM and serves the workers' combined metrics. SIGTERM (or Ctrl-C) stops
accepting, lets in-flight sessions finish, then exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import replace
from typing import Any

from callscreen.cli.context import EXIT_CONFIG, CliContext, CliError
from callscreen.config import Settings
from callscreen.logs import configure_logging


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the FastAGI server (AGI(agi://HOST:4573/screen,CAMPAIGN[,NUMBER]))",
        description="Serve screening answers to Asterisk over FastAGI. Options default to the settings.",
    )
    parser.add_argument("--host", help="address to bind (setting agi_host, default 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="TCP port (setting agi_port, default 4573)")
    parser.add_argument("--workers", type=_positive, help="worker processes sharing the port (agi_workers)")
    parser.add_argument("--allow", action="append", metavar="HOST",
                        help="Asterisk host, network (CIDR) or name allowed to connect; repeat for more "
                             "(setting agi_allowed_hosts, default loopback only)")
    parser.add_argument("--read-timeout", type=_seconds, help="seconds for the whole header (agi_read_timeout)")
    parser.add_argument("--reply-timeout", type=_seconds,
                        help="seconds for each reply to a command (agi_reply_timeout)")
    parser.add_argument("--stalled-reply-after", type=_seconds,
                        help="seconds after which a session waiting for a reply may be evicted to make room "
                             "(agi_stalled_reply_after)")
    parser.add_argument("--deadline-ms", type=_positive, help="decision deadline (agi_decision_deadline_ms)")
    parser.add_argument("--max-connections", type=_positive, help="open connections per worker "
                                                                   "(agi_max_connections)")
    parser.add_argument("--max-deciding", type=_positive,
                        help="screenings one worker decides at once; more wait for a slot before their deadline "
                             "starts (agi_max_deciding)")
    parser.add_argument("--decision-queue-timeout", type=_seconds,
                        help="seconds a screening may wait for a decision slot before it is answered BLOCK "
                             "(agi_decision_queue_timeout)")
    parser.add_argument("--max-connections-per-peer", type=_positive,
                        help="one address's share of the connections once the server is full "
                             "(agi_max_connections_per_peer)")
    parser.add_argument("--backlog", type=_positive, help="listen backlog (agi_backlog)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, 0 to disable (metrics_port)")
    parser.add_argument("--metrics-host", help="address for /metrics (default: the --host address)")
    parser.set_defaults(handler=run)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def effective_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """Command-line options over the loaded settings."""
    changes: dict[str, Any] = {}
    for option, name in (("host", "agi_host"), ("port", "agi_port"), ("workers", "agi_workers"),
                         ("read_timeout", "agi_read_timeout"), ("reply_timeout", "agi_reply_timeout"),
                         ("stalled_reply_after", "agi_stalled_reply_after"),
                         ("deadline_ms", "agi_decision_deadline_ms"), ("max_connections", "agi_max_connections"),
                         ("max_deciding", "agi_max_deciding"), ("decision_queue_timeout", "agi_decision_queue_timeout"),
                         ("max_connections_per_peer", "agi_max_connections_per_peer"), ("backlog", "agi_backlog"),
                         ("metrics_port", "metrics_port")):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "allow", None):
        changes["agi_allowed_hosts"] = tuple(args.allow)
    return replace(settings, **changes)


def run(args: argparse.Namespace, context: CliContext) -> int:
    settings = effective_settings(args, context.settings).require_secrets()
    configure_logging(settings)
    multiproc_dir = None
    if settings.agi_workers > 1:  # must precede the first import of prometheus_client
        multiproc_dir = tempfile.mkdtemp(prefix="callscreen-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    from agi.server import PeerAllowlist

    try:
        PeerAllowlist(settings.agi_allowed_hosts)
    except ValueError as exc:
        raise CliError(f"--allow: {exc}", EXIT_CONFIG) from exc
    url = context.redis_url
    metrics_host = args.metrics_host or settings.agi_host
    if multiproc_dir is None:
        return serve_process(settings, url, metrics=(metrics_host, settings.metrics_port))
    return supervise(settings, url, multiproc_dir, metrics=(metrics_host, settings.metrics_port))


def serve_process(settings: Settings, redis_url: str, *, reuse_port: bool = False,
                  metrics: tuple[str, int] | None = None) -> int:
    """Run one FastAGI server process until SIGTERM/SIGINT; returns the exit code."""
    import asyncio

    with asyncio.Runner(loop_factory=event_loop_factory(settings.agi_event_loop)) as runner:
        return runner.run(_serve(settings, redis_url, reuse_port, metrics))


def loop_name(loop: Any) -> str:
    """``uvloop`` or ``asyncio``: which event loop runs the server (said at start-up)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def event_loop_factory(choice: str) -> Any:
    """The event loop the server runs on: uvloop (libuv; about a third less CPU per screening
    than asyncio's own loop, see docs/benchmarks.md) unless ``asyncio`` is asked for, or
    ``auto`` finds uvloop missing (it is not built for every platform). None means asyncio's
    default loop."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise CliError("agi_event_loop = \"uvloop\" but uvloop is not installed", EXIT_CONFIG) from None
        return None
    return uvloop.new_event_loop


STORE_CONNECTIONS = 64  # per worker; a decision is one pipelined round trip, so few are needed


def _store_client(settings: Settings, redis_url: str) -> Any:
    """The asyncio client; its connections: at most :data:`STORE_CONNECTIONS`, and a screening
    waits for a free one (within its deadline) rather than failing. redis-py's default pool
    raises "Too many connections" past 100 commands in flight, which turned half of a burst of
    200 calls into BLOCK screening_unavailable."""
    from callscreen.store import connect

    return connect(redis_url, asyncio=True, timeout=5, connect_timeout=2, max_connections=STORE_CONNECTIONS,
                   pool_timeout=settings.agi_decision_deadline_ms / 1000 + 1)


async def _serve(settings: Settings, redis_url: str, reuse_port: bool,
                 metrics: tuple[str, int] | None) -> int:
    import asyncio

    from prometheus_client import CollectorRegistry

    from agi.metrics import AGIMetrics
    from agi.server import FastAGIServer
    from callscreen.cluster import is_cluster_client
    from callscreen.health import start_metrics_server
    from callscreen.metrics import RetentionCollector, ScreeningMetrics
    from callscreen.numbers import prepare as prepare_numbers
    from callscreen.screening import build_screener
    from callscreen.store import STORE_ERRORS, connect

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    registry = CollectorRegistry()
    client = connect(redis_url, timeout=5, connect_timeout=2)
    aclient = _store_client(settings, redis_url)
    registries = None
    try:
        registries = _registries(client)
        screener = build_screener(settings, client, aclient, registries=registries,
                                  metrics=ScreeningMetrics(registry))
        screener.durability.check(client)  # says at once, loudly, if ALLOWs will be refused
        # number data for the campaigns' regions now, not inside the first call's budget
        regions = [settings.default_region]
        try:
            regions += [campaign.default_region for campaign in screener.store.list_campaigns()]
        except (*STORE_ERRORS, ValueError, KeyError, TypeError, AttributeError) as exc:  # store down, bad campaign
            print(f"callscreen serve: campaigns not read ({exc}): their number data loads on their first call",
                  file=sys.stderr, flush=True)
        print(f"callscreen serve: number data ready for {', '.join(prepare_numbers(regions)) or 'no region'}",
              file=sys.stderr, flush=True)
        if is_cluster_client(aclient):  # learn the slot map now, not inside the first call's budget
            with contextlib.suppress(*STORE_ERRORS):
                await aclient.initialize()
        if metrics is not None:  # single process: this one serves /metrics
            _registry_metrics(client, registry, screener.policies)
            RetentionCollector(client, registry)
        server = FastAGIServer(settings, screener, outcomes=screener.log, metrics=AGIMetrics(registry),
                               reuse_port=reuse_port)
        try:
            await server.start()
        except OSError as exc:
            print(f"callscreen serve: cannot listen on {settings.agi_host}:{settings.agi_port}: {exc.strerror}",
                  file=sys.stderr)
            return EXIT_CONFIG
        if metrics is not None and metrics[1]:
            start_metrics_server(metrics[1], metrics[0], registry, _readiness(client, screener.policies, screener))
        _settle_heap()
        print(f"callscreen serve: FastAGI on {settings.agi_host}:{server.port} (pid {os.getpid()}, "
              f"{loop_name(loop)} event loop)", file=sys.stderr, flush=True)
        halt = threading.Event()
        retention = asyncio.create_task(_retention_schedule(settings, client, screener.policies, halt))
        await stop.wait()
        halt.set()  # a retention run in progress ends after its current batch
        print(f"callscreen serve: draining {server.open_connections} session(s)", file=sys.stderr, flush=True)
        await server.drain()
        await retention
        return 0
    finally:
        if registries is not None:
            registries.stop()  # before its client closes under it
        await aclient.aclose()
        client.close()


def _readiness(client: Any, policies: Any, screener: Any = None) -> Any:
    """``/readyz``: store reachable, durability confirmed (when the screener gates on it), and the
    registries required by the jurisdictions in use fresh."""
    from callscreen.health import Readiness

    try:
        from blocklists.registry import RegistryManager
    except ImportError:  # registries are optional: readiness then does not check them
        status = None
    else:
        def status(packs: Any) -> list[Any]:
            return RegistryManager(client).status(packs)

    gate = getattr(screener, "durability", None)
    durability = None if gate is None else lambda: gate.refusal_checked(client)
    return Readiness(client, policies, durability=durability, registry_status=status)


async def _retention_schedule(settings: Settings, client: Any, policies: Any, halt: threading.Event) -> None:
    """Run retention whenever it is due, until ``halt``. Runs in a worker thread on its own log
    chain; a run already going elsewhere (the lock) or a store failure waits for the next check."""
    import asyncio
    from datetime import timedelta

    from callscreen.retention import RetentionBusy, RetentionJob, due
    from callscreen.screening import build_screener
    from callscreen.store import STORE_ERRORS, StoreError

    if settings.retention_interval_hours <= 0:
        return
    every = timedelta(hours=settings.retention_interval_hours)
    own = build_screener(settings, client, policies=policies)  # its own log chain, written from a thread
    job = RetentionJob(own.store, own.log, policies, settings.default_region)
    while not halt.is_set():
        report = None
        try:
            if await asyncio.to_thread(due, client, every):
                report = await asyncio.to_thread(job.run, stop=halt, if_due=every)
            if report is not None:
                deleted = ", ".join(f"{k} {n}" for k, n in sorted(report.deleted.items())) or "nothing"
                print(f"callscreen serve: retention deleted {deleted} in {report.duration_seconds:.1f} s"
                      + (" (interrupted)" if report.interrupted else ""), file=sys.stderr, flush=True)
        except RetentionBusy:
            pass
        except (StoreError, *STORE_ERRORS) as exc:
            print(f"callscreen serve: retention run failed, will retry: {exc}", file=sys.stderr, flush=True)
        await asyncio.to_thread(halt.wait, min(every.total_seconds(), 3600.0))


def _settle_heap() -> None:
    """Load the number metadata now and move everything alive into the GC's permanent generation.

    phonenumbers' metadata is millions of long-lived objects; left in the collected heap, every
    full collection walks them and stalls all sessions for tens of milliseconds.
    """
    import gc

    from callscreen.numbers import InvalidNumber, normalize

    for sample in ("+12025550123", "+442079460123", "+79991234567"):
        with contextlib.suppress(InvalidNumber):
            normalize(sample, "US")
    gc.collect()
    gc.freeze()


def _registries(client: Any) -> Any:
    try:
        from blocklists.lookup import registry_lookup_for
    except ImportError:
        return None
    return registry_lookup_for(client, background=True)  # a decision never waits for a refresh


def _registry_metrics(client: Any, registry: Any, policies: Any) -> None:
    """Registry freshness gauges (``callscreen_registry_*``) beside the screening metrics."""
    try:
        from blocklists.metrics import RegistryCollector, limits_from_packs
    except ImportError:
        return
    packs = [policies.get(j) for j in policies.jurisdictions()]
    RegistryCollector(client, registry, limits_from_packs(packs))


def supervise(settings: Settings, redis_url: str, multiproc_dir: str, *,
              metrics: tuple[str, int] | None) -> int:
    """Fork ``agi_workers`` servers sharing the port; forward SIGTERM; exit when all have exited.

    A worker that dies on its own takes the others down (exit code 1) so the service
    manager restarts a clean set rather than running short-handed unnoticed.
    ``multiproc_dir`` is prometheus_client's multiprocess folder, already in the environment.
    """
    children: dict[int, int] = {}
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(settings.agi_workers):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = serve_process(settings, redis_url, reuse_port=True)
            finally:
                os._exit(code)
        children[pid] = index
    if metrics is not None and metrics[1]:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        from callscreen.health import start_metrics_server

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)
        from callscreen.metrics import RetentionCollector
        from callscreen.policy import PolicyBook
        from callscreen.store import connect

        metrics_client = connect(redis_url, timeout=5)
        policies = PolicyBook.load(settings.policy_dir)
        _registry_metrics(metrics_client, registry, policies)
        RetentionCollector(metrics_client, registry)
        start_metrics_server(metrics[1], metrics[0], registry, _readiness(metrics_client, policies))
    worst = 0
    while children:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid not in children:
            continue
        del children[pid]
        code = os.waitstatus_to_exitcode(status)
        _mark_dead(pid)
        if not stopping:
            print(f"callscreen serve: worker {pid} exited with {code}; stopping the others", file=sys.stderr)
            forward(signal.SIGTERM, None)
            worst = max(worst, 1)
        worst = max(worst, code if code > 0 else 0)
    shutil.rmtree(multiproc_dir, ignore_errors=True)
    return worst


def _die_with_parent() -> None:
    """Linux: get SIGTERM (and drain) if the supervisor dies without forwarding a signal."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _mark_dead(pid: int) -> None:
    if "prometheus_client" in sys.modules:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
