"""The callscreen side of the real-Asterisk tests: a store of its own, test policy packs that
make answers independent of the time of day, campaigns, numbers and consents; and
:func:`seed_consents`, the consented population the screening tests and benchmarks decide over.

Packs: ``XA`` (campaign ``always``) allows calls at any hour, ``XN`` (``night``) at none, ``XR``
(``listed``) also requires the registry ``test-dnc``, which lists :data:`LISTED_NUMBER`.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from blocklists.registry import RegistryManager
from callscreen.crypto import NumberVault
from callscreen.decision_log import DecisionLog
from callscreen.embedded import EmbeddedServer
from callscreen.models import Campaign, Consent, Contact, LegalBasis, Proof
from callscreen.numbers import normalize
from callscreen.store import Store
from harness.pbx import Call
from harness.processes import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY, callscreen_env, start_serve

ALWAYS, NIGHT, LISTED = "always", "night", "listed"
REGISTRY_ID = "test-dnc"
LISTED_NUMBER = "89997770001"
CLASSIC_AGI = "callscreen"  # CALLSCREEN_AGI for the classic script: agi-bin/callscreen/{screen,outcome}
CAPTURED = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
EVERY_DAY = {day: "00:00-23:59:59" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")}
CLOSED = dict.fromkeys(EVERY_DAY, "closed")
DEADLINE_MS = 2000
_numbers = itertools.count(1_000_000)


def fresh_number() -> str:
    """A Russian mobile number no other call of this run uses, as a Russian dialer sends it."""
    return f"8999{next(_numbers):07d}"


def _pack(pack_id: str, parent: str, hours: dict[str, str], extra: str = "") -> str:
    table = "\n".join(f'{day} = "{window}"' for day, window in hours.items())
    return (f'[pack]\nid = "{pack_id}"\nextends = "{parent}"\nversion = "test"\n'
            f'jurisdiction = "{pack_id.upper()}"\n\n[hours]\n{table}\n{extra}')


def write_policies(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "xa.toml").write_text(_pack("xa", "ru", EVERY_DAY))
    (folder / "xn.toml").write_text(_pack("xn", "ru", CLOSED))
    (folder / "xr.toml").write_text(_pack(
        "xr", "xa", EVERY_DAY, f'\n[registries]\nrequired = ["{REGISTRY_ID}"]\nmax_age_days = 30\n'))
    return folder


def seed_consents(store: Store, campaign_id: str, raws: Sequence[str], at: datetime, *, proof: Proof,
                  batch: int = 1000) -> list[str]:
    """A Russian promotions campaign ``campaign_id`` (Moscow hours) and a confirmed double opt-in
    consent to it for each of ``raws`` (``c-0``, ``c-1``, ...: captured 30 days before ``at``,
    with ``proof``), recorded ``batch`` numbers per :meth:`Store.add_consents` call so that
    millions can be loaded; returns ``raws``."""
    store.put_campaign(Campaign(campaign_id, "promotions", "RU", "RU", "Europe/Moscow"))
    captured = at - timedelta(days=30)
    for start in range(0, len(raws), batch):
        store.add_consents([
            (normalize(raw, "RU"),
             Consent(f"c-{start + i}", "", ("promotions",), LegalBasis.CONSENT, "sms_double_opt_in", captured,
                     verified_at=captured + timedelta(minutes=3), proof=proof),
             Contact("Europe/Moscow", ""))
            for i, raw in enumerate(raws[start:start + batch])
        ])
    return list(raws)


@dataclass
class Screening:
    """A store (its own valkey-server), its decision log, and the environment of every callscreen
    process on it (``callscreen serve`` and, through Asterisk, the classic script)."""

    server: EmbeddedServer
    client: redis.Redis
    store: Store
    log: DecisionLog
    env: dict[str, str]

    @classmethod
    def start(cls, root: Path, *, persist: bool = True) -> Screening:
        server = EmbeddedServer(root / "valkey", persist=persist).start()
        client = redis.Redis.from_url(server.url)
        store = Store(client, NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY))
        env = callscreen_env(server.url, root, CALLSCREEN_POLICY_DIR=str(write_policies(root / "policies")))
        screening = cls(server, client, store, DecisionLog(client, TEST_LOG_KEY), env)
        for campaign_id, jurisdiction in ((ALWAYS, "XA"), (NIGHT, "XN"), (LISTED, "XR")):
            store.put_campaign(Campaign(campaign_id, "promotions", jurisdiction, "RU", "Europe/Moscow"))
        return screening

    def load_registry(self, numbers: list[str]) -> None:
        """Load :data:`REGISTRY_ID` with ``numbers`` (before any ``serve`` starts: it reads the
        registry pointers at start and every few seconds)."""
        listed = Path(self.env["CALLSCREEN_DATA_DIR"]) / f"{REGISTRY_ID}.txt"
        listed.write_text("".join(f"{n}\n" for n in numbers))
        RegistryManager(self.client, memory_bytes=64 << 20).import_file(
            REGISTRY_ID, listed, fmt="lines", country="RU", kind="internal")

    def consent(self, number: str) -> str:
        """Record a double opt-in consent (confirmed) to promotional calls for ``number``; returns it."""
        self.store.add_consent(normalize(number, "RU"), Consent(
            f"c-{number}", "", ("promotions",), LegalBasis.CONSENT, "sms_double_opt_in", CAPTURED,
            verified_at=CAPTURED + timedelta(minutes=3)))
        return number

    def allowed_number(self) -> str:
        return self.consent(fresh_number())

    def serve(self, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
        """A ``callscreen serve`` process on this store, on a free port. Its decision deadline is
        generous (:data:`DEADLINE_MS`) so that a busy test machine does not turn answers into
        ``screening_unavailable``; an outage still blocks, only later."""
        return start_serve(self.env, "--metrics-port", "0", "--deadline-ms", str(DEADLINE_MS), *extra)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


def assert_dialed_with_its_allow_record(screening: Screening, call: Call) -> None:
    """The invariant: a call that was dialed has its ALLOW record in the decision log."""
    assert call.dialed and call.blocked is None, call.events
    record = screening.log.get(call.screen_id)
    assert record is not None and record.result == "ALLOW", f"dialed without an ALLOW record: {call.screen_id!r}"


def assert_blocked(call: Call, reason: str, agi_status: str = "SUCCESS") -> None:
    """Not dialed; the dialplan's CallScreen event says BLOCK with ``reason``."""
    assert not call.dialed, f"{call.id} was dialed"
    assert call.blocked is not None and call.blocked.get("Result") == "BLOCK", call.events
    assert (call.reason, call.agi_status) == (reason, agi_status)
