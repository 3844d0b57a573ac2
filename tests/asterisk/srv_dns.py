"""A tiny authoritative DNS server (dnslib) for ``hagi://`` SRV tests.

Asterisk resolves ``hagi://NAME`` with ``ast_srv_lookup`` (``res_nsearch``: the system resolver,
``/etc/resolv.conf``, port 53 only), then each SRV target with ``getaddrinfo``. So the server
listens on UDP port 53 of a random 127/8 address (root only) and Asterisk is started with a
resolv.conf naming it (see :class:`pbx.Asterisk` ``resolv_conf``). Records can change while it runs.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, SRV, A, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


@dataclass(frozen=True)
class SrvTarget:
    priority: int
    weight: int
    port: int
    host: str


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    """SRV and A records by name; a name it does not know is NXDOMAIN."""

    srv: dict[str, list[SrvTarget]] = field(default_factory=dict)
    a: dict[str, str] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append(f"{qtype} {name}")
            targets = list(self.srv.get(name, ()))
            address = self.a.get(name)
        if not targets and address is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == "SRV":
            for t in targets:
                reply.add_answer(RR(DNSLabel(name), QTYPE.SRV, ttl=0,
                                    rdata=SRV(t.priority, t.weight, t.port, DNSLabel(t.host))))
        elif qtype == "A" and address:
            reply.add_answer(RR(DNSLabel(name), QTYPE.A, ttl=0, rdata=A(address)))
        return reply  # AAAA and others: an empty NOERROR answer

    def set_srv(self, name: str, targets: list[SrvTarget]) -> None:
        with self._lock:
            self.srv[name.lower()] = list(targets)


QUIET = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)


class SrvDns:
    """Serves a :class:`Zone` on ``<random 127/8 address>:53`` (UDP) in a thread, and writes
    the ``resolv.conf`` that sends a resolver there (:attr:`resolv_conf`)."""

    def __init__(self, zone: Zone | None = None) -> None:
        self.zone = zone or Zone()
        self.address = ""
        self.resolv_conf = Path(tempfile.mkdtemp(prefix="cs-dns-", dir="/tmp")) / "resolv.conf"
        self._server: DNSServer | None = None

    def start(self) -> SrvDns:
        last: OSError | None = None
        for _ in range(20):
            address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            try:
                server = DNSServer(self.zone, address=address, port=53, logger=QUIET)
            except OSError as exc:  # taken by another run, or not root
                last = exc
                continue
            server.start_thread()
            self.address, self._server = address, server
            self.resolv_conf.write_text(f"nameserver {address}\noptions timeout:1 attempts:1\n")
            return self
        raise OSError(f"cannot bind a DNS server on 127/8 port 53: {last}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()
            self._server = None
        shutil.rmtree(self.resolv_conf.parent, ignore_errors=True)

