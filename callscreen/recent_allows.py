"""The ALLOW decisions this process logged lately, so a call's outcome need not read its decision back.

An allowed call's outcome arrives minutes after its decision, usually at the process that
decided it. The outcome repeats four things of the decision record (its id, its shard, its
campaign and its number's digest: :class:`DecisionRef`); :class:`RecentAllows` keeps them for
the ALLOWs this process appended, so :meth:`callscreen.decision_log.DecisionLog.record_outcome_async`
can skip the lookup round trip and the verified decode of the stored entry.

Invariants:
- Only a record whose append succeeded (and was confirmed on disk when that was asked) is kept:
  :class:`~callscreen.decision_log.DecisionLog` keeps it after ``append_async`` has settled.
- Bounded: at most ``limit`` entries, the oldest dropped first (outcomes that never come, e.g.
  from calls Asterisk lost, age out); every operation is O(1). An entry holds only the four
  fields, about 0.3 KB, so the default 100,000 take about 30 MB (30–34 MB of the process's RSS,
  measured by ``bench/outcome_memory.py``).
- Taken once: an outcome removes its entry; a second outcome for the same decision, or one for a
  decision another process (or this one before a restart) logged, finds nothing here and the
  caller reads the decision back.
- Per process: a forked child starts empty. Its parent's entries would not be wrong (they are
  records the log holds) but would be the parent's to answer, and a copy per child only costs
  memory; the same pid check keeps :func:`callscreen.store.kept_connections` per process.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

REMEMBERED_ALLOWS = 100_000  # calls ring ~30 s and talk minutes: several minutes of ALLOWs at a few hundred/s


@dataclass(frozen=True, slots=True)
class DecisionRef:
    """What an outcome record repeats of its decision record, as the log holds it."""

    id: str
    shard: int  # the shard the decision was appended to: its outcome summary goes beside it
    campaign_id: str
    number_digest: str


class RecentAllows:
    """A bounded, take-once memory of decision records by id; thread-safe, per process.
    ``limit`` 0 keeps nothing (every outcome reads its decision back)."""

    def __init__(self, limit: int = REMEMBERED_ALLOWS) -> None:
        if limit < 0:
            raise ValueError("the number of remembered ALLOWs cannot be negative")
        self.limit = limit
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._refs: OrderedDict[str, DecisionRef] = OrderedDict()

    def _own(self) -> tuple[threading.Lock, OrderedDict[str, DecisionRef]]:
        """This process's lock and entries: a forked child starts anew (a lock held at the fork
        would stay held in the child)."""
        pid = os.getpid()
        if self._pid != pid:
            self._lock, self._refs = threading.Lock(), OrderedDict()
            self._pid = pid
        return self._lock, self._refs

    def keep(self, ref: DecisionRef) -> None:
        """Remember ``ref`` as the newest entry, dropping the oldest beyond the limit."""
        if not self.limit:
            return
        lock, refs = self._own()
        with lock:
            refs[ref.id] = ref
            refs.move_to_end(ref.id)
            if len(refs) > self.limit:
                refs.popitem(last=False)

    def take(self, decision_id: str) -> DecisionRef | None:
        """The remembered decision ``decision_id``, forgotten as it is returned; None if not here."""
        lock, refs = self._own()
        with lock:
            return refs.pop(decision_id, None)

    def __len__(self) -> int:
        return len(self._own()[1])
