"""What a screening writes to the channel, shared by the FastAGI server and the classic script.

Kept free of heavy imports: the classic script pays for every module at each call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callscreen.models import Decision

# Written in this order: SCREEN_RESULT last, so a session cut short leaves it empty (BLOCK).
SCREEN_VARIABLES = ("SCREEN_ID", "SCREEN_REASON", "SCREEN_BASIS", "SCREEN_RESULT")
NO_BASIS = "none"
WITHHELD = "withheld"
BLOCK = "BLOCK"
SCREENING_UNAVAILABLE = "screening_unavailable"


@dataclass(frozen=True, slots=True)
class Answer:
    """The four values a screening writes to the channel."""

    result: str
    reason: str
    basis: str
    decision_id: str

    @classmethod
    def of(cls, decision: Decision) -> Answer:
        basis = decision.basis.short() if decision.basis is not None else NO_BASIS
        return cls(decision.result.value, decision.reason.value, basis, decision.id)

    @classmethod
    def unavailable(cls) -> Answer:
        return cls(BLOCK, SCREENING_UNAVAILABLE, NO_BASIS, "")

    def values(self) -> tuple[str, str, str, str]:
        """Values in :data:`SCREEN_VARIABLES` order."""
        return (self.decision_id, self.reason, self.basis, self.result)


def screen_target(args: tuple[str, ...], extension: str) -> tuple[str, str] | None:
    """``(number, campaign)`` from ``CAMPAIGN[,NUMBER]``; None when the argument count is wrong.

    A comma inside CAMPAIGN would shift NUMBER: with more than two arguments nothing is
    guessed. NUMBER present but empty stays empty (an invalid number), it does not fall back
    to the extension, so what is screened is what the dialplan dials.
    """
    if not 1 <= len(args) <= 2:
        return None
    return (args[1] if len(args) == 2 else extension), args[0]
