"""A small Asterisk Manager Interface (AMI) client for tests and benchmarks.

Plain sockets and one reader thread: actions are sent with an ``ActionID`` and their
``Response`` is matched by it; every event is kept (in arrival order) and can be waited for.
Enough for ``Login``, ``Originate`` (``Async: true``), ``Filter``, ``Command`` and ``Logoff``.

Wire format: a message is ``Key: Value`` lines ending in ``\\r\\n``, closed by an empty line.
A key may repeat (``ChanVariable`` once per variable listed in ``manager.conf`` ``channelvars``).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


class AMIError(RuntimeError):
    """The manager refused an action, did not answer in time, or the connection broke."""


@dataclass(frozen=True)
class Message:
    """One AMI message (a response or an event) with its fields in wire order."""

    fields: tuple[tuple[str, str], ...]
    received: float = field(default=0.0, compare=False)  # time.monotonic() on arrival

    def get(self, key: str, default: str = "") -> str:
        """The first value of ``key`` (keys compare case-insensitively, as Asterisk's do)."""
        wanted = key.lower()
        return next((v for k, v in self.fields if k.lower() == wanted), default)

    def __getitem__(self, key: str) -> str:
        return self.get(key)

    @property
    def event(self) -> str:
        return self.get("Event")

    def variables(self, key: str = "ChanVariable") -> dict[str, str]:
        """The channel variables an event carries (``DestChanVariable`` for a Dial's callee)."""
        wanted = key.lower()
        found: dict[str, str] = {}
        for k, v in self.fields:
            if k.lower() == wanted and "=" in v:
                name, value = v.split("=", 1)
                found[name] = value
        return found


def parse_message(block: str, received: float = 0.0) -> Message:
    fields = []
    for line in block.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        fields.append((key.strip(), value.strip() if sep else ""))
    return Message(tuple(fields), received)


class AMIClient:
    """A logged-in manager session. Use as a context manager, or call :meth:`close`."""

    def __init__(self, host: str, port: int, username: str, secret: str, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.settimeout(None)
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._responses: dict[str, Message] = {}
        self._events: list[Message] = []
        self._closed = False
        self._error: BaseException | None = None
        self._subscribers: list[Callable[[Message], None]] = []
        self.banner = self._read_banner()
        self._reader = threading.Thread(target=self._read_loop, name="ami-reader", daemon=True)
        self._reader.start()
        self.action("Login", Username=username, Secret=secret, Events="on")

    # --- wire ----------------------------------------------------------------------------------

    def _read_banner(self) -> str:
        self._sock.settimeout(self.timeout)
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = self._sock.recv(1)
            if not chunk:
                raise AMIError("manager closed the connection before its banner")
            line += chunk
        self._sock.settimeout(None)
        return line.decode("utf-8", "replace").strip()

    def _read_loop(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    raw, buffer = buffer.split(b"\r\n\r\n", 1)
                    self._dispatch(parse_message(raw.decode("utf-8", "replace"), time.monotonic()))
        except OSError as exc:
            self._error = exc
        finally:
            with self._lock:
                self._closed = True
                self._lock.notify_all()

    def _dispatch(self, message: Message) -> None:
        with self._lock:
            action_id = message.get("ActionID")
            if message.get("Response") and action_id:
                self._responses[action_id] = message
            elif message.event:
                self._events.append(message)
            self._lock.notify_all()
            subscribers = list(self._subscribers) if message.event else []
        for subscriber in subscribers:
            subscriber(message)

    def subscribe(self, callback: Callable[[Message], None]) -> None:
        """Call ``callback(event)`` for each event from now on (in the reader thread)."""
        with self._lock:
            self._subscribers.append(callback)

    def send(self, action: str, fields: Iterable[tuple[str, str]] = ()) -> str:
        """Send an action without waiting; returns its ActionID."""
        action_id = f"t{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in fields:
            if "\r" in value or "\n" in value:
                raise ValueError(f"{key}: a field value must be one line")
            lines.append(f"{key}: {value}")
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    def response(self, action_id: str, timeout: float | None = None) -> Message:
        """Wait for the response to ``action_id``; raises :class:`AMIError` on ``Error``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._lock:
            while action_id not in self._responses:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise AMIError(f"no response to {action_id} ({'closed' if self._closed else 'timeout'})")
                self._lock.wait(left)
            reply = self._responses.pop(action_id)
        if reply.get("Response").lower() == "error":
            raise AMIError(reply.get("Message") or "action failed")
        return reply

    def action(self, action: str, **fields: str) -> Message:
        """Send an action and return its successful response."""
        return self.response(self.send(action, fields.items()))

    # --- actions ---------------------------------------------------------------------------------

    def originate(self, channel: str, *, application: str = "Wait", data: str = "5",
                  variables: Mapping[str, str] | None = None, timeout_ms: int = 30000,
                  caller_id: str = "", wait: bool = True) -> str:
        """Queue a call (``Async: true``) and return its ActionID; the ``OriginateResponse``
        event carries the same ActionID when the call is answered or fails. ``wait=False``
        returns once the action is sent (a load generator collects the responses later with
        :meth:`response`)."""
        fields = [("Channel", channel), ("Application", application), ("Data", data),
                  ("Timeout", str(timeout_ms)), ("Async", "true")]
        if caller_id:
            fields.append(("CallerID", caller_id))
        fields += [("Variable", f"{name}={value}") for name, value in (variables or {}).items()]
        action_id = self.send("Originate", fields)
        if wait:
            self.response(action_id)
        return action_id

    def only_events(self, names: Iterable[str]) -> None:
        """Ask the manager to send this session only the named events (an AMI ``Filter``)."""
        names = list(names)
        self.action("Filter", Operation="Add", Filter=f"Event: ({'|'.join(names)})[[:space:]]")

    def command(self, line: str) -> str:
        """Run a CLI command; returns its output."""
        reply = self.action("Command", Command=line)
        return "\n".join(v for k, v in reply.fields if k.lower() == "output")

    # --- events ----------------------------------------------------------------------------------

    def events(self, predicate: Callable[[Message], bool] | None = None) -> list[Message]:
        """A snapshot of the events received so far (those matching ``predicate``)."""
        with self._lock:
            snapshot = list(self._events)
        return [m for m in snapshot if predicate is None or predicate(m)]

    def wait_until(self, condition: Callable[[list[Message]], bool], timeout: float) -> list[Message]:
        """Wait until ``condition(all events so far)`` holds; returns the events. Raises on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self._events):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AMIError("condition not met before the timeout" if left <= 0 else "connection closed")
                self._lock.wait(min(left, 0.5))
            return list(self._events)

    def close(self) -> None:
        if not self._closed:
            with contextlib.suppress(OSError):
                self.send("Logoff")
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(5)

    def __enter__(self) -> AMIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
