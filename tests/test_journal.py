"""The access journal is append-only in effect: one HMAC chain that reports any change, removal
or reordering, survives retention's cut and the log key's rotation, and refuses a retired key."""

from __future__ import annotations

import pytest

from callscreen.journal import EPOCH_KEY, HEAD_KEY, JOURNAL_KEY, AccessJournal
from callscreen.keys import Keyring

pytestmark = pytest.mark.also_cluster

OLD, NEW = ("2026a", b"a" * 32), ("2026b", b"b" * 32)
DIGEST = "ab" * 16


def fill(journal: AccessJournal, n: int = 3) -> None:
    for i in range(n):
        journal.record(user="dpo", role="compliance", action="reveal", number_digest=DIGEST, reason=f"request {i}")


def test_an_untouched_journal_verifies_and_every_kind_of_tampering_is_reported(redis_client):
    journal = AccessJournal(redis_client, Keyring("log_key", (OLD,)))
    fill(journal)
    assert journal.verify().ok and journal.verify().entries == 3
    _first, second, third = (e for e, _ in redis_client.xrange(JOURNAL_KEY))
    redis_client.xadd(JOURNAL_KEY, {"at": "2026-01-01T00:00:00+00:00", "user": "x", "role": "admin",
                                    "action": "reveal", "digest": DIGEST, "reason": "forged", "subject": "",
                                    "kid": OLD[0], "seq": 4, "prev": "?", "mac": "0" * 64})
    assert any("MAC does not match" in p for p in journal.verify().problems)
    redis_client.xdel(JOURNAL_KEY, redis_client.xrevrange(JOURNAL_KEY, count=1)[0][0])
    redis_client.xdel(JOURNAL_KEY, second)  # an entry removed from the middle
    assert any("entries missing" in p for p in journal.verify().problems)
    redis_client.xdel(JOURNAL_KEY, third)  # ... or the tail cut
    assert any("head is 3" in p for p in journal.verify().problems)


def test_entries_need_a_reason_and_a_known_action(redis_client):
    journal = AccessJournal(redis_client, Keyring("log_key", (OLD,)))
    with pytest.raises(ValueError):
        journal.record(user="u", role="r", action="reveal", number_digest=DIGEST, reason="  ")
    with pytest.raises(ValueError):
        journal.record(user="u", role="r", action="delete_everything", number_digest=DIGEST, reason="why")
    assert journal.count() == 0


def test_the_journal_follows_the_log_key_rotation_and_refuses_the_retired_key(redis_client):
    ring = Keyring("log_key", (OLD, NEW))
    journal = AccessJournal(redis_client, ring)
    fill(journal, 2)
    journal.rotate_key(NEW[0])
    fill(journal, 2)
    kids = [f[b"kid"].decode() for _, f in redis_client.xrange(JOURNAL_KEY)]
    assert kids == [OLD[0], OLD[0], NEW[0], NEW[0]] and journal.verify().ok
    redis_client.delete(EPOCH_KEY)  # someone holding only the retired key appends ...
    AccessJournal(redis_client, Keyring("log_key", (OLD,))).record(
        user="x", role="admin", action="reveal", number_digest=DIGEST, reason="cover-up")
    assert not journal.verify().ok  # ... and it shows


def test_retention_cuts_the_start_and_what_remains_still_verifies(redis_client):
    journal = AccessJournal(redis_client, Keyring("log_key", (OLD,)))
    fill(journal, 4)
    ids = [e for e, _ in redis_client.xrange(JOURNAL_KEY)]
    assert journal.trim_before(ids[2].decode()) == 2
    assert journal.count() == 2 and journal.verify().ok
    assert redis_client.get(HEAD_KEY).decode().startswith("4:")
