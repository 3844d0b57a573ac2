"""``callscreen run``: the whole service on one machine; ``callscreen demo seed``.

Starts (or reuses) the embedded store when no Redis URL is configured, seeds the demo data
with ``--demo``, then runs the FastAGI server and the dashboard as child processes and
stops them all on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Any

from callscreen.cli.context import EXIT_OK, CliContext, embedded_url_file, running_embedded_url
from callscreen.embedded import EmbeddedServer


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the FastAGI server and the dashboard (embedded store by default)")
    parser.add_argument("--demo", action="store_true", help="seed the demo campaigns and consents first")
    parser.add_argument("--no-dashboard", action="store_true")
    parser.add_argument("--no-agi", action="store_true")
    parser.set_defaults(handler=run_all)
    demo = subparsers.add_parser("demo", help="demo data")
    commands = demo.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    seed = commands.add_parser("seed", help="write the demo campaigns and consents")
    seed.set_defaults(handler=seed_demo)


def seed_demo(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.demo import seed

    for line in seed(context.store):
        print(f"seeded {line}")
    return EXIT_OK


def _start_store(context: CliContext) -> tuple[str, EmbeddedServer | None]:
    settings = context.settings
    if settings.redis_url:
        return settings.redis_url, None
    url = running_embedded_url(settings)
    if url:
        return url, None
    server = EmbeddedServer(settings.data_dir / "valkey").start()
    url_file = embedded_url_file(settings)
    url_file.write_text(server.url + "\n")
    print(f"embedded store: valkey-server on {server.url}, data in {server.data_dir}", flush=True)
    return server.url, server


def run_all(args: argparse.Namespace, context: CliContext) -> int:
    url, server = _start_store(context)
    context.redis_url = url  # the demo seed writes to this server
    children: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "CALLSCREEN_REDIS_URL": url, "CALLSCREEN_DATA_DIR": str(context.settings.data_dir)}
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if args.demo:
            seed_demo(args, context)
        settings = context.settings
        if not args.no_agi and importlib.util.find_spec("callscreen.cli.serve"):
            children.append(subprocess.Popen([sys.executable, "-m", "callscreen.cli.main", "serve"], env=env))
            print(f"FastAGI server: agi://{settings.agi_host}:{settings.agi_port}/screen "
                  f"(metrics on :{settings.metrics_port}/metrics)", flush=True)
        if not args.no_dashboard and importlib.util.find_spec("dashboard.wsgi"):
            bind = f"{settings.dashboard_host}:{settings.dashboard_port}"
            web_env = dict(env)
            if settings.dashboard_host in ("127.0.0.1", "localhost", "::1"):
                # plain http on loopback: a Secure cookie would never come back from the browser
                web_env.setdefault("CALLSCREEN_DASHBOARD_SECURE_COOKIES", "0")
            children.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", "2", "--threads", "4",
                 "--access-logfile", "-", "dashboard.wsgi:app"], env=web_env))
            print(f"dashboard: http://{bind}/", flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"callscreen: {child.args[-1]} exited with {child.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if server is not None:
            embedded_url_file(context.settings).unlink(missing_ok=True)
            server.stop()
    return EXIT_OK
