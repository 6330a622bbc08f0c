"""A loopback WSMan/PSRP endpoint for tests and the benchmark.

It speaks enough WSMan (Create shell with ``creationXml``, Command, Send,
Receive, Signal, Delete) over real HTTP on 127.0.0.1 for the unmodified
pypsrp client, and answers with genuine PSRP messages produced by psrpcore's
server-side classes (:class:`psrpcore.ServerRunspacePool` and
:class:`psrpcore.ServerPipeline`): session capability, runspace pool state,
the session key exchange for SecureStrings, pipeline output, error, warning
and progress records, pipeline state.

Nothing runs PowerShell.  The test gives an ``execute`` function that is
called with an :class:`Invocation` (script text, the parameters deserialized
from the client's CreatePipeline message, the server pipeline to write extra
records to) and returns the output objects (or :data:`HANG` to leave the
pipeline running forever).

:class:`PSRPRelay` is the same endpoint with a real PowerShell behind it: each WSMan shell
is one ``pwsh -NoLogo -NoProfile -s`` process (:mod:`tests.outofproc`) to which the PSRP
bytes are relayed, so every message comes from a real runspace pool.

Faults are injected per WSMan action with :meth:`PSRPServer.inject` (in both modes):
``"reset"`` (the TCP connection is closed without an answer), ``"401"``,
``"500"`` (an HTTP 500 with a plain-text body), ``(status, body)`` (any HTTP
status with that plain-text body) or a WSMan fault code (an HTTP 500 carrying
a SOAP fault, as Windows sends it).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.server
import re
import socket
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import psrpcore
from psrpcore.types import PSInvocationState, RunspacePoolState

from tests.outofproc import POOL, OutOfProcServer, ProcessGone

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get": "Get",
    NS["rsp"] + "/Command": "Command",
    NS["rsp"] + "/Send": "Send",
    NS["rsp"] + "/Receive": "Receive",
    NS["rsp"] + "/Signal": "Signal",
}
#: ERROR_WSMAN_OPERATION_TIMEDOUT: a Receive with nothing to say.
OPERATION_TIMEOUT = 2150858793
#: The shell with this ShellId is not (or no longer) on the server.
SHELL_NOT_FOUND = 2150858843

class ScriptFailed(Exception):
    """Raised by ``execute``: the pipeline ends Failed with this message (a terminating error)."""


#: ``execute`` returns this to leave the pipeline running (until stopped).
HANG = object()

FaultSpec = Union[str, int, Tuple[int, str]]


@dataclasses.dataclass
class Invocation:
    """One pipeline the client asked for."""

    script: str
    parameters: Dict[str, Any]
    pipeline: psrpcore.ServerPipeline
    #: every command of the pipeline as (text, is_script, [(name, value)])
    commands: List[Tuple[str, bool, List[Tuple[Optional[str], Any]]]]


@dataclasses.dataclass
class Request:
    """A request the server answered (or refused)."""

    action: str
    body: str
    #: PSRP bytes the request carried (base64-decoded creationXml/Arguments/Send).
    payload: bytes = b""
    answer: str = "ok"


Execute = Callable[[Invocation], Any]


class _Shell:
    def __init__(self, shell_id: str) -> None:
        self.id = shell_id
        self.pool = psrpcore.ServerRunspacePool()
        self.commands: Dict[str, psrpcore.ServerPipeline] = {}
        self.queues: Dict[Optional[uuid.UUID], bytearray] = {}


class PSRPServer:
    """A WSMan endpoint at ``http(s)://127.0.0.1:<port>/wsman`` in a thread."""

    def __init__(self, execute: Execute, username: str = "smbvol",
                 password: str = "wire-password", ssl_context: Optional[ssl.SSLContext] = None
                 ) -> None:
        self.execute = execute
        self.username = username
        self.password = password
        self.ssl_context = ssl_context
        self.requests: List[Request] = []
        self.invocations: List[Invocation] = []
        self.shells: Dict[str, _Shell] = {}
        self._faults: List[Tuple[str, FaultSpec]] = []
        self._lock = threading.RLock()
        self._httpd: Optional[http.server.ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "PSRPServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self.ssl_context is not None:
            self._httpd.socket = self.ssl_context.wrap_socket(self._httpd.socket,
                                                              server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "PSRPServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    # -- test controls -------------------------------------------------------
    def inject(self, action: str, fault: FaultSpec, times: int = 1) -> None:
        """Answer the next ``times`` requests of ``action`` with ``fault``."""
        with self._lock:
            self._faults.extend([(action, fault)] * times)

    def forget_shells(self) -> None:
        """Drop every shell, as WinRM does after its idle timeout."""
        with self._lock:
            self.shells.clear()

    def count(self, action: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if r.answer == "ok" and (action is None or r.action == action))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- request handling ----------------------------------------------------
    def _take_fault(self, action: str) -> Optional[FaultSpec]:
        for i, (a, fault) in enumerate(self._faults):
            if a == action:
                del self._faults[i]
                return fault
        return None

    def handle(self, body: bytes, authorization: str) -> Tuple[int, bytes, str]:
        """(status, response body, what happened) for one POST."""
        text = body.decode("utf-8")
        envelope = ET.fromstring(text)
        header = envelope.find("s:Header", NS)
        action = ACTIONS.get(header.findtext("wsa:Action", "", NS), "Unknown")
        message_id = header.findtext("wsa:MessageID", "", NS)
        record = Request(action=action, body=text)
        with self._lock:
            self.requests.append(record)
            expected = "Basic " + base64.b64encode(
                ("%s:%s" % (self.username, self.password)).encode("utf-8")).decode("ascii")
            fault = self._take_fault(action)
            if fault is None and authorization != expected:
                fault = "401"
            if fault is not None:
                record.answer = str(fault)
                if fault == "reset":
                    return 0, b"", "reset"
                if fault == "401":
                    return 401, b"", "401"
                if fault == "500":
                    return 500, b"Internal Server Error", "500"
                if isinstance(fault, tuple):  # (HTTP status, plain-text body)
                    return int(fault[0]), str(fault[1]).encode("utf-8"), str(fault[0])
                return 500, _fault(message_id, int(fault), "injected fault %s" % fault), "fault"
            try:
                answer = getattr(self, "_do_" + action)(envelope, record)
            except _WSManFault as exc:
                record.answer = str(exc.code)
                return 500, _fault(message_id, exc.code, exc.reason), "fault"
        return 200, _response(action, message_id, answer), "ok"

    def _shell(self, envelope: ET.Element) -> _Shell:
        shell_id = ""
        for sel in envelope.findall("s:Header/wsman:SelectorSet/wsman:Selector", NS):
            if sel.get("Name") == "ShellId":
                shell_id = sel.text or ""
        shell = self.shells.get(shell_id.upper())
        if shell is None:
            raise _WSManFault(SHELL_NOT_FOUND, (
                "The request for the Windows Remote Shell with ShellId %s failed because the "
                "shell was not found on the server." % shell_id))
        return shell

    def _feed(self, shell: _Shell, data: bytes, record: Request) -> None:
        record.payload += data
        shell.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, None))
        while True:
            event = shell.pool.next_event()
            if event is None:
                break
            if isinstance(event, psrpcore.CreatePipelineEvent):
                self._run(shell, event)
        self._drain(shell)

    def _drain(self, shell: _Shell) -> None:
        while True:
            payload = shell.pool.data_to_send()
            if payload is None:
                return
            shell.queues.setdefault(payload.pipeline_id, bytearray()).extend(payload.data)

    def _run(self, shell: _Shell, event: psrpcore.CreatePipelineEvent) -> None:
        pipeline = shell.pool.pipeline_table[event.pipeline_id]
        meta = event.pipeline
        commands = [(c.command_text, c.is_script, list(c.parameters)) for c in meta.commands]
        first = commands[0]
        params = {name: value for name, value in first[2] if name is not None}
        invocation = Invocation(script=first[0], parameters=params, pipeline=pipeline,
                                commands=commands)
        self.invocations.append(invocation)
        pipeline.start()
        try:
            outputs = self.execute(invocation)
        except ScriptFailed as exc:
            record = psrpcore.types.ErrorRecord(
                Exception=psrpcore.types.NETException(Message=str(exc)),
                CategoryInfo=psrpcore.types.ErrorCategoryInfo(),
                FullyQualifiedErrorId="ScriptFailed")
            pipeline._change_state(PSInvocationState.Failed, error=record)
            return
        if outputs is HANG:
            return
        for value in outputs or ():
            pipeline.write_output(value)
        if pipeline.state == PSInvocationState.Running:
            pipeline.complete()

    def _new_shell(self, shell_id: str) -> Any:
        return _Shell(shell_id)

    # -- WSMan actions -------------------------------------------------------
    def _do_Create(self, envelope: ET.Element, record: Request) -> ET.Element:
        shell_el = envelope.find("s:Body/rsp:Shell", NS)
        shell_id = (shell_el.get("ShellId") or str(uuid.uuid4())).upper()
        shell = self._new_shell(shell_id)
        self.shells[shell_id] = shell
        creation = shell_el.find("pwsh:creationXml", NS)
        self._feed(shell, base64.b64decode(creation.text), record)
        body = ET.Element("{%s}ResourceCreated" % NS["wst"])
        ET.SubElement(body, "{%s}Address" % NS["wsa"]).text = "http://127.0.0.1/wsman"
        ref = ET.SubElement(body, "{%s}ReferenceParameters" % NS["wsa"])
        ET.SubElement(ref, "{%s}ResourceURI" % NS["wsman"]).text = (
            "http://schemas.microsoft.com/powershell/Microsoft.PowerShell")
        sels = ET.SubElement(ref, "{%s}SelectorSet" % NS["wsman"])
        ET.SubElement(sels, "{%s}Selector" % NS["wsman"], Name="ShellId").text = shell_id
        shell_out = ET.Element("{%s}Shell" % NS["rsp"])
        ET.SubElement(shell_out, "{%s}ShellId" % NS["rsp"]).text = shell_id
        ET.SubElement(shell_out, "{%s}ResourceUri" % NS["rsp"]).text = (
            "http://schemas.microsoft.com/powershell/Microsoft.PowerShell")
        return [body, shell_out]

    def _do_Command(self, envelope: ET.Element, record: Request) -> ET.Element:
        shell = self._shell(envelope)
        cmd = envelope.find("s:Body/rsp:CommandLine", NS)
        command_id = (cmd.get("CommandId") or str(uuid.uuid4())).upper()
        shell.commands[command_id] = psrpcore.ServerPipeline(shell.pool, uuid.UUID(command_id))
        for arg in cmd.findall("rsp:Arguments", NS):
            self._feed(shell, base64.b64decode(arg.text or ""), record)
        out = ET.Element("{%s}CommandResponse" % NS["rsp"])
        ET.SubElement(out, "{%s}CommandId" % NS["rsp"]).text = command_id
        return [out]

    def _do_Send(self, envelope: ET.Element, record: Request) -> ET.Element:
        shell = self._shell(envelope)
        for stream in envelope.findall("s:Body/rsp:Send/rsp:Stream", NS):
            self._feed(shell, base64.b64decode(stream.text or ""), record)
        return [ET.Element("{%s}SendResponse" % NS["rsp"])]

    def _do_Receive(self, envelope: ET.Element, record: Request) -> ET.Element:
        shell = self._shell(envelope)
        desired = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId")
        key = uuid.UUID(command_id) if command_id else None
        data = bytes(shell.queues.pop(key, b""))
        if not data:
            raise _WSManFault(OPERATION_TIMEOUT, "The WS-Management service cannot complete "
                              "the operation within the time specified in OperationTimeout.")
        out = ET.Element("{%s}ReceiveResponse" % NS["rsp"])
        attrs = {"Name": "stdout"}
        if command_id:
            attrs["CommandId"] = command_id
        ET.SubElement(out, "{%s}Stream" % NS["rsp"], attrs).text = (
            base64.b64encode(data).decode("ascii"))
        if command_id:
            pipeline = shell.commands.get(command_id.upper())
            done = pipeline is not None and pipeline.state in (
                PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)
            ET.SubElement(out, "{%s}CommandState" % NS["rsp"], CommandId=command_id,
                          State=NS["rsp"] + "/CommandState/" + ("Done" if done else "Running"))
        return [out]

    def _do_Signal(self, envelope: ET.Element, record: Request) -> ET.Element:
        shell = self._shell(envelope)
        signal = envelope.find("s:Body/rsp:Signal", NS)
        command_id = (signal.get("CommandId") or "").upper()
        code = signal.findtext("rsp:Code", "", NS)
        pipeline = shell.commands.get(command_id)
        if pipeline is not None:
            if pipeline.state in (PSInvocationState.Running, PSInvocationState.Stopping):
                pipeline.stop()
                self._drain(shell)
            if code.endswith("Terminate"):
                pipeline.close()
                shell.commands.pop(command_id, None)
                shell.queues.pop(pipeline.pipeline_id, None)
        return [ET.Element("{%s}SignalResponse" % NS["rsp"])]

    def _do_Delete(self, envelope: ET.Element, record: Request) -> ET.Element:
        shell = self._shell(envelope)
        self.shells.pop(shell.id, None)
        return []

    def _do_Get(self, envelope: ET.Element, record: Request) -> ET.Element:
        self._shell(envelope)
        shell_out = ET.Element("{%s}Shell" % NS["rsp"])
        ET.SubElement(shell_out, "{%s}State" % NS["rsp"]).text = "Connected"
        return [shell_out]

    def pool_state(self) -> Dict[str, RunspacePoolState]:
        with self._lock:
            return {k: v.pool.state for k, v in self.shells.items()}


class _RelayShell:
    """A shell of :class:`PSRPRelay`: one ``pwsh -s`` process (one runspace pool)."""

    def __init__(self, shell_id: str, process: OutOfProcServer) -> None:
        self.id = shell_id
        self.process = process
        #: CommandId -> the pipeline id the process knows it by
        self.commands: Dict[str, uuid.UUID] = {}


class PSRPRelay(PSRPServer):
    """The same endpoint with a real PowerShell behind it: each shell is ``pwsh -s``.

    The PSRP bytes of ``creationXml``, Command ``Arguments`` and ``Send`` streams go to the
    process as ``Data`` elements (:mod:`tests.outofproc`) for the pool or the pipeline; a
    Receive returns what the process wrote for that pool or pipeline (waiting up to the
    request's ``OperationTimeout``, then the operation-timeout fault a host sends), and says
    ``Done`` once the pipeline's final state went out.  A Signal ``ctrl_c`` stops the
    pipeline (``Signal``), ``Terminate`` releases it (``Close``), Delete closes the pool and
    ends the process.  A process that has died takes its shell with it: the next request
    gets ``SHELL_NOT_FOUND``, as from a host whose ``wsmprovhost.exe`` is gone.

    ``env`` is added to the environment of every process (``PSModulePath`` for fake host
    modules, a fake host's state file).  Faults injected with :meth:`inject` happen at the
    WS-Man layer, before the process sees anything.
    """

    def __init__(self, pwsh: str, env: Optional[Dict[str, str]] = None,
                 username: str = "smbvol", password: str = "wire-password",
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(self._no_execute, username=username, password=password,
                         ssl_context=ssl_context)
        self.pwsh = pwsh
        self.env = dict(env or {})
        #: every process started, in order (tests check that none is left running)
        self.processes: List[OutOfProcServer] = []

    @staticmethod
    def _no_execute(invocation: Invocation) -> Any:  # pragma: no cover - never called
        raise AssertionError("the relay runs scripts in PowerShell, not in Python")

    def stop(self) -> None:
        super().stop()
        self.forget_shells()

    def forget_shells(self) -> None:
        """End every process and drop its shell (a host's idle timeout, a WinRM restart)."""
        with self._lock:
            shells = list(self.shells.values())
            self.shells.clear()
        for shell in shells:
            shell.process.kill()

    def running(self) -> List[OutOfProcServer]:
        """The processes still alive."""
        return [p for p in self.processes if p.alive]

    def pool_state(self) -> Dict[str, RunspacePoolState]:
        with self._lock:
            return {k: RunspacePoolState.Opened if v.process.alive else RunspacePoolState.Broken
                    for k, v in self.shells.items()}

    # -- the process ---------------------------------------------------------
    def _new_shell(self, shell_id: str) -> _RelayShell:
        process = OutOfProcServer(self.pwsh, env=self.env)
        self.processes.append(process)
        return _RelayShell(shell_id, process)

    def _shell(self, envelope: ET.Element) -> _RelayShell:
        shell = super()._shell(envelope)
        if not shell.process.alive:
            self._vanish(shell)
        return shell

    def _vanish(self, shell: _RelayShell) -> None:
        self.shells.pop(shell.id, None)
        shell.process.kill()
        raise _WSManFault(SHELL_NOT_FOUND, (
            "The request for the Windows Remote Shell with ShellId %s failed because the "
            "shell was not found on the server." % shell.id))

    @contextlib.contextmanager
    def _talking_to(self, shell: _RelayShell) -> Iterator[None]:
        """Wait for the process without holding the server's lock; a dead one vanishes."""
        self._lock.release()
        gone = False
        try:
            yield
        except ProcessGone:
            gone = True
        finally:
            self._lock.acquire()
        if gone:
            self._vanish(shell)

    def _feed(self, shell: _RelayShell, data: bytes, record: Request,
              pipeline: uuid.UUID = POOL) -> None:
        record.payload += data
        with self._talking_to(shell):
            shell.process.send(pipeline, data)

    # -- WSMan actions -------------------------------------------------------
    def _do_Command(self, envelope: ET.Element, record: Request) -> List[ET.Element]:
        shell = self._shell(envelope)
        cmd = envelope.find("s:Body/rsp:CommandLine", NS)
        command_id = (cmd.get("CommandId") or str(uuid.uuid4())).upper()
        pipeline = uuid.UUID(command_id)
        shell.commands[command_id] = pipeline
        with self._talking_to(shell):
            shell.process.command(pipeline)
        for arg in cmd.findall("rsp:Arguments", NS):
            self._feed(shell, base64.b64decode(arg.text or ""), record, pipeline)
        out = ET.Element("{%s}CommandResponse" % NS["rsp"])
        ET.SubElement(out, "{%s}CommandId" % NS["rsp"]).text = command_id
        return [out]

    def _do_Send(self, envelope: ET.Element, record: Request) -> List[ET.Element]:
        shell = self._shell(envelope)
        for stream in envelope.findall("s:Body/rsp:Send/rsp:Stream", NS):
            command_id = (stream.get("CommandId") or "").upper()
            target = shell.commands.get(command_id, POOL) if command_id else POOL
            self._feed(shell, base64.b64decode(stream.text or ""), record, target)
        return [ET.Element("{%s}SendResponse" % NS["rsp"])]

    def _do_Receive(self, envelope: ET.Element, record: Request) -> List[ET.Element]:
        shell = self._shell(envelope)
        desired = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId")
        target = shell.commands.get(command_id.upper(), uuid.UUID(command_id)) if command_id \
            else POOL
        wait = _operation_timeout(envelope)
        with self._talking_to(shell):
            data = shell.process.take(target, wait)
        if not data:
            raise _WSManFault(OPERATION_TIMEOUT, "The WS-Management service cannot complete "
                              "the operation within the time specified in OperationTimeout.")
        out = ET.Element("{%s}ReceiveResponse" % NS["rsp"])
        attrs = {"Name": "stdout"}
        if command_id:
            attrs["CommandId"] = command_id
        ET.SubElement(out, "{%s}Stream" % NS["rsp"], attrs).text = (
            base64.b64encode(data).decode("ascii"))
        if command_id:
            done = shell.process.finished(target)
            ET.SubElement(out, "{%s}CommandState" % NS["rsp"], CommandId=command_id,
                          State=NS["rsp"] + "/CommandState/" + ("Done" if done else "Running"))
        return [out]

    def _do_Signal(self, envelope: ET.Element, record: Request) -> List[ET.Element]:
        shell = self._shell(envelope)
        signal = envelope.find("s:Body/rsp:Signal", NS)
        command_id = (signal.get("CommandId") or "").upper()
        code = signal.findtext("rsp:Code", "", NS)
        pipeline = shell.commands.get(command_id)
        if pipeline is not None:
            with self._talking_to(shell):
                if code.endswith("Terminate"):
                    shell.process.close_command(pipeline)
                else:
                    shell.process.signal(pipeline)
            if code.endswith("Terminate"):
                shell.commands.pop(command_id, None)
        return [ET.Element("{%s}SignalResponse" % NS["rsp"])]

    def _do_Delete(self, envelope: ET.Element, record: Request) -> List[ET.Element]:
        shell = self._shell(envelope)
        self.shells.pop(shell.id, None)
        with self._talking_to(shell):
            shell.process.close()
        return []


def _operation_timeout(envelope: ET.Element) -> float:
    """The request's ``wsman:OperationTimeout`` in seconds (``PT20S``, ``PT1.5S``)."""
    text = envelope.findtext("s:Header/wsman:OperationTimeout", "", NS)
    found = re.match(r"PT([0-9.]+)S$", text.strip())
    return float(found.group(1)) if found else 20.0


class _WSManFault(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _envelope(action: str, relates_to: str) -> Tuple[ET.Element, ET.Element]:
    env = ET.Element("{%s}Envelope" % NS["s"])
    header = ET.SubElement(env, "{%s}Header" % NS["s"])
    ET.SubElement(header, "{%s}Action" % NS["wsa"]).text = action
    ET.SubElement(header, "{%s}MessageID" % NS["wsa"]).text = "uuid:%s" % uuid.uuid4()
    ET.SubElement(header, "{%s}RelatesTo" % NS["wsa"]).text = relates_to
    body = ET.SubElement(env, "{%s}Body" % NS["s"])
    return env, body


def _response(action: str, relates_to: str, children: List[ET.Element]) -> bytes:
    env, body = _envelope("%sResponse" % action, relates_to)
    for child in children:
        body.append(child)
    return ET.tostring(env, encoding="utf-8")


def _fault(relates_to: str, code: int, reason: str) -> bytes:
    env, body = _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to)
    fault = ET.SubElement(body, "{%s}Fault" % NS["s"])
    code_el = ET.SubElement(fault, "{%s}Code" % NS["s"])
    ET.SubElement(code_el, "{%s}Value" % NS["s"]).text = "s:Receiver"
    ET.SubElement(ET.SubElement(fault, "{%s}Reason" % NS["s"]), "{%s}Text" % NS["s"]).text = (
        reason)
    detail = ET.SubElement(fault, "{%s}Detail" % NS["s"])
    wsman_fault = ET.SubElement(detail, "{%s}WSManFault" % NS["f"], Code=str(code),
                                Machine="127.0.0.1")
    ET.SubElement(wsman_fault, "{%s}Message" % NS["f"]).text = reason
    return ET.tostring(env, encoding="utf-8")


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: PSRPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not body:  # an empty POST (authentication probe)
            self._answer(200, b"", "text/plain")
            return
        status, answer, what = self.owner.handle(body, self.headers.get("Authorization", ""))
        if what == "reset":
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.connection.close()
            self.close_connection = True
            return
        content_type = ("text/plain" if status in (401,) or what == "500"
                        else "application/soap+xml;charset=UTF-8")
        self._answer(status, answer, content_type)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="WSMan"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
