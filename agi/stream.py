"""asyncio's StreamReader with one addition: the AGI header block read in one pass.

Reading the header a line at a time costs a ``readline`` (and a decode and a check) for each of
its ≈25 lines; :meth:`HeaderStreamReader.read_header` finds the blank line that ends it with one
regular-expression search over what has arrived, and takes the block at once. Invariants: it
consumes nothing past the blank line (Asterisk's replies, or a ``HANGUP`` line, stay for
``readline``); blank lines before the header are skipped; lines may end in LF or CRLF, mixed too
(a line is blank when only CRs precede its LF, as :func:`agi.protocol.parse_header` strips them);
at most ``max_bytes`` are ever buffered for a header, leading blank lines counted.

It relies on the buffer and wake-up helpers that every ``StreamReader`` method uses (the same
ones since Python 3.5); the server uses it only where they exist (:func:`supported`).
"""

from __future__ import annotations

import asyncio
import re

from agi.protocol import HeaderTooLarge

_LEADING_BLANKS = re.compile(rb"(?:\r*\n)+")
_HEADER_END = re.compile(rb"\n\r*\n")


class HeaderStreamReader(asyncio.StreamReader):
    """A StreamReader that can also read a whole AGI header block (see the module's invariants)."""

    async def read_header(self, max_bytes: int) -> bytes:
        """The header's lines and the blank line ending it, as received (leading blank lines dropped).

        Raises HeaderTooLarge once more than ``max_bytes`` arrive without the blank line (or the
        block ends past it), :class:`asyncio.IncompleteReadError` if the peer closes first, and
        whatever the connection failed with."""
        skipped = 0
        start = 0  # where the search for the end resumes: nothing before it can end the block
        while True:
            buffer: bytearray = self._buffer  # type: ignore[attr-defined]
            if start == 0:
                leading = _LEADING_BLANKS.match(buffer)
                if leading:
                    skipped += leading.end()
                    del buffer[:leading.end()]
            found = _HEADER_END.search(buffer, start) if buffer else None
            if found is not None:
                end = found.end()
                if skipped + end > max_bytes:
                    raise HeaderTooLarge(f"header larger than {max_bytes} bytes")
                block = bytes(buffer[:end])
                del buffer[:end]
                self._maybe_resume_transport()  # type: ignore[attr-defined]
                return block
            if skipped + len(buffer) > max_bytes:
                raise HeaderTooLarge(f"header larger than {max_bytes} bytes")
            if self.exception() is not None:
                raise self.exception()  # type: ignore[misc]
            if self._eof:  # type: ignore[attr-defined]
                partial = bytes(buffer)
                buffer.clear()
                raise asyncio.IncompleteReadError(partial, None)
            # a CR run may still grow into a blank line: resume before it
            start = 0 if buffer.rstrip(b"\r") == b"" else max(0, len(buffer.rstrip(b"\r")) - 1)
            await self._wait_for_data("read_header")  # type: ignore[attr-defined]


def supported() -> bool:
    """True when this Python's StreamReader has the internals :meth:`read_header` uses."""
    cls = asyncio.StreamReader
    return (all(hasattr(cls, name) for name in ("_wait_for_data", "_maybe_resume_transport", "exception"))
            and {"_buffer", "_eof"} <= set(cls.__init__.__code__.co_names))
