"""PowerShell's out-of-process remoting server (``pwsh -s``) as a Python object.

``pwsh -NoLogo -NoProfile -s`` is the server end that PowerShell itself uses for jobs and
``New-PSSession -UseWindowsPowerShell``: PSRP on standard input and output, one XML element
per line (``OutOfProcessUtils`` in PowerShell's source has the element set):

=========================================================  ===================================
to the server                                              from the server
=========================================================  ===================================
``<Data Stream='Default' PSGuid='G'>BASE64</Data>``        ``<DataAck PSGuid='G' />``
``<Command PSGuid='P' />`` (a pipeline's transport)        ``<CommandAck PSGuid='P' />``
``<Signal PSGuid='P' />`` (stop the pipeline)              ``<SignalAck PSGuid='P' />``
``<Close PSGuid='G' />`` (the pipeline, or the pool: G=0)  ``<CloseAck PSGuid='G' />``
                                                           ``<Data ... PSGuid='G'>BASE64</Data>``
=========================================================  ===================================

``G`` is all zeros for the runspace pool, the pipeline id otherwise; ``BASE64`` holds PSRP
fragments, exactly the bytes WS-Man carries in ``creationXml``, ``Arguments``, ``Send`` and
``Receive`` streams.  :class:`OutOfProcServer` starts the process, writes those elements,
and collects what the process writes back per PSGuid (a reader thread), noticing when a
pipeline reached a final state (its ``PIPELINE_STATE`` message) and when the process died.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import struct
import subprocess
import threading
import time
import uuid
from typing import Dict, List, Mapping, Optional, Set

LOG = logging.getLogger(__name__)

POOL = uuid.UUID(int=0)
#: MS-PSRP message type of PIPELINE_STATE, and the final PSInvocationState values in it.
PIPELINE_STATE = 0x00041006
_FINAL_STATES = {3, 4, 5}  # Stopped, Completed, Failed
_STATE = re.compile(rb'<I32 N="PipelineState">(\d+)</I32>')
_LINE = re.compile(r"^<(\w+)\s+(?:Stream='(\w+)'\s+)?PSGuid='([0-9a-fA-F-]+)'\s*/?>"
                   r"(?:([^<]*)</\1>)?")


class ProcessGone(Exception):
    """The pwsh process has exited (or was killed)."""


class _Stream:
    """What the process wrote for one PSGuid."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.partial: Dict[int, bytearray] = {}  # object id -> message bytes so far
        self.final = False
        self.acks: Dict[str, int] = {}

    def add(self, data: bytes) -> None:
        self.data.extend(data)
        for object_id, start, end, blob in _fragments(data):
            if start:
                self.partial[object_id] = bytearray()
            buf = self.partial.get(object_id)
            if buf is None:
                continue
            buf.extend(blob)
            if end:
                message = bytes(self.partial.pop(object_id))
                if len(message) >= 40 and struct.unpack("<I", message[4:8])[0] == PIPELINE_STATE:
                    found = _STATE.search(message[40:])
                    if found and int(found.group(1)) in _FINAL_STATES:
                        self.final = True


def _fragments(data: bytes):
    """(object id, start, end, blob) of each PSRP fragment in ``data``."""
    offset = 0
    while offset + 21 <= len(data):
        object_id, _fragment_id, flags, length = struct.unpack(">QQBI", data[offset:offset + 21])
        blob = data[offset + 21:offset + 21 + length]
        offset += 21 + length
        yield object_id, bool(flags & 1), bool(flags & 2), blob


class OutOfProcServer:
    """One ``pwsh -s`` process: one runspace pool and its pipelines."""

    def __init__(self, pwsh: str, env: Optional[Mapping[str, str]] = None,
                 ack_timeout: float = 30.0) -> None:
        full_env = dict(os.environ)
        full_env.update({"POWERSHELL_UPDATECHECK": "Off", "POWERSHELL_TELEMETRY_OPTOUT": "1",
                         "DOTNET_CLI_TELEMETRY_OPTOUT": "1"})
        full_env.update(env or {})
        self.ack_timeout = ack_timeout
        self.proc = subprocess.Popen([pwsh, "-NoLogo", "-NoProfile", "-s"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env)
        self.cond = threading.Condition()
        self.streams: Dict[uuid.UUID, _Stream] = {}
        self.stderr = bytearray()
        self.unknown: List[str] = []
        #: pipelines created and not yet closed (their Close is due before the pool's)
        self.open_commands: Set[uuid.UUID] = set()
        self.exited = False
        self._write_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    # -- reading -------------------------------------------------------------
    def _stream(self, guid: uuid.UUID) -> _Stream:
        return self.streams.setdefault(guid, _Stream())

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            found = _LINE.match(line)
            with self.cond:
                if found is None:
                    if line:
                        self.unknown.append(line)
                else:
                    tag, _kind, guid, body = found.groups()
                    stream = self._stream(uuid.UUID(guid))
                    if tag == "Data":
                        stream.add(base64.b64decode(body or ""))
                    else:
                        stream.acks[tag] = stream.acks.get(tag, 0) + 1
                self.cond.notify_all()
        self.proc.wait()
        with self.cond:
            self.exited = True
            self.cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self.cond:
                self.stderr.extend(raw)

    # -- writing -------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self.exited and self.proc.poll() is None

    def _write(self, line: str) -> None:
        if not self.alive:
            raise ProcessGone("pwsh exited with %s" % self.proc.poll())
        assert self.proc.stdin is not None
        try:
            with self._write_lock:
                self.proc.stdin.write(line.encode("ascii") + b"\n")
                self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise ProcessGone("pwsh exited with %s" % self.proc.poll()) from None

    def _ack_count(self, guid: uuid.UUID, tag: str) -> int:
        with self.cond:
            return self._stream(guid).acks.get(tag, 0)

    def _wait_ack(self, guid: uuid.UUID, tag: str, before: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._stream(guid).acks.get(tag, 0) <= before:
                if self.exited:
                    raise ProcessGone("pwsh exited with %s" % self.proc.poll())
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def _element(self, tag: str, guid: uuid.UUID, body: Optional[bytes] = None,
                 timeout: Optional[float] = None) -> bool:
        before = self._ack_count(guid, tag + "Ack")
        if body is None:
            self._write("<%s PSGuid='%s' />" % (tag, guid))
        else:
            self._write("<%s Stream='Default' PSGuid='%s'>%s</%s>"
                        % (tag, guid, base64.b64encode(body).decode("ascii"), tag))
        return self._wait_ack(guid, tag + "Ack", before,
                              self.ack_timeout if timeout is None else timeout)

    def send(self, guid: uuid.UUID, fragments: bytes) -> None:
        """PSRP fragments for the pool (``POOL``) or a pipeline, one Data element each."""
        for chunk in _split(fragments):
            self._element("Data", guid, chunk)

    def command(self, pipeline: uuid.UUID) -> None:
        """A pipeline's transport (``Command``), waiting for its ``CommandAck``."""
        self._element("Command", pipeline)
        with self.cond:
            self.open_commands.add(pipeline)

    def signal(self, pipeline: uuid.UUID) -> None:
        """Stop the pipeline (``Signal``), waiting for its ``SignalAck``."""
        self._element("Signal", pipeline)

    def close_command(self, pipeline: uuid.UUID) -> None:
        """Release the pipeline's transport (``Close``), waiting for its ``CloseAck``."""
        with self.cond:
            if pipeline not in self.open_commands:
                return
            self.open_commands.discard(pipeline)
        self._element("Close", pipeline)

    def take(self, guid: uuid.UUID, timeout: float) -> bytes:
        """What the process wrote for ``guid`` (waits up to ``timeout`` for something)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            stream = self._stream(guid)
            while not stream.data:
                if self.exited:
                    raise ProcessGone("pwsh exited with %s" % self.proc.poll())
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self.cond.wait(left)
            data = bytes(stream.data)
            stream.data.clear()
            return data

    def finished(self, pipeline: uuid.UUID) -> bool:
        """Whether the pipeline reached a final state and all of its output was taken."""
        with self.cond:
            stream = self._stream(pipeline)
            return stream.final and not stream.data

    # -- ending ------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> None:
        """Close every pipeline, then the pool; end the process (killed if it lingers)."""
        try:
            if self.alive:
                for pipeline in list(self.open_commands):
                    self.close_command(pipeline)
                self._element("Close", POOL, timeout=timeout)
        except ProcessGone:
            pass
        finally:
            self._end(timeout)

    def kill(self) -> None:
        """End the process at once (a crash, as far as the client can tell)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self._end(5.0)

    def _end(self, timeout: float) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)


def _split(fragments: bytes) -> List[bytes]:
    """The fragments one by one (each becomes one Data element, as PowerShell sends them)."""
    out = []
    offset = 0
    while offset + 21 <= len(fragments):
        length = struct.unpack(">I", fragments[offset + 17:offset + 21])[0]
        out.append(fragments[offset:offset + 21 + length])
        offset += 21 + length
    if offset < len(fragments):
        out.append(fragments[offset:])
    return out


def messages(data: bytes) -> List[bytes]:
    """The complete PSRP messages in a run of fragments (header and CLIXML data)."""
    out: List[bytes] = []
    partial: Dict[int, bytearray] = {}
    for object_id, start, end, blob in _fragments(data):
        if start:
            partial[object_id] = bytearray()
        if object_id in partial:
            partial[object_id].extend(blob)
            if end:
                out.append(bytes(partial.pop(object_id)))
    return out


def clixml_size(data: bytes) -> int:
    """Bytes of CLIXML in the complete messages of ``data`` (without the 40-byte headers;
    encrypted SecureStrings count as the base64 text they are)."""
    return sum(max(0, len(m) - 40) for m in messages(data))
