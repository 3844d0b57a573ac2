"""Where the store is: one Redis/Valkey server or a Redis Cluster, and what differs between them.

A cluster is named by a ``redis+cluster://`` URL (``rediss+cluster://`` for TLS) listing one or
more seed nodes: ``redis+cluster://[user:password@]host:port[,host:port…][/][?option=value…]``.
The client learns every other node from the seeds. A cluster has only database 0, so a path
other than ``/`` or ``/0`` is refused. Options are redis-py's URL options (``?ssl_cert_reqs=…``).

Invariants: :func:`parse_store_url` accepts exactly what :func:`callscreen.store.connect` can
connect to, and its error names what is wrong; a single-server URL is passed to redis-py as is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class StoreAddress:
    """A parsed store URL: ``nodes`` is empty for a single server, the seed nodes of a cluster."""

    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # redis-py connection options of a cluster URL

    @property
    def cluster(self) -> bool:
        return bool(self.nodes)

    def __repr__(self) -> str:
        return f"StoreAddress({_safe(self.url)!r}, nodes={self.nodes!r})"


def parse_store_url(url: str) -> StoreAddress:
    """Parse a store URL, raising ValueError with a clear message if it cannot be used."""
    from redis.connection import parse_url

    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in SINGLE_SCHEMES:
        parse_url(url)  # redis-py's own check of a single-server URL
        return StoreAddress(url)
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"{_safe(url)!r}: a store URL starts with one of "
                         + ", ".join(f"{s}://" for s in SINGLE_SCHEMES + CLUSTER_SCHEMES))
    body, _, query = url.partition("://")[2].partition("?")
    authority, _, path = body.partition("/")
    credentials, _, hosts = authority.rpartition("@")
    nodes = tuple(_node(part, url) for part in hosts.split(",") if part.strip())
    if not nodes:
        raise ValueError(f"{_safe(url)!r}: a cluster URL names at least one seed node as host:port")
    if path.strip("/") not in ("", "0"):
        raise ValueError(f"{_safe(url)!r}: a cluster has only database 0 (not /{path.strip('/')})")
    single = "rediss" if scheme == "rediss+cluster" else "redis"
    auth = f"{credentials}@" if credentials else ""
    options = parse_url(f"{single}://{auth}{nodes[0][0]}:{nodes[0][1]}/0" + (f"?{query}" if query else ""))
    for name in ("host", "port", "db", "connection_class"):
        options.pop(name, None)
    if scheme == "rediss+cluster":
        options["ssl"] = True
    return StoreAddress(url, nodes, options)


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and url.partition("://")[0].lower() in CLUSTER_SCHEMES


def _node(text: str, url: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{_safe(url)!r}: seed node {text.strip()!r} is not host:port")
    return host, int(port)


def _safe(url: str) -> str:
    """The URL with any password hidden (errors are printed and logged)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, after = rest.rpartition("@")
        user, colon, _password = credentials.partition(":")
        return f"{scheme}{sep}{user}{':***' if colon else ''}@{after}"
    return url


class StoreCluster(RedisCluster):
    """redis-py's cluster client whose MGET takes keys in any slots, as on one server: one MGET per
    slot, answers in the order asked (not atomic across slots, like redis-py's DEL and EXISTS of
    several keys on a cluster). Campaigns, complaints, requests and registry pointers are read so."""

    def mget(self, keys: Any, *args: Any) -> list[Any]:
        return self.mget_nonatomic(keys, *args)


class AsyncStoreCluster(AsyncRedisCluster):
    """The asyncio twin of :class:`StoreCluster`."""

    async def mget(self, keys: Any, *args: Any) -> list[Any]:  # type: ignore[override]
        return await self.mget_nonatomic(keys, *args)


def is_cluster_client(client: Any) -> bool:
    """Whether ``client`` (sync or asyncio) talks to a Redis Cluster. Answered once per client
    class: redis-py's cluster classes are protocols, whose ``isinstance`` costs microseconds, and
    every round trip asks."""
    return _is_cluster_class(type(client))


@cache
def _is_cluster_class(cls: type) -> bool:
    return issubclass(cls, RedisCluster | AsyncRedisCluster)


def scan_keys(client: Any, match: str, count: int = 1000) -> Iterator[bytes]:
    """Every key matching ``match``: on a cluster, every primary is scanned (a key is listed once)."""
    yield from client.scan_iter(match=match, count=count)


def write_pipeline(client: Any) -> Any:
    """A pipeline for writes that belong together, sent in one round trip.

    On one server it is a MULTI/EXEC transaction. On a cluster the keys usually lie in several
    slots, which no transaction spans: it is then a plain pipeline (each node gets its share in
    order; an error still raises on ``execute``). Use it only where a reader copes with seeing
    part of the writes — an index entry whose record is missing is skipped, a record missing
    from an index is listed again by the next write — never where one state must replace another
    at once (that is one key's write, or one slot's transaction)."""
    return client.pipeline(transaction=not is_cluster_client(client))


def masters_run(client: Any, commands: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Keyless commands (CONFIG GET, INFO, …) run on every master of a cluster, one pipeline per
    master: ``{"host:port": replies}``; a failed command's reply is its exception."""
    from callscreen.store import run_pipeline

    return {node.name: run_pipeline(client.get_redis_connection(node), commands) for node in client.get_primaries()}


async def masters_run_async(client: Any, commands: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """:func:`masters_run` with an asyncio cluster client (the masters are asked at once)."""
    import asyncio

    from callscreen.store import STORE_ERRORS, StoreError

    async def one(node: Any, command: tuple[Any, ...]) -> Any:
        try:
            return await client.execute_command(*command, target_nodes=node)
        except ResponseError as exc:
            return exc
        except STORE_ERRORS as exc:
            raise StoreError(f"store unavailable: {exc}") from exc

    try:
        await client.initialize()  # an asyncio cluster client learns its nodes on first use
    except STORE_ERRORS as exc:
        raise StoreError(f"store unavailable: {exc}") from exc
    nodes = client.get_primaries()
    replies = await asyncio.gather(*(one(node, command) for node in nodes for command in commands))
    width = len(commands)
    return {node.name: list(replies[i * width:(i + 1) * width]) for i, node in enumerate(nodes)}
