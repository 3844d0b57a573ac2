"""The decision log in a Valkey Cluster: each shard in its own slot (spread over the masters), and
an append's durability confirmation on the very connection that wrote it, on each node it wrote to."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from datetime import UTC, datetime

import pytest

from callscreen.decision_log import DecisionLog, LogRecord, LogWriteError
from callscreen.durability import confirmation
from callscreen.log_shards import LogShard
from callscreen.store import connect, number_key
from tests_support import TEST_LOG_KEY, writer_on

SHARDS = 12


def record(name: str, digest: str) -> LogRecord:
    return LogRecord(id=name, at=datetime.now(UTC), campaign_id="spring", number_digest=digest,
                     result="ALLOW", reason="consent")


@pytest.fixture
def cluster_client(valkey_cluster):
    client = connect(valkey_cluster.url, timeout=10)
    client.flushall()
    yield client
    client.close()


def node_port(client, key: str) -> int:
    return int(client.get_node_from_key(key).port)


def digest_elsewhere(client, shard: LogShard) -> str:
    """A number digest whose per-number keys live on another master than ``shard``'s stream."""
    home = node_port(client, shard.stream)
    for n in range(1000):
        digest = f"{n:032x}"
        if node_port(client, number_key(digest, "decisions")) != home:
            return digest
    raise AssertionError  # pragma: no cover


class Monitor:
    """MONITOR on one node (a raw socket), collecting (client address, command) until stopped."""

    LINE = re.compile(rb'^\+[0-9.]+ \[\d+ ([^\]]+)\] "([A-Za-z]+)"')

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.seen: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self.sock.sendall(b"MONITOR\r\n")
        self._buffer = b""
        while b"\r\n" not in self._buffer:
            self._buffer += self.sock.recv(4096)
        ok, _, self._buffer = self._buffer.partition(b"\r\n")
        assert ok == b"+OK"
        self.sock.settimeout(0.1)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            *lines, self._buffer = (self._buffer + chunk).split(b"\r\n")
            for line in lines:
                found = self.LINE.match(line)
                if found:
                    self.seen.append((found.group(1).decode(), found.group(2).decode().upper()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def connections_of(self, command: str) -> set[str]:
        return {addr for addr, name in self.seen if name == command}


def test_shards_spread_over_every_master(cluster_client):
    ports = {node_port(cluster_client, LogShard(i).stream) for i in range(SHARDS)}
    assert len(ports) == 3


def _append_and_watch(cluster_client, write) -> tuple[Monitor, Monitor, str]:
    writer = writer_on(cluster_client, 5, shards=SHARDS)
    digest = digest_elsewhere(cluster_client, writer.shard)
    rec = record("d-1", digest)
    with Monitor(node_port(cluster_client, writer.shard.stream)) as at_stream, \
            Monitor(node_port(cluster_client, number_key(digest, "decisions"))) as at_number:
        write(writer, rec, writer.decision_index_commands(rec, attempt=True), confirmation(1, 2000))
        deadline = datetime.now(UTC).timestamp() + 5
        while datetime.now(UTC).timestamp() < deadline and not (
                at_stream.connections_of("WAIT") and at_number.connections_of("WAIT")):
            threading.Event().wait(0.05)
    return at_stream, at_number, digest


def _one_connection(monitor: Monitor) -> str:
    wrote = monitor.connections_of("EVALSHA") | monitor.connections_of("EVAL")
    confirmed = monitor.connections_of("WAITAOF") & monitor.connections_of("WAIT")
    assert len(wrote) == 1 and wrote == confirmed, monitor.seen
    return wrote.pop()


def test_an_append_is_confirmed_on_each_node_by_the_connection_that_wrote_there(cluster_client):
    at_stream, at_number, digest = _append_and_watch(
        cluster_client, lambda log, rec, extra, durable: log.append(rec, extra, durable))
    assert _one_connection(at_stream) and _one_connection(at_number)
    assert DecisionLog(cluster_client, TEST_LOG_KEY).get("d-1").shard == 5
    assert cluster_client.zscore(number_key(digest, "attempts"), "d-1") is not None


def test_an_asyncio_append_is_confirmed_the_same_way(valkey_cluster, cluster_client):
    def write(log, rec, extra, durable):
        async def run():
            log.aclient = connect(valkey_cluster.url, asyncio=True, timeout=10)
            try:
                await log.append_async(rec, extra, durable)
            finally:
                await log.aclient.aclose()
        asyncio.run(run())

    at_stream, at_number, digest = _append_and_watch(cluster_client, write)
    assert _one_connection(at_stream) and _one_connection(at_number)
    assert cluster_client.zscore(number_key(digest, "decisions"), "d-1") is not None


def _misroute(client, key: str) -> None:
    """Make ``client`` believe another master serves ``key``'s slot (as after a resharding)."""
    slot = client.keyslot(key)
    right = client.nodes_manager.slots_cache[slot][0]
    wrong = next(node for node in client.get_primaries() if node.name != right.name)
    client.nodes_manager.slots_cache[slot] = [wrong]


def test_a_moved_slot_fails_one_append_and_the_next_goes_to_the_right_node(cluster_client):
    writer = writer_on(cluster_client, 3, shards=SHARDS)
    writer.append(record("d-0", "ab" * 16))
    _misroute(cluster_client, writer.shard.stream)
    with pytest.raises(LogWriteError, match="moved"):
        writer.append(record("d-1", "ab" * 16))
    writer.append(record("d-2", "ab" * 16))  # the topology was reloaded: no restart needed
    log = DecisionLog(cluster_client, TEST_LOG_KEY)
    assert [r.id for r in log.scan(newest_first=False)] == ["d-0", "d-2"] and log.verify().ok


def test_an_asyncio_append_recovers_from_a_moved_slot_too(valkey_cluster, cluster_client):
    writer = writer_on(cluster_client, 3, shards=SHARDS)

    async def run() -> None:
        writer.aclient = connect(valkey_cluster.url, asyncio=True, timeout=10)
        try:
            await writer.append_async(record("d-0", "ab" * 16))
            _misroute(writer.aclient, writer.shard.stream)
            with pytest.raises(LogWriteError, match="moved"):
                await writer.append_async(record("d-1", "ab" * 16))
            await writer.append_async(record("d-2", "ab" * 16))
        finally:
            await writer.aclient.aclose()

    asyncio.run(run())
    assert DecisionLog(cluster_client, TEST_LOG_KEY).verify().ok


def test_an_unreachable_node_fails_the_append_closed(cluster_client):
    from redis.cluster import ClusterNode

    from tests_support import free_port

    writer = writer_on(cluster_client, 7, shards=SHARDS)
    writer.append(record("d-0", "ab" * 16))
    slot = cluster_client.keyslot(writer.shard.stream)
    dead = ClusterNode("127.0.0.1", free_port(), server_type="primary")
    cluster_client.nodes_manager.nodes_cache[dead.name] = dead
    cluster_client.nodes_manager.slots_cache[slot] = [dead]
    with pytest.raises(LogWriteError):
        writer.append(record("d-1", "ab" * 16))
    writer.append(record("d-2", "ab" * 16))
    assert DecisionLog(cluster_client, TEST_LOG_KEY).get("d-2") is not None


def test_a_fresh_asyncio_client_can_append_first_thing(valkey_cluster, cluster_client):
    writer = writer_on(cluster_client, 0, shards=SHARDS)  # shard 0: no registration before the append

    async def run() -> None:
        writer.aclient = connect(valkey_cluster.url, asyncio=True, timeout=10)
        try:
            await writer.append_async(record("d-0", "ab" * 16))
        finally:
            await writer.aclient.aclose()

    asyncio.run(run())
    assert DecisionLog(cluster_client, TEST_LOG_KEY).get("d-0") is not None
