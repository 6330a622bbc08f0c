"""A small WinRM (WS-Management shell) server for tests, answering through ``responses``.

It parses the SOAP requests the real pywinrm client sends and answers like a
Windows host: *Create* → a shell id, *Command* → a command id, *Send* → stdin
collected, *Receive* → base64 stdout/stderr streams and the exit code,
*Signal* and *Delete* → acknowledged (``RelatesTo`` the request).  Every request
is recorded (:class:`Recorded`) so tests can look at what went over the wire.

When the command's stdin is closed the server runs ``program(command,
arguments, stdin)`` → ``(stdout, stderr, exit_code)``.  The default program
decodes the smbvol stdin payload (:func:`decode_payload`) and hands it to a
``handler(text, params, secrets)`` returning an envelope dict; :class:`EngineProgram`
runs the command line in a real PowerShell (``pwsh``) instead and answers with its real
output and exit code.

Failures are injected per action with :meth:`FakeWinRMServer.inject`: an
exception instance (raised into requests, e.g. ``ConnectionError``), a
``(status, headers, body)`` tuple, or a callable ``(Recorded) -> tuple`` such as
:func:`wsman_fault`.

Authentication: ``auth="basic"`` checks the ``Authorization`` header against
the user and password (401 otherwise); ``auth="reject"`` answers every request
with 401 offering only ``Basic`` (a host where Negotiate/NTLM is disabled).  A
full NTLM exchange is not played: requests-ntlm reads the TLS certificate from
the real socket for channel binding, which ``responses`` does not have.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import ntpath
import os
import re
import subprocess
import threading
import uuid
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, List, Optional, Tuple

import responses

from smbvol import envelope

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
    SHELL + "/Command": "Command",
    SHELL + "/Send": "Send",
    SHELL + "/Receive": "Receive",
    SHELL + "/Signal": "Signal",
}
OPERATION_TIMEOUT_CODE = 2150858793
_DONE = SHELL + "/CommandState/Done"
_RUNNING = SHELL + "/CommandState/Running"

Answer = Tuple[int, Dict[str, str], str]
Program = Callable[[str, List[str], bytes], Tuple[bytes, bytes, int]]


def decode_payload(data: str) -> Tuple[str, Dict[str, Any], List[Dict[str, Any]]]:
    """The script text, plain parameters and secrets of an smbvol stdin payload."""

    def b64(s: str) -> str:
        return base64.b64decode(s.strip()).decode("utf-8")

    lines = data.split("\n")
    text = b64(lines[0])
    params = json.loads(b64(lines[1]))
    secrets = []
    for line in lines[2:]:
        f = line.strip().split("\t")
        if len(f) < 4:
            continue
        secrets.append({"kind": f[0], "name": b64(f[1]), "index": f[2],
                        "user": b64(f[3]) if f[0] == "credential" else None,
                        "value": b64(f[-1])})
    return text, params, secrets


_B64_TOKEN = re.compile(rb"[A-Za-z0-9+/]{8,}={0,2}")


def contains_secret(data: bytes, secret: str, depth: int = 3) -> bool:
    """Whether ``secret`` is in ``data`` as text, UTF-16LE, or base64 of those (nested).

    Base64 runs are decoded whole, so a secret is found at any alignment inside
    a longer encoded text (``-EncodedCommand``, a payload line).
    """
    if secret.encode("utf-8") in data or secret.encode("utf-16-le") in data:
        return True
    if depth == 0:
        return False
    for text in {data, data.decode("utf-16-le", "ignore").encode("utf-8", "ignore")}:
        for token in _B64_TOKEN.findall(text):
            if not token.endswith(b"="):
                token = token[: len(token) - len(token) % 4]
            try:
                decoded = base64.b64decode(token, validate=True)
            except ValueError:
                continue
            if contains_secret(decoded, secret, depth - 1):
                return True
    return False


def envelope_program(handler: Callable[[str, dict, list], dict],
                     stdout_prefix: str = "", stdout_suffix: str = "",
                     stderr: str = "", exit_code: int = 0) -> Program:
    """A host program printing ``handler``'s envelope between optional noise."""

    def program(command: str, arguments: List[str], stdin: bytes):
        text, params, secrets = decode_payload(stdin.decode("utf-8"))
        doc = handler(text, params, secrets)
        out = stdout_prefix + envelope.format_envelope(doc) + "\r\n" + stdout_suffix
        return out.encode("utf-8"), stderr.encode("utf-8"), exit_code

    return program


def echo_handler(text: str, params: dict, secrets: list) -> dict:
    """Result: the parameters, the script size and which secrets arrived."""
    return envelope.ok({"params": params, "script_chars": len(text),
                        "script_tail": text[-40:],
                        "secrets": [{"name": s["name"], "user": s["user"],
                                     "length": len(s["value"])} for s in secrets]})


class Running:
    """A program's process while it runs (what :class:`EngineProgram` returns)."""

    def __init__(self, argv: List[str], stdin: bytes, env: Dict[str, str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.result: Optional[Tuple[bytes, bytes, int]] = None
        self.killed = False
        self._thread = threading.Thread(target=self._communicate, args=(stdin,), daemon=True)
        self._thread.start()

    def _communicate(self, stdin: bytes) -> None:
        out, err = self.proc.communicate(stdin)
        self.result = (out, err, self.proc.returncode)

    def wait(self, timeout: float) -> Optional[Tuple[bytes, bytes, int]]:
        """(stdout, stderr, exit code) once it ended, or None after ``timeout`` seconds."""
        self._thread.join(timeout)
        return self.result

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
        self._thread.join(10)


class EngineProgram:
    """A program that runs the received command line in a real PowerShell.

    ``powershell.exe`` (or ``pwsh``) with its arguments — smbvol's ``-EncodedCommand``
    bootstrap — runs as ``pwsh`` with the same arguments and the command's standard input;
    its real stdout, stderr and exit code are the answer.  While it runs, a Receive waits
    up to its ``OperationTimeout`` (then the operation-timeout fault); a Signal or Delete
    kills it.  ``env`` is added to its environment (fake host modules, their state);
    ``prelude`` is PowerShell run first in the same process, as a host's modules are loaded
    before anything runs (the ``-EncodedCommand`` text runs unchanged after it).
    """

    PROGRAMS = ("powershell.exe", "powershell", "pwsh.exe", "pwsh")

    def __init__(self, pwsh: str, env: Optional[Dict[str, str]] = None,
                 prelude: str = "") -> None:
        self.pwsh = pwsh
        self.env = dict(env or {})
        self.prelude = prelude
        #: every process started, in order
        self.runs: List[Running] = []

    def __call__(self, command: str, arguments: List[str], stdin: bytes) -> Running:
        name = ntpath.basename(command.strip('"')).lower()
        assert name in self.PROGRAMS, "the engine program runs PowerShell, not %r" % command
        env = dict(os.environ)
        env.update({"POWERSHELL_UPDATECHECK": "Off", "POWERSHELL_TELEMETRY_OPTOUT": "1",
                    "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
                    # a process this short gains nothing from the JIT's profile-guided
                    # recompilation; without it a call takes about 10% less CPU
                    "DOTNET_TieredPGO": "0"})
        env.update(self.env)
        run = Running([self.pwsh] + self._with_prelude(list(arguments)), stdin, env)
        self.runs.append(run)
        return run

    def running(self) -> List[Running]:
        return [r for r in self.runs if r.alive]

    def _with_prelude(self, arguments: List[str]) -> List[str]:
        if not self.prelude:
            return arguments
        lowered = [a.lower() for a in arguments]
        at = lowered.index("-encodedcommand") + 1
        text = base64.b64decode(arguments[at]).decode("utf-16-le")
        arguments[at] = base64.b64encode((self.prelude + "\n" + text).encode("utf-16-le")
                                         ).decode("ascii")
        return arguments


def _operation_timeout(body: bytes) -> float:
    """A request's ``OperationTimeout`` in seconds (``PT20S``, ``PT1.500S``)."""
    found = re.search(rb"OperationTimeout>PT([0-9.]+)S<", body)
    return float(found.group(1)) if found else 20.0


@dataclasses.dataclass
class Recorded:
    """One request as the server saw it."""

    action: str
    headers: Dict[str, str]
    body: bytes
    message_id: str
    shell_id: Optional[str] = None
    options: Dict[str, str] = dataclasses.field(default_factory=dict)
    command: Optional[str] = None
    arguments: Optional[str] = None
    stdin: Optional[bytes] = None
    stdin_end: bool = False


@dataclasses.dataclass
class _Command:
    command: str
    arguments: List[str]
    stdin: bytearray = dataclasses.field(default_factory=bytearray)
    ended: bool = False
    output: Optional[List[Tuple[bytes, bytes]]] = None
    exit_code: int = 0
    signalled: bool = False
    #: the process of an :class:`EngineProgram` while it runs
    running: Optional["Running"] = None


def wsman_fault(code: int, subcode: str, reason: str, status: int = 500
                ) -> Callable[[Recorded], Answer]:
    """An answer: a SOAP fault with a ``w:WSManFault Code``."""

    def answer(req: Recorded) -> Answer:
        body = (
            '<s:Envelope xmlns:s="%(s)s" xmlns:a="%(a)s" xmlns:w="%(w)s">'
            "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"
            "<a:MessageID>uuid:%(mid)s</a:MessageID><a:RelatesTo>%(rel)s</a:RelatesTo>"
            "</s:Header><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value>"
            "<s:Subcode><s:Value>w:%(sub)s</s:Value></s:Subcode></s:Code>"
            '<s:Reason><s:Text xml:lang="en-US">%(reason)s</s:Text></s:Reason>'
            '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/'
            'wsmanfault" Code="%(code)d" Machine="winhost"><f:Message>%(reason)s'
            "</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
        ) % dict(NS, mid=uuid.uuid4(), rel=req.message_id, sub=subcode, reason=reason,
                 code=code)
        return status, {"Content-Type": "application/soap+xml;charset=UTF-8"}, body

    return answer


def operation_timeout() -> Callable[[Recorded], Answer]:
    """The fault a Receive gets when no output came within OperationTimeout."""
    return wsman_fault(OPERATION_TIMEOUT_CODE, "TimedOut",
                       "The WS-Management service cannot complete the operation within "
                       "the time specified in OperationTimeout.")


class FakeWinRMServer:
    """Answers WinRM shell requests for ``endpoint`` (install with :meth:`install`)."""

    def __init__(self, program: Optional[Program] = None,
                 endpoint: str = "https://winhost:5986/wsman", auth: str = "basic",
                 username: str = "CORP\\svc", password: str = "",
                 receive_chunks: int = 1) -> None:
        self.program = program or envelope_program(echo_handler)
        self.endpoint = endpoint
        self.auth = auth
        self.username = username
        self.password = password
        self.receive_chunks = max(1, receive_chunks)
        self.requests: List[Recorded] = []
        self.shells: Dict[str, Dict[str, _Command]] = {}
        self.shell_options: Dict[str, Dict[str, str]] = {}
        self.closed: List[str] = []
        self._injected: Dict[str, List[Any]] = {}

    # -- set-up -----------------------------------------------------------------
    def install(self, rsps: responses.RequestsMock) -> "FakeWinRMServer":
        rsps.add_callback(responses.POST, self.endpoint, callback=self)
        return self

    def inject(self, action: str, *answers: Any) -> None:
        """Answer the next requests of ``action`` with ``answers``, in order."""
        assert action in ACTIONS.values(), action
        self._injected.setdefault(action, []).extend(answers)

    # -- views ------------------------------------------------------------------
    def of(self, action: str) -> List[Recorded]:
        return [r for r in self.requests if r.action == action]

    @property
    def open_shells(self) -> List[str]:
        return [s for s in self.shells if s not in self.closed]

    # -- the HTTP callback -----------------------------------------------------------
    def __call__(self, request) -> Answer:
        if self.auth == "reject":
            return 401, {"WWW-Authenticate": 'Basic realm="WSMAN"'}, ""
        if self.auth == "basic":
            token = base64.b64encode(("%s:%s" % (self.username, self.password))
                                     .encode("utf-8")).decode("ascii")
            if request.headers.get("Authorization") != "Basic " + token:
                return 401, {"WWW-Authenticate": 'Basic realm="WSMAN"'}, ""
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        req = self._parse(dict(request.headers), body)
        self.requests.append(req)
        queue = self._injected.get(req.action)
        if queue:
            answer = queue.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer):
                return answer(req)
            return answer
        return getattr(self, "_" + req.action.lower())(req)

    def _parse(self, headers: Dict[str, str], body: bytes) -> Recorded:
        root = ET.fromstring(body)
        action = ACTIONS[root.find(".//a:Action", NS).text]
        req = Recorded(action=action, headers=headers, body=body,
                       message_id=root.find(".//a:MessageID", NS).text)
        sel = root.find(".//w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        req.shell_id = sel.text if sel is not None else None
        req.options = {o.get("Name"): o.text for o in root.iterfind(".//w:Option", NS)}
        cmd = root.find(".//rsp:CommandLine/rsp:Command", NS)
        if cmd is not None:
            req.command = cmd.text
            args = root.find(".//rsp:CommandLine/rsp:Arguments", NS)
            req.arguments = args.text if args is not None else ""
        stream = root.find(".//rsp:Send/rsp:Stream", NS)
        if stream is not None:
            req.stdin = base64.b64decode(stream.text or "")
            req.stdin_end = stream.get("End") == "true"
            req.options["CommandId"] = stream.get("CommandId")
        for tag in ("rsp:Receive/rsp:DesiredStream", "rsp:Signal"):
            node = root.find(".//" + tag, NS)
            if node is not None:
                req.options["CommandId"] = node.get("CommandId")
        return req

    # -- actions ----------------------------------------------------------------------
    def _reply(self, req: Recorded, action: str, body: str) -> Answer:
        text = (
            '<s:Envelope xmlns:s="%(s)s" xmlns:a="%(a)s" xmlns:w="%(w)s" xmlns:rsp="%(rsp)s" '
            'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
            "<s:Header><a:Action>%(action)s</a:Action><a:MessageID>uuid:%(mid)s</a:MessageID>"
            "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
            "<a:RelatesTo>%(rel)s</a:RelatesTo></s:Header><s:Body>%(body)s</s:Body>"
            "</s:Envelope>"
        ) % dict(NS, action=action, mid=uuid.uuid4(), rel=req.message_id, body=body)
        return 200, {"Content-Type": "application/soap+xml;charset=UTF-8"}, text

    def _shell(self, req: Recorded) -> Dict[str, _Command]:
        assert req.shell_id in self.shells and req.shell_id not in self.closed, req.shell_id
        return self.shells[req.shell_id]

    def _create(self, req: Recorded) -> Answer:
        shell_id = str(uuid.uuid4()).upper()
        self.shells[shell_id] = {}
        self.shell_options[shell_id] = dict(req.options)
        body = ("<x:ResourceCreated><a:Address>%s</a:Address><a:ReferenceParameters>"
                "<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
                "</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">%s</w:Selector>"
                "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                "<rsp:Shell><rsp:ShellId>%s</rsp:ShellId></rsp:Shell>"
                % (self.endpoint, shell_id, shell_id))
        return self._reply(req, "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
                                "CreateResponse", body)

    def _command(self, req: Recorded) -> Answer:
        command_id = str(uuid.uuid4()).upper()
        self._shell(req)[command_id] = _Command(req.command, (req.arguments or "").split())
        return self._reply(req, SHELL + "/CommandResponse",
                           "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId>"
                           "</rsp:CommandResponse>" % command_id)

    def _send(self, req: Recorded) -> Answer:
        cmd = self._shell(req)[req.options["CommandId"]]
        assert not cmd.ended, "stdin sent after it was closed"
        cmd.stdin += req.stdin or b""
        cmd.ended = req.stdin_end
        return self._reply(req, SHELL + "/SendResponse", "<rsp:SendResponse/>")

    def _receive(self, req: Recorded) -> Answer:
        command_id = req.options["CommandId"]
        cmd = self._shell(req)[command_id]
        if not cmd.ended:
            return operation_timeout()(req)
        if cmd.output is None:
            result = cmd.running or self.program(cmd.command, cmd.arguments, bytes(cmd.stdin))
            if isinstance(result, Running):  # a real process: wait as a host does
                cmd.running = result
                result = result.wait(_operation_timeout(req.body))
                if result is None:
                    return operation_timeout()(req)
            out, err, cmd.exit_code = result
            n = self.receive_chunks
            cut = [len(out) * i // n for i in range(n + 1)]
            ecut = [len(err) * i // n for i in range(n + 1)]
            cmd.output = [(out[cut[i]:cut[i + 1]], err[ecut[i]:ecut[i + 1]]) for i in range(n)]
        out, err = cmd.output.pop(0) if cmd.output else (b"", b"")
        streams = "".join(
            '<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>'
            % (name, command_id, base64.b64encode(data).decode("ascii"))
            for name, data in (("stdout", out), ("stderr", err)) if data)
        if cmd.output:
            state = '<rsp:CommandState CommandId="%s" State="%s"/>' % (command_id, _RUNNING)
        else:
            streams += ('<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream>'
                        '<rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>'
                        % (command_id, command_id))
            state = ('<rsp:CommandState CommandId="%s" State="%s"><rsp:ExitCode>%d'
                     "</rsp:ExitCode></rsp:CommandState>" % (command_id, _DONE, cmd.exit_code))
        return self._reply(req, SHELL + "/ReceiveResponse",
                           "<rsp:ReceiveResponse>%s%s</rsp:ReceiveResponse>" % (streams, state))

    def _signal(self, req: Recorded) -> Answer:
        cmd = self._shell(req)[req.options["CommandId"]]
        cmd.signalled = True
        if cmd.running is not None:
            cmd.running.kill()  # Terminate ends the process, finished or not
        return self._reply(req, SHELL + "/SignalResponse", "<rsp:SignalResponse/>")

    def _delete(self, req: Recorded) -> Answer:
        for cmd in self._shell(req).values():
            if cmd.running is not None:
                cmd.running.kill()
        self.closed.append(req.shell_id)
        return self._reply(req, "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
                                "DeleteResponse", "")
