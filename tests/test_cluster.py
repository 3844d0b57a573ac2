"""A Redis Cluster as the store: the cluster URL, connect(), the embedded cluster, scripts on every node."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from callscreen.cluster import is_cluster_client, parse_store_url
from callscreen.config import ConfigError, load_settings
from callscreen.store import SCRIPTS, StoreError, connect, run_pipeline, run_pipeline_async, script

# A script whose only job is to be missing from the servers' script caches until first used.
ECHO_SHA = script("return redis.call('GET', KEYS[1])")


def test_a_cluster_url_names_its_seed_nodes_and_keeps_credentials_out_of_sight() -> None:
    address = parse_store_url("rediss+cluster://app:s3cret@10.0.0.1:6379,[::1]:7000/?ssl_cert_reqs=none")
    assert address.cluster
    assert address.nodes == (("10.0.0.1", 6379), ("::1", 7000))
    assert address.options == {"username": "app", "password": "s3cret", "ssl": True, "ssl_cert_reqs": "none"}
    assert "s3cret" not in repr(address)
    assert not parse_store_url("redis://127.0.0.1:6379/2").cluster


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
    ("redis+cluster://app:s3cret@127.0.0.1", "is not host:port"),
    ("redis+cluster:///", "at least one seed node"),
    ("http://127.0.0.1:7000", r"redis\+cluster://"),
])
def test_a_store_url_that_cannot_be_used_fails_loading_the_settings(tmp_path, url, message) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(environ={"CALLSCREEN_REDIS_URL": url, "CALLSCREEN_DATA_DIR": str(tmp_path)})
    assert "s3cret" not in str(caught.value)


def test_embedded_cluster_has_three_masters_each_with_a_replica_in_sync(valkey_cluster) -> None:
    for node in valkey_cluster.nodes:
        client = redis.Redis(port=node.port, decode_responses=True)
        assert client.cluster("INFO")["cluster_state"] == "ok"
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        client.close()
    roles = [redis.Redis(port=n.port).info("replication")["role"] for n in valkey_cluster.nodes]
    assert roles == ["master"] * 3 + ["slave"] * 3
    replica = redis.Redis(port=valkey_cluster.replicas[0].port, decode_responses=True).info("replication")
    assert replica["master_link_status"] == "up"


def test_connect_builds_a_cluster_client_for_a_cluster_url(valkey_cluster) -> None:
    client = connect(valkey_cluster.url)
    assert isinstance(client, RedisCluster) and is_cluster_client(client)
    keys = [f"spread:{i}" for i in range(20)]  # in many slots, on every master
    assert len({client.keyslot(k) for k in keys}) == 20
    client.mset_nonatomic(dict.fromkeys(keys, "v"))
    assert run_pipeline(client, [("GET", k) for k in keys]) == [b"v"] * 20
    client.flushall()
    client.close()

    async def ping() -> bool:
        aclient = connect(valkey_cluster.url, asyncio=True)
        assert isinstance(aclient, AsyncRedisCluster) and is_cluster_client(aclient)
        try:
            return bool(await aclient.ping())
        finally:
            await aclient.aclose()

    assert asyncio.run(ping())


def test_scripts_missing_on_every_node_are_loaded_on_every_node_and_the_commands_resent(valkey_cluster) -> None:
    client = connect(valkey_cluster.url)
    keys = [f"scripted:{i}" for i in range(12)]
    client.mset_nonatomic({k: k for k in keys})
    client.script_flush()  # every node forgets every script, as after a restart
    commands = [("EVALSHA", ECHO_SHA, 1, k) for k in keys]
    assert run_pipeline(client, commands) == [k.encode() for k in keys]
    for node in valkey_cluster.masters:
        assert redis.Redis(port=node.port).script_exists(ECHO_SHA) == [True]
    client.script_flush()

    async def again() -> list[object]:
        aclient = connect(valkey_cluster.url, asyncio=True)
        try:
            return await run_pipeline_async(aclient, commands)
        finally:
            await aclient.aclose()

    assert asyncio.run(again()) == [k.encode() for k in keys]
    assert SCRIPTS[ECHO_SHA]
    client.flushall()
    client.close()


def test_an_unreachable_cluster_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="store unavailable"):  # a sync client needs a seed node at once
        connect("redis+cluster://127.0.0.1:1/")

    async def screen() -> None:
        await run_pipeline_async(connect("redis+cluster://127.0.0.1:1/", asyncio=True), [("GET", "x")])

    with pytest.raises(StoreError, match="store unavailable"):
        asyncio.run(screen())


def test_mget_reads_keys_of_every_slot_in_the_order_asked(valkey_cluster) -> None:
    client = connect(valkey_cluster.url)
    keys = [f"campaign:{i}" for i in range(30)]
    client.mset_nonatomic({k: k.upper() for k in keys[::2]})
    assert client.mget(keys) == [k.upper().encode() if i % 2 == 0 else None for i, k in enumerate(keys)]
    client.flushall()
    client.close()


def test_the_durability_gate_reads_every_master_and_names_one_that_refuses(valkey_cluster) -> None:
    from callscreen.durability import CONFIRMED, REFUSED, DurabilityGate

    client = connect(valkey_cluster.url)
    assert DurabilityGate().check(client).state == CONFIRMED
    weak = redis.Redis(port=valkey_cluster.masters[1].port)
    weak.config_set("appendfsync", "no")
    try:
        verdict = DurabilityGate().check(client)

        async def check_async() -> object:
            aclient = connect(valkey_cluster.url, asyncio=True)
            try:
                return await DurabilityGate().check_async(aclient)
            finally:
                await aclient.aclose()

        verdict_async = asyncio.run(check_async())
    finally:
        weak.config_set("appendfsync", "always")
    for seen in (verdict, verdict_async):
        assert seen.state == REFUSED
        assert f"cluster master 127.0.0.1:{valkey_cluster.masters[1].port}: appendfsync no" in seen.detail
    client.close()
