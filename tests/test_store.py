import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis

from callscreen.models import Consent, Contact, LegalBasis, Objection, OptOut, Suppression
from callscreen.numbers import normalize
from callscreen.store import (
    ATTEMPT_HISTORY,
    KEPT_CONNECTIONS,
    StoreError,
    connect,
    kept_connections,
    ms,
    number_key,
    pack_commands,
    run_pipeline,
    run_pipeline_async,
)
from tests_support import all_keys, monitored

pytestmark = pytest.mark.also_cluster


def test_consent_is_stored_under_keyed_digest_with_number_sealed(store, redis_client):
    number = normalize("+79991234567")
    consent = Consent(
        id="c-1", number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
        source="web_form", captured_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    stored = store.add_consent(number, consent)
    dump = b"".join(redis_client.dump(k) or b"" for k in all_keys(redis_client, "*"))
    assert b"79991234567" not in dump
    assert b"79991234567" not in b"".join(all_keys(redis_client, "*"))
    assert store.get_consent("c-1") == stored
    assert store.reveal(stored.number_digest) == "+79991234567"


def test_all_keys_of_one_number_share_a_cluster_slot(store, redis_client):
    number = normalize("+79991234567")
    store.add_opt_out(number, OptOut(None, "call", datetime.now(UTC)))
    digest = store.vault.digest(number.e164)
    slots = {redis_client.execute_command("CLUSTER", "KEYSLOT", number_key(digest, k))
             for k in ("consents", "optouts", "objections", "suppressions", "attempts", "contact")}
    assert len(slots) == 1


def test_attempt_read_takes_only_the_newest_attempts_up_to_the_decision_time(store, redis_client):
    number = normalize("+13055550123")
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    attempts = number_key(store.vault.digest(number.e164), "attempts")
    redis_client.zadd(attempts, {f"d-{m}": ms(at - timedelta(minutes=m)) for m in range(-5, 2000)})
    facts = store.facts(number, at, attempt_limit=4)
    assert facts.attempts == tuple(at - timedelta(minutes=m) for m in (3, 2, 1, 0))  # none after `at`
    assert facts.attempts_limit == 4
    assert store.facts(number, at, attempt_limit=0).attempts == ()


def test_attempts_older_than_the_history_are_not_read(store, redis_client):
    number = normalize("+13055550123")
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    attempts = number_key(store.vault.digest(number.e164), "attempts")
    redis_client.zadd(attempts, {"d-old": ms(at - ATTEMPT_HISTORY - timedelta(seconds=1))})
    assert store.facts(number, at, attempt_limit=4).attempts == ()


CONNECTION_SETUP = {"HELLO", "CLIENT", "AUTH", "SELECT"}  # a new pooled connection's handshake


def _commands_sent(client, action, key: str) -> list[str]:
    """The commands clients sent the server holding ``key`` while ``action`` ran, as MONITOR saw
    them (the commands a script runs inside the server are left out)."""
    from callscreen.cluster import is_cluster_client

    server = client.get_redis_connection(client.get_node_from_key(key)) if is_cluster_client(client) else client
    names = [(entry["command"].split()[0].upper(), entry.get("client_type")) for entry in monitored(server, action)]
    return [name for name, kind in names if kind != "lua" and name not in CONNECTION_SETUP]


def test_facts_are_gathered_in_one_round_trip(store, redis_client):
    number = normalize("+79991234567")
    now = datetime.now(UTC)
    store.add_consent(number, Consent("c-1", "", ("promotions",), LegalBasis.CONSENT, "web_form",
                                      now - timedelta(days=3)), Contact("Europe/Moscow", ""))
    store.add_opt_out(number, OptOut("spring", "call", now))
    store.add_objection(number, Objection(now, "email"))
    digest = store.vault.digest(number.e164)
    store.suppress(digest, Suppression("cmp-1", now))
    redis_client.zadd(number_key(digest, "attempts"), {"d-1": int(now.timestamp() * 1000) - 60_000})
    store.facts(number, now, attempt_limit=4)  # loads the script once (a restarted server has none)
    gathered = []
    sent = _commands_sent(redis_client, lambda: gathered.append(store.facts(number, now, attempt_limit=4)),
                          number_key(digest, "consents"))
    assert sent == ["EVALSHA"]
    facts = gathered[0]  # every kind of fact, from one command in one round trip
    assert [c.id for c in facts.consents] == ["c-1"] and facts.contact.timezone == "Europe/Moscow"
    assert [o.campaign_id for o in facts.opt_outs] == ["spring"]
    assert len(facts.objections) == 1 and [s.complaint_id for s in facts.suppressions] == ["cmp-1"]
    assert len(facts.attempts) == 1


def test_personal_fields_are_sealed_under_a_per_number_data_key_wrapped_by_the_master_key(store, redis_client):
    from callscreen.models import Proof
    from callscreen.store import subject_key_key

    number = normalize("+79991234567")
    proof = Proof(ip="203.0.113.9", form_text="Yes, call me about offers", form_version="v3")
    store.add_consent(number, Consent(id="c-1", number_digest="", purposes=("promotions",),
                                      basis=LegalBasis.CONSENT, source="web_form",
                                      captured_at=datetime(2026, 5, 1, tzinfo=UTC), proof=proof))
    digest = store.vault.digest(number.e164)
    wrapped = redis_client.get(subject_key_key(digest)).decode()
    assert wrapped.startswith(f"w1.{store.vault.key_id}.")
    dump = b"".join(redis_client.dump(k) or b"" for k in all_keys(redis_client, "*"))
    assert b"203.0.113.9" not in dump and b"call me about offers" not in dump
    assert store.get_consent("c-1").proof == proof
    redis_client.delete(subject_key_key(digest))  # shredding the key ...
    assert store.reveal(digest) is None  # ... makes every sealed copy unreadable
    assert store.get_consent("c-1").proof.form_text == "[erased]"
    assert store.get_consent("c-1").proof.form_version == "v3"


def test_the_data_key_is_created_once_even_by_concurrent_writers(store):
    digest = store.vault.digest("+79991234567")
    first = store.subject(digest, create=True).key
    assert first is not None and store.subject(digest, create=True).key == first == store.subject(digest).key
    assert store.subject(store.vault.digest("+79991234568")).key is None


@pytest.mark.parametrize("cut", ["cancelled", "timed_out"])
def test_a_round_trip_cut_short_never_leaves_its_replies_for_the_next_one(own_store, cut):
    """A decision's deadline cancels a round trip whose replies are still on the wire (or the
    client's socket timeout ends it): that connection is dropped, never handed to the next
    round trip, which would read the stale replies as its own."""
    server = own_store(persist=False)

    async def run() -> list[object]:
        client = connect(server.url, asyncio=True, timeout=0.1 if cut == "timed_out" else 5.0)
        try:
            commands = [("DEBUG", "SLEEP", "0.3"), ("SET", "cut-key", "stale"), ("GET", "cut-key")]
            if cut == "cancelled":
                task = asyncio.ensure_future(run_pipeline_async(client, commands))
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                with pytest.raises(StoreError):
                    await run_pipeline_async(client, commands)
            await asyncio.sleep(0.4)  # the stale replies have arrived by now
            return await run_pipeline_async(client, [("ECHO", "fresh"), ("GET", "nothing-here")])
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [b"fresh", None]


def test_every_reply_of_a_round_trip_comes_back_in_order_with_errors_in_their_place(redis_client):
    redis_client.set("text", "x")
    replies = run_pipeline(redis_client, [("GET", "text"), ("INCR", "text"), ("HGETALL", "none"), ("ECHO", "e")])
    assert replies[0] == b"x" and isinstance(replies[1], redis.exceptions.ResponseError)
    assert replies[2:] == [{}, b"e"]


def test_commands_are_packed_to_the_bytes_redis_py_would_send_and_odd_arguments_are_refused():
    from redis.asyncio.connection import Connection

    connection = Connection()
    commands = [("EVALSHA", "ab" * 20, 2, "cs:{log}:stream", "k", 1733000000000, -7, 1.5, "", "x" * 70_000),
                ("HSET", "cs:{+79990000000}:consents", "c-1", '{"source": "формa \\"A\\""}', b"\x00\xff"),
                ("GET", "cs:campaign:spring")]
    assert b"".join(pack_commands(connection, commands)) == b"".join(connection.pack_commands(commands))
    for odd in (None, True, object()):
        with pytest.raises(StoreError):
            pack_commands(connection, [("SET", "k", odd)])


def test_round_trips_reuse_the_connections_they_keep_and_never_keep_one_cut_short(own_store):
    server = own_store(persist=False)

    async def run() -> None:
        client = connect(server.url, asyncio=True, timeout=5.0, max_connections=32, pool_timeout=5.0)
        try:
            ids = await asyncio.gather(*(run_pipeline_async(client, [("CLIENT", "ID")]) for _ in range(20)))
            assert len({i for (i,) in ids}) > KEPT_CONNECTIONS  # twenty at once needed more connections
            kept = kept_connections(client)
            assert len(kept) == KEPT_CONNECTIONS  # the others went back to the pool
            again = {(await run_pipeline_async(client, [("CLIENT", "ID")]))[0] for _ in range(30)}
            assert len(again) == 1  # one at a time: always a kept connection, no new one
            cut = asyncio.ensure_future(run_pipeline_async(client, [("DEBUG", "SLEEP", "0.3")]))
            await asyncio.sleep(0.05)
            taken = set(map(id, kept)) ^ set(map(id, kept_connections(client)))
            cut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cut
            assert len(kept) == KEPT_CONNECTIONS - 1 and not {id(c) for c in kept} & taken
            assert await run_pipeline_async(client, [("ECHO", "fresh")]) == [b"fresh"]
        finally:
            await client.aclose()

    asyncio.run(run())
