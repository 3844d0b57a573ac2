"""Liveness and readiness, for ``/healthz`` and ``/readyz`` beside ``/metrics``.

- ``/healthz`` answers 200 while the process serves HTTP: restart it when this fails.
- ``/readyz`` answers 200 only when the service can answer ALLOW with a proven record: the store
  answers a PING, the store's durability is confirmed (see :mod:`callscreen.durability`), and every
  do-not-call registry that a jurisdiction in use requires is loaded and fresh. Otherwise 503 with
  the failing checks, so a load balancer (or the dialer) sends calls elsewhere. Not ready does not
  mean wrong answers: screening still fails closed; it means mostly BLOCKs.

Everything is injectable (the store client, the policies, the durability and registry probes, the
clock) so tests drive it with real components. Results are kept for ``cache_seconds`` so a busy
prober costs the store one PING per second at most.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from callscreen.store import CAMPAIGNS_KEY, STORE_ERRORS, campaign_key

JSON = [  # copied per response: wsgiref adds Content-Length to the list it is given
    ("Content-Type", "application/json"), ("Cache-Control", "no-store")]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Readiness:
    """The checks behind ``/readyz``; :meth:`report` is cached for ``cache_seconds``."""

    def __init__(self, client: redis.Redis, policies: Any, *,
                 durability: Callable[[], str | None] | None = None,
                 registry_status: Callable[[Iterable[Any]], list[Any]] | None = None,
                 cache_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.policies = policies
        self.durability = durability
        self.registry_status = registry_status
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, bool, list[Check]] | None = None

    def report(self) -> tuple[bool, list[Check]]:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                checks = self.checks()
                self._cached = (now, all(c.ok for c in checks), checks)
            return self._cached[1], self._cached[2]

    def checks(self) -> list[Check]:
        store = self._store()
        found = [store]
        if self.durability is not None:
            refusal = self.durability()
            found.append(Check("durability", refusal is None, refusal or "the store confirms writes on disk"))
        if self.registry_status is not None:
            found.append(self._registries() if store.ok else Check("registries", False, "store unreachable"))
        return found

    def _store(self) -> Check:
        try:
            self.client.ping()
        except STORE_ERRORS as exc:
            return Check("store", False, f"no answer to PING: {exc}")
        return Check("store", True, "answers PING")

    def _jurisdictions_in_use(self) -> set[str]:
        ids = sorted(_text(i) for i in self.client.smembers(CAMPAIGNS_KEY))
        raw = self.client.mget([campaign_key(i) for i in ids]) if ids else []
        return {str(json.loads(r).get("jurisdiction", "")).upper() for r in raw if r}

    def _registries(self) -> Check:
        try:
            packs = [p for p in (self.policies.get(j) for j in self._jurisdictions_in_use()) if p is not None]
            rows = self.registry_status(packs) if packs else []  # type: ignore[misc]
        except (*STORE_ERRORS, ValueError) as exc:
            return Check("registries", False, f"cannot read registry status: {exc}")
        required = {r for pack in packs for r in pack.all_registries()}
        bad = [f"{row.registry_id} {row.state}" for row in rows
               if row.registry_id in required and row.state in ("missing", "stale")]
        if bad:
            return Check("registries", False, "required registries not fresh: " + ", ".join(sorted(bad)))
        return Check("registries", True, f"{len(required)} required registries fresh" if required
                     else "no jurisdiction in use requires a registry")


def health_app(readiness: Readiness | None, fallback: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A WSGI app answering ``/healthz`` and ``/readyz``; other paths go to ``fallback``
    (the Prometheus app on the metrics port) or 404."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", list(JSON))
            return [b'{"status": "ok"}']
        if path == "/readyz":
            ready, checks = readiness.report() if readiness else (True, [])
            start_response("200 OK" if ready else "503 Service Unavailable", list(JSON))
            body = {"ready": ready, "checks": [asdict(c) for c in checks]}
            return [json.dumps(body).encode()]
        if fallback is not None:
            return fallback(environ, start_response)
        start_response("404 Not Found", list(JSON))
        return [b'{"error": "not_found"}']

    return app


def start_metrics_server(port: int, addr: str, registry: Any, readiness: Readiness | None) -> Any:
    """Serve ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` on one port, in a daemon
    thread; returns the server (``shutdown()`` stops it)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes and probes every few seconds are not worth a log line each."""

    app = health_app(readiness, make_wsgi_app(registry))
    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server
