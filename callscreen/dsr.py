"""Data subject requests with a deadline: an erasure request is received, tracked against its
30-day deadline (GDPR art. 12(3): one month; 152-FZ art. 21: sooner), and closed by the erasure.

Keys: ``cs:dsr:<id>`` (JSON), ``cs:dsr:open`` (sorted set: id → due time, epoch ms),
``cs:dsr:all`` (sorted set: id → received time). A request names the number by keyed digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import redis

from callscreen import codec
from callscreen.cluster import write_pipeline
from callscreen.store import PREFIX, new_id

DEADLINE = timedelta(days=30)
OPEN_KEY = PREFIX + "dsr:open"
ALL_KEY = PREFIX + "dsr:all"


def request_key(request_id: str) -> str:
    return f"{PREFIX}dsr:{request_id}"


@dataclass(frozen=True, slots=True)
class SubjectRequest:
    id: str
    kind: str  # "erasure"
    number_digest: str
    reference: str
    received_at: datetime
    due_at: datetime
    received_by: str
    closed_at: datetime | None = None
    closed_by: str = ""
    outcome: str = ""  # e.g. the erasure id

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def days_left(self, now: datetime | None = None) -> int:
        return (self.due_at - (now or datetime.now(UTC))).days

    def overdue(self, now: datetime | None = None) -> bool:
        return self.open and (now or datetime.now(UTC)) > self.due_at


def _load(raw: bytes | str) -> SubjectRequest:
    data = json.loads(raw)
    for name in ("received_at", "due_at", "closed_at"):
        data[name] = codec.parse_time(data.get(name))
    return SubjectRequest(**data)


class RequestBook:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def receive(self, digest: str, reference: str, by: str, kind: str = "erasure",
                received_at: datetime | None = None) -> SubjectRequest:
        received = received_at or datetime.now(UTC)
        request = SubjectRequest(new_id("dsr"), kind, digest, reference, received, received + DEADLINE, by)
        pipe = write_pipeline(self.client)
        pipe.set(request_key(request.id), codec.dumps(request))
        pipe.zadd(OPEN_KEY, {request.id: int(request.due_at.timestamp() * 1000)})
        pipe.zadd(ALL_KEY, {request.id: int(received.timestamp() * 1000)})
        pipe.execute()
        return request

    def get(self, request_id: str) -> SubjectRequest | None:
        raw = self.client.get(request_key(request_id)) if len(request_id) <= 64 else None
        return None if raw is None else _load(raw)

    def open_requests(self) -> list[SubjectRequest]:
        """Open requests, soonest deadline first."""
        ids = [i.decode() for i in self.client.zrange(OPEN_KEY, 0, -1)]
        raws = self.client.mget([request_key(i) for i in ids]) if ids else []
        return [_load(r) for r in raws if r is not None]

    def recent(self, count: int = 50) -> list[SubjectRequest]:
        ids = [i.decode() for i in self.client.zrevrange(ALL_KEY, 0, count - 1)]
        raws = self.client.mget([request_key(i) for i in ids]) if ids else []
        return [_load(r) for r in raws if r is not None]

    def close(self, request_id: str, by: str, outcome: str) -> SubjectRequest:
        request = self.get(request_id)
        if request is None:
            raise KeyError(request_id)
        closed = replace(request, closed_at=datetime.now(UTC), closed_by=by, outcome=outcome)
        pipe = write_pipeline(self.client)
        pipe.set(request_key(request_id), codec.dumps(closed))
        pipe.zrem(OPEN_KEY, request_id)
        pipe.execute()
        return closed

    def close_for(self, digest: str, by: str, outcome: str) -> list[SubjectRequest]:
        """Close every open request about ``digest`` (an erasure done from the command line)."""
        return [self.close(r.id, by, outcome) for r in self.open_requests() if r.number_digest == digest]
