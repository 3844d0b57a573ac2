"""The decision log's append in a Valkey Cluster: each write and its durability confirmation on
the one connection that made the write.

``WAITAOF`` and ``WAIT`` confirm the writes of *their own connection*. A cluster pipeline routes
keyless commands to whatever node it likes, so they would confirm nothing. Here the commands of
an append are grouped by the node that owns their keys' slot (the shard's stream: the record;
the number's slot: its index writes), each group is sent as one pipeline on one connection of
that node's own client, followed by the durability commands, and the groups go out concurrently
(threads for the sync client, tasks for asyncio), so a decision still costs about one round trip.

Invariants: a group's replies come back in its commands' order; a redirection (MOVED/ASK: the
slot moved), a refused or dropped connection, or a slot no node covers raises
:class:`ClusterAppendError` after asking the client to reload the cluster's topology, so the
next decision goes to the right node without a restart; the caller answers BLOCK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, NoScriptError

from callscreen.store import SCRIPTS, STORE_ERRORS, Command, StoreError, run_pipeline

log = logging.getLogger("callscreen.log_cluster")
_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="log-append")


class ClusterAppendError(StoreError):
    """A group of an append could not be sent to the node owning its slot."""


def command_key(command: Command) -> Any:
    """The key that routes ``command`` (its first key), or None for a keyless one."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return command[3] if int(command[2]) > 0 else None
    if name in ("WAITAOF", "WAIT"):
        return None
    return command[1]


def groups(client: Any, commands: Sequence[Command]) -> list[tuple[Any, list[int]]]:
    """Positions of ``commands`` grouped by the node owning their key's slot, the first command's
    node first. Raises :class:`ClusterAppendError` for a slot no node covers (topology changing)."""
    grouped: dict[str, tuple[Any, list[int]]] = {}
    for position, command in enumerate(commands):
        try:
            node = client.get_node_from_key(command_key(command))
        except STORE_ERRORS as exc:
            raise ClusterAppendError(f"the cluster has no node for the decision log's slot: {exc}") from exc
        grouped.setdefault(node.name, (node, []))[1].append(position)
    return list(grouped.values())


def _checked(replies: list[Any], where: str) -> list[Any]:
    for reply in replies:
        if isinstance(reply, AskError):  # MovedError too: the slot is served elsewhere now
            raise ClusterAppendError(f"{where}: the cluster moved the slot ({reply})")
    return replies


# --- sync -----------------------------------------------------------------------------------

def _send_group(client: RedisCluster, node: Any, commands: list[Command]) -> list[Any]:
    """One pipeline on one connection of ``node``'s own client (NOSCRIPT reloads on that node)."""
    try:
        return _checked(run_pipeline(client.get_redis_connection(node), commands), node.name)
    except StoreError as exc:
        raise ClusterAppendError(f"{node.name}: {exc}") from exc


def send(client: RedisCluster, commands: Sequence[Command],
         durable: Sequence[Command]) -> tuple[list[Any], list[tuple[Sequence[Command], list[Any]]]]:
    """Send ``commands`` grouped by node, each group followed by ``durable``; returns the replies
    in ``commands``' order and each group's (durability commands, replies)."""
    planned = groups(client, commands)
    batches = [[commands[i] for i in positions] + list(durable) for _node, positions in planned]
    futures = [_THREADS.submit(_send_group, client, node, batch)
               for (node, _positions), batch in zip(planned[1:], batches[1:], strict=True)]
    try:
        results = [_send_group(client, planned[0][0], batches[0])] + [f.result() for f in futures]
    except ClusterAppendError:
        refresh(client)
        raise
    return _reassemble(len(commands), planned, results, durable)


def refresh(client: RedisCluster) -> None:
    """Reload the slot map (after a redirection or a lost node); failures are logged, not raised."""
    try:
        client.nodes_manager.initialize()
    except (*STORE_ERRORS, OSError) as exc:
        log.warning("cannot reload the cluster topology: %s", exc)


def _reassemble(count: int, planned: list[tuple[Any, list[int]]], results: list[list[Any]],
                durable: Sequence[Command]) -> tuple[list[Any], list[tuple[Sequence[Command], list[Any]]]]:
    replies: list[Any] = [None] * count
    confirmations = []
    for (_node, positions), result in zip(planned, results, strict=True):
        for position, reply in zip(positions, result, strict=False):
            replies[position] = reply
        confirmations.append((durable, result[len(positions):]))
    return replies, confirmations


# --- asyncio --------------------------------------------------------------------------------

async def _pipeline_async(node: Any, commands: list[Command]) -> list[Any]:
    """One pipeline on one connection of an asyncio cluster node. A connection left mid-reply
    (an error, or the decision's deadline cancelling us) is closed, never reused."""
    connection = node.acquire_connection()
    done = False
    try:
        await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for command in commands:
            try:
                replies.append(await node.parse_response(connection, command[0]))
            except redis.ResponseError as exc:
                replies.append(exc)
        done = True
        return replies
    finally:
        if not done:
            with contextlib.suppress(Exception):
                await connection.disconnect()
        node.release(connection)


async def _send_group_async(node: Any, commands: list[Command]) -> list[Any]:
    try:
        replies = await _pipeline_async(node, commands)
        missing = [i for i, reply in enumerate(replies)
                   if isinstance(reply, NoScriptError) and commands[i][1] in SCRIPTS]
        if missing:  # the node restarted or failed over: load the scripts there, resend those
            for sha in {commands[i][1] for i in missing}:
                await node.execute_command("SCRIPT", "LOAD", SCRIPTS[sha])
            again = await _pipeline_async(node, [commands[i] for i in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        return _checked(replies, node.name)
    except (*STORE_ERRORS, OSError) as exc:
        raise ClusterAppendError(f"{node.name}: store unavailable: {exc}") from exc


async def send_async(client: Any, commands: Sequence[Command],
                     durable: Sequence[Command]) -> tuple[list[Any], list[tuple[Sequence[Command], list[Any]]]]:
    """:func:`send` for ``redis.asyncio.cluster.RedisCluster``."""
    try:
        await client.initialize()  # the slot map, if nothing has used this client yet (else a no-op)
    except (*STORE_ERRORS, OSError) as exc:
        raise ClusterAppendError(f"the cluster's layout cannot be read: {exc}") from exc
    planned = groups(client, commands)
    batches = [[commands[i] for i in positions] + list(durable) for _node, positions in planned]
    try:
        results = await asyncio.gather(*(_send_group_async(node, batch)
                                         for (node, _positions), batch in zip(planned, batches, strict=True)))
    except ClusterAppendError:
        await refresh_async(client)
        raise
    return _reassemble(len(commands), planned, list(results), durable)


async def refresh_async(client: Any) -> None:
    try:
        await client.nodes_manager.initialize()
    except (*STORE_ERRORS, OSError) as exc:
        log.warning("cannot reload the cluster topology: %s", exc)
