"""Loopback fault servers and the executors' fault matrix (tests/test_faults.py, bench/faults.py).

* :class:`WinRMSocketServer` serves a :class:`tests.winrm_server.FakeWinRMServer` on a real
  loopback socket (that server normally answers through ``responses``), so time-based
  faults reach pywinrm as they would from a host.
* :class:`FaultProxy` is a real-socket HTTP proxy in front of either server
  (:class:`tests.psrp_server.PSRPServer` for PSRP).  It reads the WS-Man action of each
  request and, when a fault is planned for it, answers instead of the host or spoils the
  host's answer: ``reset`` (close, nothing forwarded), ``reset-after`` (forwarded, the
  host acted, then closed without an answer), ``401``, ``500`` (plain text),
  ``500-fault`` (a SOAP WSManFault whose reason echoes :data:`SHARE_PW`), ``silent``
  (never answers), ``slow`` (answers ``delay`` seconds late), ``drip`` (one byte every
  ``interval`` seconds), ``cut`` (half the body), ``double`` (the body twice),
  ``garbage`` (a 200 that is not XML).
* :data:`CASES` is the fault matrix and :func:`run_case` runs one case against one
  executor, returning an :class:`Outcome` (exception, elapsed time, script starts,
  pipelines/shells left open, where a marker secret leaked).
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import io
import json
import logging
import re
import socket
import threading
import time
import traceback
import types
import uuid
from typing import Any, Dict, List, Optional, Tuple

from smbvol import envelope, exceptions
from smbvol.executors._http import RemoteOptions
from smbvol.scripts import Operation, Param, Script
from smbvol.secret import LIBRARY_LOGGERS, Credential
from tests import winrm_server
from tests.psrp_server import PSRPServer

#: Marker secrets: the share password (a parameter of the call) and the transport password.
SHARE_PW = "Fault-Share-Marker-7731"
WIRE_PW = "Fault-Wire-Marker-4419"
USER = "faultuser"
MARKERS = (SHARE_PW, WIRE_PW)

_ACTION_RE = re.compile(rb"<(?:[A-Za-z0-9_]+:)?Action[^>]*>([^<]*)</")
_ACTIONS = ("Create", "Delete", "Command", "Send", "Receive", "Signal", "Get")


def action_of(body: bytes) -> str:
    """The WS-Man action of a request body (``Receive``, ``Create``...)."""
    m = _ACTION_RE.search(body)
    if not m:
        return "Unknown"
    tail = m.group(1).decode("ascii", "replace").rsplit("/", 1)[-1]
    return tail if tail in _ACTIONS else "Unknown"


def _fault_body(reason: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
        "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"
        "<a:MessageID>uuid:%s</a:MessageID></s:Header><s:Body><s:Fault><s:Code>"
        "<s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value>"
        "</s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en-US\">%s</s:Text></s:Reason>"
        "<s:Detail><f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/"
        "wsmanfault\" Code=\"2147942405\" Machine=\"winhost\"><f:Message>%s</f:Message>"
        "</f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
        % (uuid.uuid4(), reason, reason)).encode("utf-8")


@dataclasses.dataclass
class Fault:
    kind: str
    times: int = 1
    delay: float = 0.0
    interval: float = 0.05


class _QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the point of most faults) is not an error here


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 with a handler bound to ``self``."""

    handler: type

    def __init__(self) -> None:
        self._httpd: Optional[http.server.ThreadingHTTPServer] = None
        self.stopping = threading.Event()

    def start(self):
        owner = self

        class Handler(self.handler):  # type: ignore[name-defined, misc]
            server_owner = owner

        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]


class _BaseHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()
        self.close_connection = True


class WinRMSocketServer(_Server):
    """A :class:`tests.winrm_server.FakeWinRMServer` answering on a real loopback socket."""

    def __init__(self, fake: winrm_server.FakeWinRMServer) -> None:
        super().__init__()
        self.fake = fake
        self.lock = threading.Lock()

    class handler(_BaseHandler):  # noqa: N801 - bound per server in start()
        server_owner: "WinRMSocketServer"

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = self._body()
            owner = self.server_owner
            if not body:
                self._answer(200, {}, b"")
                return
            request = types.SimpleNamespace(headers=dict(self.headers.items()), body=body)
            try:
                with owner.lock:
                    status, headers, text = owner.fake(request)
            except (ConnectionError, OSError):
                self._reset()
                return
            except AssertionError:  # an unknown shell or command
                status, headers, text = 500, {"Content-Type": "text/plain"}, "unknown shell"
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            self._answer(status, headers, data)


class FaultProxy(_Server):
    """An HTTP proxy that spoils the answers of planned WS-Man actions."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.plans: Dict[str, List[Fault]] = {}
        self.seen: List[Tuple[str, str]] = []
        self._lock = threading.Lock()

    def inject(self, action: str, kind: str, times: int = 1, **params: float) -> None:
        """Spoil the next ``times`` requests of ``action`` (``*``: any action)."""
        with self._lock:
            self.plans.setdefault(action, []).append(Fault(kind, times, **params))

    def _take(self, action: str) -> Optional[Fault]:
        with self._lock:
            for key in (action, "*"):
                queue = self.plans.get(key) or []
                if queue:
                    fault = queue[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                    return fault
        return None

    def forward(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            fwd = {k: v for k, v in headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
            fwd["Connection"] = "close"
            conn.request("POST", "/wsman", body=body, headers=fwd)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    class handler(_BaseHandler):  # noqa: N801 - bound per proxy in start()
        server_owner: "FaultProxy"

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            owner = self.server_owner
            body = self._body()
            headers = dict(self.headers.items())
            action = action_of(body) if body else "Probe"
            fault = self._fault(owner, action, body)
            with owner._lock:
                owner.seen.append((action, fault.kind if fault else "ok"))
            if fault is None:
                self._answer(*owner.forward(body, headers))
                return
            getattr(self, "_fault_" + fault.kind.replace("-", "_"))(owner, fault, body,
                                                                   headers)

        def _fault(self, owner: "FaultProxy", action: str, body: bytes) -> Optional[Fault]:
            return owner._take(action) if body else None

        # -- faults answered instead of the host ------------------------------
        def _fault_reset(self, owner, fault, body, headers) -> None:
            self._reset()

        def _fault_401(self, owner, fault, body, headers) -> None:
            self._answer(401, {"WWW-Authenticate": 'Basic realm="WSMan"',
                               "Content-Type": "text/plain"}, b"")

        def _fault_500(self, owner, fault, body, headers) -> None:
            self._answer(500, {"Content-Type": "text/plain"},
                         ("Internal Server Error (logon with %s failed)" % SHARE_PW)
                         .encode("utf-8"))

        def _fault_500_fault(self, owner, fault, body, headers) -> None:
            reason = "Access denied for share password %s and %s" % (SHARE_PW, WIRE_PW)
            self._answer(500, {"Content-Type": "application/soap+xml;charset=UTF-8"},
                         _fault_body(reason))

        def _fault_silent(self, owner, fault, body, headers) -> None:
            owner.stopping.wait(60)
            self._reset()

        # -- faults that spoil the host's answer --------------------------------
        def _fault_reset_after(self, owner, fault, body, headers) -> None:
            owner.forward(body, headers)
            self._reset()

        def _fault_slow(self, owner, fault, body, headers) -> None:
            answer = owner.forward(body, headers)
            if owner.stopping.wait(fault.delay):
                return
            self._answer(*answer)

        def _fault_drip(self, owner, fault, body, headers) -> None:
            status, hdrs, data = owner.forward(body, headers)
            self.send_response(status)
            self.send_header("Content-Type", hdrs.get("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            try:
                for i in range(len(data)):
                    if owner.stopping.wait(fault.interval):
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
            except OSError:
                self.close_connection = True

        def _fault_cut(self, owner, fault, body, headers) -> None:
            status, hdrs, data = owner.forward(body, headers)
            self._answer(status, hdrs, data[:len(data) // 2])

        def _fault_double(self, owner, fault, body, headers) -> None:
            status, hdrs, data = owner.forward(body, headers)
            self._answer(status, hdrs, data + data)

        def _fault_garbage(self, owner, fault, body, headers) -> None:
            owner.forward(body, headers)
            self._answer(200, {"Content-Type": "application/soap+xml;charset=UTF-8"},
                         b"\x00\x01 this is <<not> XML &&& \xff\xfe")


# --------------------------------------------------------------------------
# The host: one operation, whose output the case chooses.
# --------------------------------------------------------------------------

FAULT_OP = Operation(
    "fault_probe", "test operation of the fault matrix",
    (Param("VMName", "string", "a VM", required=True),
     Param("ShareCredential", "credential", "a credential")),
    ("probe",), ("unexpected",))


def fault_script() -> Script:
    return Script(operation=FAULT_OP, text="param($VMName, $ShareCredential)\n# fault probe\n")


def parameters() -> Dict[str, Any]:
    return {"VMName": "vm-faults", "ShareCredential": Credential("CORP\\share", SHARE_PW)}


def host_output(mode: str, huge_bytes: int) -> str:
    """What the host prints for ``mode`` (each echoes the marker secrets as a host might)."""
    noise = "debug: share password %s, transport %s\n" % (SHARE_PW, WIRE_PW)
    one = envelope.format_envelope(envelope.ok({"probe": "done"}))
    if mode == "ok":
        return one
    if mode == "two":
        return noise + one + "\n" + one
    if mode == "none":
        return noise + "no result document here"
    if mode == "huge":
        line = "x" * 1023 + "\n"
        return line * (huge_bytes // 1024 + 1) + one
    if mode == "error-echo":
        return noise + envelope.format_envelope(envelope.error(
            "unexpected", "mount failed with password %s (transport %s)" % (SHARE_PW, WIRE_PW)))
    raise ValueError(mode)


class Host:
    """The script side of both servers: counts the starts, prints what ``mode`` says."""

    def __init__(self, huge_bytes: int) -> None:
        self.mode = "ok"
        self.starts = 0
        self.huge_bytes = huge_bytes
        self._lock = threading.Lock()

    def output(self) -> str:
        with self._lock:
            self.starts += 1
        return host_output(self.mode, self.huge_bytes)

    # PSRP: tests.psrp_server execute function
    def psrp(self, inv) -> List[str]:
        return self.output().split("\n")

    # WinRM: tests.winrm_server program
    def winrm(self, command: str, arguments: List[str], stdin: bytes):
        return self.output().encode("utf-8"), b"", 0


# --------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    #: (action, fault kind, times, params) planned at the proxy before the call
    faults: Tuple[Tuple[str, str, int, Dict[str, float]], ...] = ()
    mode: str = "ok"
    #: expected exception class (None: the call succeeds)
    expect: Optional[type] = None
    #: allowed number of script starts (on the host) for this call
    starts: Tuple[int, ...] = (1,)
    #: the same for WinRM when it differs (its host double starts the program when
    #: standard input is complete, at the first Receive)
    winrm_starts: Optional[Tuple[int, ...]] = None
    #: the fault itself keeps the host from releasing the pipeline/shell
    leaves_open: bool = False
    #: the call's deadline (script_timeout, s)
    deadline: int = 3
    #: warm the executor first (a successful call), so the fault hits the call itself
    warm: bool = True
    refused: bool = False
    close_after: bool = False
    #: read_timeout of the executor (operation_timeout is 1 s)
    read_timeout: int = 2


def _f(action: str, kind: str, times: int = 1, **params: float):
    return (action, kind, times, params)


ALWAYS = 1000
CASES: Tuple[Case, ...] = (
    Case("refused", refused=True, expect=exceptions.TransportError, starts=(0,), warm=False),
    Case("reset at create", (_f("Create", "reset", ALWAYS),), expect=exceptions.TransportError,
         starts=(0,), warm=False),
    Case("reset at create, once", (_f("Create", "reset"),), starts=(1,), warm=False),
    Case("reset at command", (_f("Command", "reset-after", ALWAYS),),
         expect=exceptions.TransportError, starts=(1,), winrm_starts=(0,)),
    Case("reset at receive", (_f("Receive", "reset-after", ALWAYS),),
         expect=exceptions.TransportError, starts=(1,)),
    Case("reset at signal", (_f("Signal", "reset", ALWAYS),), starts=(1,), leaves_open=True),
    Case("reset at delete", (_f("Delete", "reset", ALWAYS),), starts=(1,), close_after=True,
         leaves_open=True),
    Case("401", (_f("*", "401", ALWAYS),), expect=exceptions.AuthenticationError,
         starts=(0,), warm=False),
    Case("500 without WS-Man fault", (_f("Command", "500", ALWAYS),),
         expect=exceptions.RemoteFault, starts=(0,)),
    Case("500 with WS-Man fault", (_f("Command", "500-fault", ALWAYS),),
         expect=exceptions.RemoteFault, starts=(0,)),
    Case("silent host", (_f("Receive", "silent", ALWAYS),),
         expect=exceptions.ExecutorTimeout, starts=(1,), winrm_starts=(0,), deadline=1),
    Case("slow host (0.7 s late, every request)", (_f("*", "slow", ALWAYS, delay=0.7),),
         expect=exceptions.ExecutorTimeout, starts=(1,), winrm_starts=(0,), deadline=1),
    Case("dripped answer", (_f("Receive", "drip", ALWAYS, interval=0.05),),
         expect=exceptions.ExecutorTimeout, starts=(1,), deadline=1),
    Case("cut XML", (_f("Receive", "cut", ALWAYS),), expect=exceptions.ResponseUnreadable,
         starts=(1,)),
    Case("doubled XML", (_f("Receive", "double", ALWAYS),),
         expect=exceptions.ResponseUnreadable, starts=(1,)),
    Case("garbage XML", (_f("Receive", "garbage", ALWAYS),),
         expect=exceptions.ResponseUnreadable, starts=(1,)),
    # the host made a shell whose id never arrived: it cannot be deleted
    Case("garbage XML at create", (_f("Create", "garbage", ALWAYS),),
         expect=exceptions.ResponseUnreadable, starts=(0,), warm=False, leaves_open=True),
    Case("two envelopes", mode="two", expect=exceptions.MultipleEnvelopes),
    Case("no envelope", mode="none", expect=exceptions.NoEnvelope),
    Case("host error echoing secrets", mode="error-echo",
         expect=exceptions.UnexpectedHostError),
    # the PSRP test server serializes all of it when the command arrives: give it time
    Case("huge output", mode="huge", expect=exceptions.OutputLimitExceeded, deadline=8,
         read_timeout=6),
)

#: Output cap of the matrix's executors, and what the huge case prints.
MAX_OUTPUT = 256 * 1024
HUGE_BYTES = 2 * 1024 * 1024
#: Seconds a failed call may run past its deadline (clean-up budget + slack).
CLEANUP_SLACK = 2.5


@dataclasses.dataclass
class Outcome:
    case: Case
    transport: str
    error: Optional[BaseException]
    elapsed: float
    starts: int
    left_open: int
    leaks: List[str]
    #: Command requests the executor sent for the call (a re-run would send more)
    commands: int = 0
    #: records of the remoting/HTTP libraries above DEBUG (they must be lowered to DEBUG)
    library_warnings: int = 0
    close_error: Optional[BaseException] = None

    @property
    def allowed_starts(self) -> Tuple[int, ...]:
        if self.transport == "winrm" and self.case.winrm_starts is not None:
            return self.case.winrm_starts
        return self.case.starts

    @property
    def error_class(self) -> str:
        return type(self.error).__name__ if self.error is not None else "ok"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: List[str] = []
        self.library_warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - keep whatever there is
            text = str(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info))
        self.texts.append("%s %s %s" % (record.name, text, record.exc_text or ""))
        if record.levelno > logging.DEBUG and record.name.split(".")[0] in LIBRARY_LOGGERS:
            self.library_warnings += 1


def _leaks(error: Optional[BaseException], records: List[str]) -> List[str]:
    where = []
    texts: List[Tuple[str, str]] = []
    if error is not None:
        texts.append(("message", str(error)))
        texts.append(("repr", repr(error)))
        texts.append(("traceback", "".join(traceback.format_exception(
            type(error), error, error.__traceback__))))
        texts.append(("attributes", json.dumps(getattr(error, "kwargs", {}), default=str)))
    texts.extend(("log record", t) for t in records)
    for label, text in texts:
        for marker in MARKERS:
            if marker in text:
                where.append("%s: %s" % (label, text[:200]))
    return where


def remote_options(port: int, deadline: int, read_timeout: int = 2) -> RemoteOptions:
    return RemoteOptions(host="127.0.0.1", port=port, ssl=False, auth="basic", username=USER,
                         password=WIRE_PW, allow_unencrypted=True, operation_timeout=1,
                         read_timeout=read_timeout, script_timeout=deadline)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    """A backend (PSRP or WinRM server) and a fault proxy in front of it."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.host = Host(HUGE_BYTES)
        if transport == "psrp":
            self.backend = PSRPServer(self.host.psrp, username=USER, password=WIRE_PW).start()
            self.backend_port = self.backend.port
        else:
            self.fake = winrm_server.FakeWinRMServer(self.host.winrm, username=USER,
                                                     password=WIRE_PW,
                                                     endpoint="http://127.0.0.1/wsman")
            self.backend = WinRMSocketServer(self.fake).start()
            self.backend_port = self.backend.port

    def stop(self) -> None:
        self.backend.stop()

    def left_open(self) -> int:
        if self.transport == "psrp":
            with self.backend._lock:
                return sum(len(s.commands) for s in self.backend.shells.values())
        return len(self.fake.open_shells)

    def executor(self, port: int, deadline: int, read_timeout: int = 2):
        from smbvol import retry

        policy = retry.policy("fault matrix", 2, 0.0, sleep=lambda s: None,
                              retryable=exceptions.is_connection_failure)
        options = remote_options(port, deadline, read_timeout)
        if self.transport == "psrp":
            from smbvol.executors.psrp import PSRPExecutor
            return PSRPExecutor(options, retry=policy, max_output=MAX_OUTPUT)
        from smbvol.executors.winrm import WinRMExecutor
        return WinRMExecutor(options, retry=policy, max_output=MAX_OUTPUT)


def run_case(bench: Bench, case: Case) -> Outcome:
    """Run ``case`` once against ``bench`` (a fresh proxy and executor)."""
    proxy = FaultProxy(bench.backend_port).start()
    port = _free_port() if case.refused else proxy.port
    ex = bench.executor(port, case.deadline, case.read_timeout)
    records = _Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    error: Optional[BaseException] = None
    close_error: Optional[BaseException] = None
    try:
        bench.host.mode = "ok"
        if case.warm:
            ex.run(fault_script(), parameters())
        bench.host.mode = case.mode
        for action, kind, times, params in case.faults:
            proxy.inject(action, kind, times, **params)
        starts = bench.host.starts
        open_before = bench.left_open()
        seen = len(proxy.seen)
        start = time.monotonic()
        try:
            ex.run(fault_script(), parameters())
        except BaseException as exc:  # noqa: BLE001 - the outcome is what we measure
            error = exc
        elapsed = time.monotonic() - start
        started = bench.host.starts - starts
        commands = sum(1 for action, _ in proxy.seen[seen:] if action == "Command")
        left_open = bench.left_open() - open_before
        if case.close_after or bench.transport == "psrp":
            try:
                ex.close()
            except BaseException as exc:  # noqa: BLE001
                close_error = exc
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
        proxy.stop()
    return Outcome(case, bench.transport, error, elapsed, started, left_open,
                   _leaks(error, records.texts), commands, records.library_warnings,
                   close_error)


def run_matrix(transports=("psrp", "winrm"), cases=CASES) -> List[Outcome]:
    out = []
    for transport in transports:
        bench = Bench(transport)
        try:
            for case in cases:
                out.append(run_case(bench, case))
        finally:
            bench.stop()
    return out


def table(outcomes: List[Outcome]) -> str:
    """The matrix as a text table."""
    rows = [("transport", "case", "result", "elapsed s", "deadline s", "starts", "left open",
             "leaks")]
    for o in outcomes:
        rows.append((o.transport, o.case.name, o.error_class, "%.2f" % o.elapsed,
                     str(o.case.deadline), str(o.starts), str(o.left_open), str(len(o.leaks))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    buf = io.StringIO()
    for n, r in enumerate(rows):
        buf.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
        if n == 0:
            buf.write("  ".join("-" * w for w in widths) + "\n")
    return buf.getvalue()


__all__ = ["CASES", "Bench", "Case", "FaultProxy", "Outcome", "WinRMSocketServer",
           "run_case", "run_matrix", "table"]
