"""``callscreen run``: the whole service on one machine; ``callscreen demo seed``.

Starts (or reuses) the embedded store when no Redis URL is configured, seeds the demo data
with ``--demo``, then runs the FastAGI server and the dashboard as child processes.

Invariants: each child runs in its own session and dies with this process, so a terminal's
Ctrl-C reaches only ``callscreen run``; one SIGINT or SIGTERM stops the services (SIGTERM to
their process groups, SIGKILL after their grace period) and then the store, in that order; a
second signal cuts the grace periods short. Busy ports are refused before anything starts.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from callscreen.cli.context import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_SERVICE_FAILED,
    CliContext,
    CliError,
    embedded_url_file,
    running_embedded_url,
)
from callscreen.config import Settings
from callscreen.embedded import EmbeddedServer
from callscreen.processes import port_in_use, signal_group, spawn, stop_group

DASHBOARD_GRACE = 5.0  # gunicorn's own graceful timeout is shorter (below)
AGI_GRACE = 15.0  # in-flight sessions finish: two read timeouts plus the decision deadline
STORE_GRACE = 10.0
READY_TIMEOUT = 60.0


@dataclass
class Service:
    """One supervised child: what it is, where it listens, how long it may take to stop."""

    name: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    grace: float


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run the FastAGI server and the dashboard (embedded store by default)",
        description="Run the store (embedded unless CALLSCREEN_REDIS_URL is set), the FastAGI server "
                    "and the dashboard until Ctrl-C or SIGTERM; a second Ctrl-C stops at once.")
    parser.add_argument("--demo", action="store_true",
                        help="seed the demo campaigns, consents and registries (once: later runs keep them)")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    parser.add_argument("--no-agi", action="store_true", help="do not start the FastAGI server")
    parser.add_argument("--dashboard-port", type=_port, help="dashboard port (setting dashboard_port, default 8080)")
    parser.add_argument("--agi-port", type=_port, help="FastAGI port (setting agi_port, default 4573)")
    parser.add_argument("--metrics-port", type=_port,
                        help="Prometheus /metrics port of the FastAGI server, 0 for none (setting metrics_port, "
                             "default 9464)")
    parser.set_defaults(handler=run_all)
    demo = subparsers.add_parser("demo", help="demo data")
    commands = demo.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    seed = commands.add_parser("seed", help="write the demo campaigns, consents and registries")
    seed.add_argument("--reset", action="store_true",
                      help="write them again even if they are there (undoes changes to the demo records)")
    seed.set_defaults(handler=seed_demo)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def seed_demo(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.demo import seed

    for line in seed(context.store, context.client, reset=getattr(args, "reset", False)):
        print(line, flush=True)
    return EXIT_OK


def _effective(args: argparse.Namespace, settings: Settings) -> Settings:
    changes = {name: value for name, value in (("dashboard_port", args.dashboard_port), ("agi_port", args.agi_port),
                                               ("metrics_port", args.metrics_port)) if value is not None}
    return replace(settings, **changes)


# (what listens there, setting, option) for each port `run` binds
_PORTS = (
    ("dashboard", "dashboard_host", "dashboard_port", "--dashboard-port"),
    ("FastAGI server", "agi_host", "agi_port", "--agi-port"),
    ("FastAGI metrics", "agi_host", "metrics_port", "--metrics-port"),
)


def check_ports(settings: Settings, args: argparse.Namespace) -> None:
    """Raise CliError naming the option and setting to change for the first busy port."""
    wanted = {"dashboard": not args.no_dashboard, "FastAGI server": not args.no_agi,
              "FastAGI metrics": not args.no_agi}
    for what, host_name, port_name, option in _PORTS:
        host, port = getattr(settings, host_name), getattr(settings, port_name)
        if wanted[what] and port_in_use(host, port):
            env = "CALLSCREEN_" + port_name.upper()
            raise CliError(f"port {port} on {host} ({what}) is already in use — is another callscreen running? "
                           f"Stop it, or choose another port: callscreen run {option} PORT "
                           f"(or {env}=PORT make run; setting {port_name})", EXIT_CONFIG)


def _start_store(context: CliContext) -> tuple[str, EmbeddedServer | None]:
    settings = context.settings
    if settings.redis_url:
        return settings.redis_url, None
    url = running_embedded_url(settings)
    if url:
        print(f"store: reusing the embedded valkey-server on {url}", flush=True)
        return url, None
    server = EmbeddedServer(settings.data_dir / "valkey").start()
    embedded_url_file(settings).write_text(server.url + "\n")
    print(f"store: embedded valkey-server on {server.url}, data in {server.data_dir}", flush=True)
    return server.url, server


class Signals:
    """SIGINT/SIGTERM only count here; the stopping happens in the main loop, never in a handler."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, _frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            print(f"\ncallscreen: {signal.Signals(signum).name}: stopping (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)

    @property
    def stopping(self) -> bool:
        return self.count >= 1

    @property
    def forced(self) -> bool:
        return self.count >= 2


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_ready(services: list[Service], signals: Signals) -> Service | None:
    """Wait until every service accepts connections; returns the first that exited instead."""
    pending = list(services)
    deadline = time.monotonic() + READY_TIMEOUT
    while pending and not signals.stopping and time.monotonic() < deadline:
        for service in list(pending):
            if service.process.poll() is not None:
                return service
            if _listening(service.host, service.port):
                pending.remove(service)
        time.sleep(0.1)
    return None


def _start_services(args: argparse.Namespace, settings: Settings, url: str) -> list[Service]:
    env = {**os.environ, "CALLSCREEN_REDIS_URL": url, "CALLSCREEN_DATA_DIR": str(settings.data_dir),
           "CALLSCREEN_AGI_PORT": str(settings.agi_port), "CALLSCREEN_METRICS_PORT": str(settings.metrics_port),
           "CALLSCREEN_DASHBOARD_PORT": str(settings.dashboard_port)}
    services = []
    if not args.no_agi and importlib.util.find_spec("callscreen.cli.serve"):
        process = spawn([sys.executable, "-m", "callscreen.cli.main", "serve"], env)
        services.append(Service("FastAGI server", process, settings.agi_host, settings.agi_port, AGI_GRACE))
    if not args.no_dashboard and importlib.util.find_spec("dashboard.wsgi"):
        web_env = dict(env)
        if settings.dashboard_host in ("127.0.0.1", "localhost", "::1"):
            # plain http on loopback: a Secure cookie would never come back from the browser
            web_env.setdefault("CALLSCREEN_DASHBOARD_SECURE_COOKIES", "0")
        bind = f"{settings.dashboard_host}:{settings.dashboard_port}"
        process = spawn([sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", "2", "--threads", "4",
                         "--graceful-timeout", "3", "--access-logfile", "-", *_no_control_socket(),
                         "dashboard.wsgi:app"], web_env)
        services.append(Service("dashboard", process, settings.dashboard_host, settings.dashboard_port,
                                DASHBOARD_GRACE))
    return services


def _no_control_socket() -> list[str]:
    """gunicorn 27+ opens a control socket in the home folder, shared by every instance: not ours."""
    from importlib.metadata import version

    major = version("gunicorn").split(".")[0]
    return ["--no-control-socket"] if major.isdigit() and int(major) >= 27 else []


def _announce(services: list[Service], settings: Settings) -> None:
    for service in services:
        if service.name == "dashboard":
            print(f"dashboard: http://{service.host}:{service.port}/", flush=True)
        else:
            metrics = f" (metrics on :{settings.metrics_port}/metrics)" if settings.metrics_port else ""
            print(f"FastAGI server: agi://{service.host}:{service.port}/screen{metrics}", flush=True)
    print("ready; press Ctrl-C to stop", flush=True)


def _stop(services: list[Service], server: EmbeddedServer | None, settings: Settings, signals: Signals) -> None:
    """Services first (all asked at once, each reaped within its grace), the store last."""
    for service in services:
        if service.process.poll() is None:
            signal_group(service.process, signal.SIGTERM)
    for service in services:
        stop_group(service.process, service.grace, lambda: signals.forced)
    if server is not None and server.process is not None:
        stop_group(server.process, STORE_GRACE, lambda: signals.forced)
        embedded_url_file(settings).unlink(missing_ok=True)
        server.stop()


def run_all(args: argparse.Namespace, context: CliContext) -> int:
    settings = _effective(args, context.settings)
    check_ports(settings, args)
    signals = Signals()
    for signum in (signal.SIGINT, signal.SIGTERM):  # extra signals are only counted
        signal.signal(signum, signals)
    services: list[Service] = []
    server: EmbeddedServer | None = None
    failed: Service | None = None
    try:
        url, server = _start_store(context)
        context.redis_url = url  # the demo seed writes to this server
        if args.demo and not signals.stopping:
            seed_demo(args, context)
        if not signals.stopping:
            services = _start_services(args, settings, url)
            failed = _wait_ready(services, signals)
        if failed is None and not signals.stopping:
            _announce(services, settings)
        while failed is None and not signals.stopping:
            failed = next((s for s in services if s.process.poll() is not None), None)
            time.sleep(0.1)
    finally:
        _stop(services, server, settings, signals)
        for signum in (signal.SIGINT, signal.SIGTERM):  # everything is stopped: a late extra Ctrl-C must
            signal.signal(signum, signal.SIG_IGN)       # not kill the exit (Python resets its handlers then)
    if failed is not None:
        print(f"callscreen: the {failed.name} exited with {failed.process.returncode}; everything is stopped",
              file=sys.stderr)
        return EXIT_SERVICE_FAILED
    print("callscreen: stopped", file=sys.stderr)
    return EXIT_OK
