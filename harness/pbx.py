"""A real Asterisk for tests and benchmarks, running the project's sample dialplan.

:class:`Installation` finds an Asterisk: the folder named by ``CALLSCREEN_ASTERISK_DIR`` (a
relocatable bundle with ``sbin/ modules/ data/``, or an install prefix such as ``/usr``), else
the bundle at ``../shared/asterisk-22`` beside the repository, else an ``asterisk`` on PATH.
:class:`Asterisk` writes a throw-away configuration around it — ``extensions.conf`` includes
``agi/dialplan/extensions_callscreen.conf`` unchanged and only overrides its globals, so what
runs is the sample itself — starts it, and stops it. The "trunk" of that configuration is a
Local context that answers, so a dialed call is visible on AMI (``DialBegin``).
:class:`Dialer` originates screened calls over AMI and reports what became of each.

Nothing here uses a fixed port or a fixed path: several copies may run at once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.ami import AMIClient, Message

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIALPLAN = REPO / "agi" / "dialplan" / "extensions_callscreen.conf"
BUNDLE = REPO.parent / "shared" / "asterisk-22"
ENV_DIR = "CALLSCREEN_ASTERISK_DIR"
AMI_USER, AMI_SECRET = "tester", "testerpass"
OUTBOUND_CONTEXT = "callscreen-outbound"
TRUNK_CONTEXT = "callscreen-test-trunk"
CALL_VARIABLE = "CALLSCREEN_TEST_CALL"  # tags every originated call; listed in channelvars
HOLD_VARIABLE = "CALLSCREEN_TEST_HOLD"  # seconds the test trunk holds an answered call
# Loaded explicitly (autoload = no): what the sample dialplan and the test trunk use.
REQUIRED_MODULES = ("pbx_config", "res_speech", "res_agi", "app_dial", "bridge_simple", "app_userevent",
                    "app_exec", "func_strings", "func_logic", "func_timeout", "res_timing_timerfd")
OPTIONAL_MODULES = ("func_callerid", "func_channel", "app_verbose", "codec_ulaw")
MODULE_DIRS = ("modules", "lib/asterisk/modules", "lib/x86_64-linux-gnu/asterisk/modules",
               "lib64/asterisk/modules")
DATA_DIRS = ("data", "share/asterisk", "var/lib/asterisk")


class AsteriskUnavailable(RuntimeError):
    """No usable Asterisk was found (tests skip with this message)."""


class AsteriskMisconfigured(RuntimeError):
    """``CALLSCREEN_ASTERISK_DIR`` names a folder that is not an Asterisk (tests fail)."""


@dataclass(frozen=True)
class Installation:
    """Where an Asterisk's binary, modules and data (the XML documentation) are."""

    binary: Path
    modules: Path
    data: Path

    @classmethod
    def at(cls, prefix: Path) -> Installation:
        """A bundle (``sbin/asterisk``, ``modules/``, ``data/``) or an install prefix like ``/usr``."""
        binary = prefix / "sbin" / "asterisk"
        modules = next((prefix / d for d in MODULE_DIRS if (prefix / d / "res_agi.so").is_file()), None)
        data = next((prefix / d for d in (*DATA_DIRS, "/var/lib/asterisk", "/usr/share/asterisk")
                     if (prefix / d / "documentation").is_dir()), None)
        if not os.access(binary, os.X_OK) or modules is None or data is None:
            raise AsteriskUnavailable(
                f"{prefix}: need sbin/asterisk, res_agi.so under one of {', '.join(MODULE_DIRS)} and "
                f"documentation/ under one of {', '.join(DATA_DIRS)}")
        return cls(binary, modules, data)

    @classmethod
    def find(cls, environ: Mapping[str, str] = os.environ) -> Installation:
        named = environ.get(ENV_DIR, "")
        if named:
            try:
                return cls.at(Path(named).resolve())
            except AsteriskUnavailable as exc:
                raise AsteriskMisconfigured(f"{ENV_DIR}={named}: {exc}") from exc
        if BUNDLE.is_dir():
            return cls.at(BUNDLE.resolve())
        found = shutil.which("asterisk")
        if found:
            return cls.at(Path(found).resolve().parent.parent)
        raise AsteriskUnavailable(
            f"no Asterisk: set {ENV_DIR} to an Asterisk folder, put the bundle at {BUNDLE}, "
            f"or install asterisk on PATH")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def can_isolate_resolver() -> bool:
    """True when Asterisk can be given its own /etc/resolv.conf (root and ``unshare --mount``)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


@dataclass
class Asterisk:
    """One Asterisk process with a configuration of its own under a short temporary folder.

    ``agi_url`` becomes ``CALLSCREEN_AGI``; ``env`` is added to Asterisk's environment (the
    classic script inherits it); ``agi_scripts`` maps paths under ``agi-bin`` to executables to
    link there; ``resolv_conf`` makes Asterisk resolve names (SRV for ``hagi://``) through that
    file, by running it in a private mount namespace where it is bind-mounted on /etc/resolv.conf.
    """

    installation: Installation
    agi_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    agi_scripts: Mapping[str, Path] = field(default_factory=dict)
    resolv_conf: Path | None = None
    dial_timeout: int = 5
    # "answering": dial the Local test trunk below, which answers; "unavailable": keep the sample's
    # PJSIP trunk, which this bundle (no SIP) fails at once with CHANUNAVAIL, so an allowed call
    # costs Asterisk no second channel pair (see Call.allowed).
    trunk: str = "answering"
    # the AMI user's read classes: "all" (every event: a VarSet per Set(), a Newexten per
    # priority...), or only what a dialer needs, e.g. "call,user" (DialBegin, Hangup,
    # OriginateResponse, UserEvent): Asterisk then formats and sends far fewer events per call
    ami_read: str = "all"
    ami_port: int = field(default_factory=_free_port)
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # <root>/run/asterisk.ctl must fit in a unix socket path (108 bytes): stay short.
        self.root = Path(tempfile.mkdtemp(prefix="cs-ast-", dir="/tmp"))

    @property
    def config_file(self) -> Path:
        return self.root / "etc" / "asterisk.conf"

    @property
    def agi_dir(self) -> Path:
        return self.root / "agi-bin"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "messages.log"

    def write_config(self) -> None:
        etc = self.root / "etc"
        for sub in ("etc", "run", "log", "spool", "lib", "db", "cache", "agi-bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        i = self.installation
        _write(etc / "asterisk.conf", f"""
            [directories]
            astetcdir => {etc}
            astmoddir => {i.modules}
            astvarlibdir => {self.root}/lib
            astdbdir => {self.root}/db
            astkeydir => {self.root}/lib
            astdatadir => {i.data}
            astagidir => {self.agi_dir}
            astspooldir => {self.root}/spool
            astrundir => {self.root}/run
            astlogdir => {self.root}/log
            astcachedir => {self.root}/cache

            [options]
            verbose = 1
            nocolor = yes
            highpriority = no
            """)
        _write(etc / "modules.conf", "[modules]\nautoload = no\n"
               + "".join(f"require => {m}.so\n" for m in REQUIRED_MODULES)
               + "".join(f"load => {m}.so\n" for m in OPTIONAL_MODULES))
        _write(etc / "logger.conf", """
            [general]
            dateformat = %F %T.%3q
            [logfiles]
            messages.log => notice,warning,error,verbose
            """)
        _write(etc / "manager.conf", f"""
            [general]
            enabled = yes
            port = {self.ami_port}
            bindaddr = 127.0.0.1
            channelvars = {CALL_VARIABLE},SCREEN_ID,SCREEN_RESULT,SCREEN_REASON

            [{AMI_USER}]
            secret = {AMI_SECRET}
            deny = 0.0.0.0/0.0.0.0
            permit = 127.0.0.1/255.255.255.255
            read = {self.ami_read}
            write = all
            """)
        # The sample dialplan as shipped; [globals](+) appends to its [globals], later values win.
        if self.trunk not in ("answering", "unavailable"):
            raise ValueError(f"trunk must be 'answering' or 'unavailable', not {self.trunk!r}")
        prefix, suffix = (("CALLSCREEN_DIAL_PREFIX=Local/", f"CALLSCREEN_DIAL_SUFFIX=@{TRUNK_CONTEXT}")
                          if self.trunk == "answering" else ("; the sample's PJSIP trunk", ";"))
        _write(etc / "extensions.conf", f"""
            [general]
            static = yes
            writeprotect = yes

            #include "{SAMPLE_DIALPLAN}"

            [globals](+)
            CALLSCREEN_AGI={self.agi_url}
            {prefix}
            {suffix}
            CALLSCREEN_DIAL_TIMEOUT={self.dial_timeout}

            ; The carrier: answers every number it is dialed with, holds the call a moment
            ; (0.2 s, or the seconds an originate sets in the inherited _{HOLD_VARIABLE}), hangs up.
            [{TRUNK_CONTEXT}]
            exten => _X.,1,Answer()
             same => n,UserEvent(TrunkCall,Number: ${{EXTEN}})
             same => n,Wait(${{IF($["${{{HOLD_VARIABLE}}}" = ""]?0.2:${{{HOLD_VARIABLE}}})}})
             same => n,Hangup()
            exten => _+X.,1,Goto(${{EXTEN:1}},1)
            """)
        for name in ("cdr.conf", "cel.conf"):
            _write(etc / name, "[general]\nenable = no\n")
        for name in ("acl.conf", "features.conf", "udptl.conf", "ccss.conf"):
            _write(etc / name, "")
        tones = i.data / "indications.conf"
        _write(etc / "indications.conf", tones.read_text() if tones.is_file() else "")
        for relative, target in self.agi_scripts.items():
            link = self.agi_dir / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)

    def _command(self) -> list[str]:
        command = [str(self.installation.binary), "-C", str(self.config_file), "-f", "-n", "-q"]
        if self.resolv_conf is None:
            return command
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(self.resolv_conf), *command]

    def start(self, timeout: float = 30.0) -> Asterisk:
        self.write_config()
        environ = {**os.environ, **self.env}
        with open(self.root / "stdout.log", "wb") as out:
            self.process = subprocess.Popen(self._command(), env=environ, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"asterisk exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._remote("core waitfullybooted", timeout=5).returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"asterisk did not boot in {timeout} s:\n{self.log_tail()}")

    def _remote(self, line: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.installation.binary), "-C", str(self.config_file), "-rx", line],
                              capture_output=True, text=True, timeout=timeout)

    def cli(self, line: str) -> str:
        """Run one CLI command on the running Asterisk and return its output."""
        return self._remote(line).stdout

    def ami(self) -> AMIClient:
        return AMIClient("127.0.0.1", self.ami_port, AMI_USER, AMI_SECRET)

    def log_tail(self, lines: int = 40) -> str:
        texts = [p.read_text(errors="replace") for p in (self.root / "stdout.log", self.log_file) if p.exists()]
        return "\n".join("\n".join(t.splitlines()[-lines:]) for t in texts)

    def stop(self, keep_files: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self._remote("core stop now", timeout=10)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Asterisk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write(path: Path, text: str) -> None:
    lines = text.splitlines()
    indent = min((len(s) - len(s.lstrip()) for s in lines if s.strip()), default=0)
    path.write_text("\n".join(s[indent:] for s in lines).strip() + "\n")


# --- calls ------------------------------------------------------------------------------------


@dataclass
class Call:
    """What became of one originated call, as the AMI events told it."""

    id: str
    number: str
    dialed: bool = False      # the screening channel ran Dial() (a DialBegin event)
    allowed: bool = False     # it ended with SCREEN_RESULT=ALLOW (dialed, or its trunk unavailable)
    screen_id: str = ""       # SCREEN_ID when dialed, else the CallScreen event's ScreenId
    blocked: Message | None = None  # the sample dialplan's UserEvent(CallScreen,...)
    ended: bool = False       # the screening channel (the Local ;2 half) hung up
    events: list[Message] = field(default_factory=list)
    originated: float = 0.0   # time.monotonic() when the Originate action was sent
    action_id: str = ""       # the Originate action's ActionID

    @property
    def screened_at(self) -> float | None:
        """When the dialer learnt the answer (DialBegin or the CallScreen event arrived)."""
        return next((e.received for e in self.events if e.event == "DialBegin"
                     or (e.event == "UserEvent" and e.get("UserEvent") == "CallScreen")), None) \
            or next((e.received for e in self.events if e.event == "Hangup" and self.allowed), None)

    @property
    def reason(self) -> str:
        return self.blocked.get("Reason") if self.blocked else ""

    @property
    def agi_status(self) -> str:
        return self.blocked.get("AgiStatus") if self.blocked else ""


class Dialer:
    """Originates calls into ``[callscreen-outbound]`` over one AMI session and follows them.

    Each call carries ``CALLSCREEN_TEST_CALL=<id>``; manager.conf lists it in ``channelvars``,
    so every event of both halves of its Local channel names the call.
    """

    EVENTS = ("DialBegin", "UserEvent", "Hangup", "OriginateResponse")

    def __init__(self, ami: AMIClient, prefix: str = "c") -> None:
        self.ami = ami
        self._ids = itertools.count(1)
        self._prefix = f"{prefix}{os.getpid()}x{int(time.time() * 1000) % 100000}-"
        self.calls: dict[str, Call] = {}
        self._changed = threading.Condition()
        ami.only_events(self.EVENTS)
        ami.subscribe(self._on_event)

    def call(self, number: str, campaign: str | None = None, *, wait: bool = True, **variables: str) -> Call:
        """Originate ``Local/<number>@callscreen-outbound/n``; returns its (live) :class:`Call`.

        The originating half just waits once answered: the trunk's hang-up ends the call.
        ``wait=False`` does not wait for the manager's response (its ActionID is in
        :attr:`Call.action_id`), so a load generator can originate at a fixed rate."""
        call = Call(f"{self._prefix}{next(self._ids)}", number)
        with self._changed:
            self.calls[call.id] = call
        channel_vars = {CALL_VARIABLE: call.id, **variables}
        if campaign is not None:
            channel_vars["CALLSCREEN_CAMPAIGN"] = campaign
        call.originated = time.monotonic()
        call.action_id = self.ami.originate(f"Local/{number}@{OUTBOUND_CONTEXT}/n", application="Wait", data="60",
                                            variables=channel_vars, timeout_ms=20000, wait=wait)
        return call

    def _on_event(self, event: Message) -> None:
        call_id = event.variables().get(CALL_VARIABLE)
        call = self.calls.get(call_id or "")
        if call is None:
            return
        with self._changed:
            call.events.append(event)
            channel = event.get("Channel")
            if event.event == "DialBegin":
                call.dialed = True
                call.screen_id = event.variables().get("SCREEN_ID", "")
            elif event.event == "UserEvent" and event.get("UserEvent") == "CallScreen":
                call.blocked = event
                call.screen_id = event.get("ScreenId")
            elif event.event == "Hangup" and channel.startswith(f"Local/{call.number}@{OUTBOUND_CONTEXT}") \
                    and channel.endswith(";2"):
                call.ended = True
                if event.variables().get("SCREEN_RESULT") == "ALLOW" and call.blocked is None:
                    call.allowed = True
                    call.screen_id = call.screen_id or event.variables().get("SCREEN_ID", "")
            self._changed.notify_all()

    def wait(self, calls: Iterable[Call], timeout: float = 30.0) -> list[Call]:
        """Wait until every call has ended (its screening channel hung up)."""
        calls = list(calls)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(c.ended for c in calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    open_ids = [c.id for c in calls if not c.ended]
                    raise TimeoutError(f"{len(open_ids)} calls still up after {timeout} s: {open_ids[:5]}")
                self._changed.wait(min(left, 0.5))
        return calls

    def wait_screened(self, calls: Iterable[Call], timeout: float = 30.0) -> list[Call]:
        """Wait until every call was either dialed or blocked (the screening has answered)."""
        calls = list(calls)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(c.dialed or c.blocked or c.ended for c in calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("calls not screened in time")
                self._changed.wait(min(left, 0.5))
        return calls
