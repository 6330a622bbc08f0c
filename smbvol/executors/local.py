"""The local executor: Windows PowerShell on this machine (the Nova compute host).

On the host, each script starts one ``powershell.exe`` (or the configured
``[smbvol] powershell_path``, e.g. ``pwsh``) with the fixed arguments of
:data:`smbvol.executors.base.POWERSHELL_ARGS`: ``-NoLogo -NoProfile
-NonInteractive`` and a fixed bootstrap passed with ``-EncodedCommand``.  The
script, its parameters and its secrets are written to the process's standard
input (:func:`smbvol.executors.base.encode_payload`), so no value appears on
the command line (where the process list and the audit log would show it) and
scripts may be of any size.  Output is read as UTF-8.

Which PowerShell: on Windows the default ``powershell_path`` (``powershell.exe``)
means ``%SystemRoot%\\System32\\WindowsPowerShell\\v1.0\\powershell.exe`` —
``Sysnative`` from a 32-bit Python, whose System32 is the 32-bit PowerShell
without the Hyper-V module — never the first ``powershell.exe`` on PATH; any
other value is used as given (:func:`smbvol.executors.base.windows_powershell`).
Elsewhere the configured name is looked up on PATH (``pwsh`` for tests).

Output is read by two threads with a cap (``max_output_bytes``): a process that
prints more is killed and :class:`~smbvol.exceptions.OutputLimitExceeded`
raised, so memory stays bounded.

Timeout: when it expires the process tree is killed and
:class:`~smbvol.exceptions.ExecutorTimeout` reports the time the call really
took, kill and drain included.  On Windows the process is put in a Job object
with ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``, so terminating the job ends every
process it started, however detached.  On POSIX the process leads a new
session and its process group is killed (``killpg``); **a descendant that calls
``setsid()`` itself leaves that group and survives** — a documented limit
(PowerShell scripts do not do that; a stray child that keeps the output pipes
open is no longer waited for beyond a short drain).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, Callable, Iterator, List, Mapping, Optional

from smbvol import exceptions
from smbvol.executors._deadline import DEFAULT_MAX_OUTPUT
from smbvol.executors.base import (
    POWERSHELL_ARGS,
    Executor,
    RawOutput,
    encode_payload,
    windows_powershell,
)
from smbvol.scripts import Script

LOG = logging.getLogger(__name__)

_WINDOWS = sys.platform == "win32"
#: Seconds to collect what a killed process tree left in its pipes.
_DRAIN_SECONDS = 1.0
_CHUNK = 64 * 1024


class LocalExecutor(Executor):
    """Runs scripts with the local PowerShell; values and secrets over stdin."""

    kind = "local"

    def __init__(self, powershell_path: str = "powershell.exe", host: str = "localhost",
                 default_timeout: float = 300.0, retry: Optional[Callable[..., Any]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_output: int = DEFAULT_MAX_OUTPUT,
                 environment: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(host=host, default_timeout=default_timeout, retry=retry,
                         max_output=max_output)
        #: The environment of the PowerShell process (None: this process's), e.g. a
        #: PSModulePath of its own.  Never a secret: secrets go over stdin.
        self.environment = dict(environment) if environment is not None else None
        if not powershell_path:
            raise exceptions.ConfigError(option="smbvol.powershell_path",
                                         reason="empty; set powershell.exe or pwsh")
        self.powershell_path = powershell_path
        self._clock = clock

    @classmethod
    def from_conf(cls, conf, host: Optional[str] = None) -> "LocalExecutor":
        """``[smbvol] powershell_path`` and ``script_timeout``; ``host`` only labels logs."""
        return cls(powershell_path=conf.smbvol.powershell_path, host=host or "localhost",
                   default_timeout=float(conf.smbvol.script_timeout),
                   max_output=int(getattr(conf.smbvol, "max_output_bytes", DEFAULT_MAX_OUTPUT)))

    # -- the one method ---------------------------------------------------------
    def command_line(self) -> List[str]:
        """The argv of every run: the executable and the fixed arguments, no value."""
        wanted = self.powershell_path
        if _WINDOWS:
            wanted = windows_powershell(wanted, os.environ)
        exe = shutil.which(wanted)
        if exe is None:
            raise exceptions.ConfigError(
                option="smbvol.powershell_path",
                reason="%r is not an executable file or on PATH; install Windows PowerShell "
                       "or point [smbvol] powershell_path at powershell.exe or pwsh"
                       % wanted)
        return [exe] + list(POWERSHELL_ARGS)

    def handle(self, script: Script, parameters: Mapping[str, Any],
               timeout: float) -> RawOutput:
        argv = self.command_line()
        payload = encode_payload(script.text, parameters).encode("utf-8")
        budget = self.call_budget(timeout)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.environment, **_group_kwargs())
        budget.script_started = True
        job = _JobObject.around(proc) if _WINDOWS else None
        try:
            run = _Run(proc, payload, self.max_output)
            outcome = run.wait(budget.remaining())
            if outcome == "timeout":
                LOG.warning("%s did not finish within %s s; killing process tree %d",
                            script.name, timeout, proc.pid)
                _kill_tree(proc, job)
                run.drain(_DRAIN_SECONDS)
                raise exceptions.ExecutorTimeout(host=self.host, elapsed=budget.elapsed(),
                                                 timeout=timeout, setting="script_timeout")
            if outcome == "overflow":
                LOG.warning("%s printed more than %d bytes; killing process tree %d",
                            script.name, self.max_output, proc.pid)
                _kill_tree(proc, job)
                run.drain(_DRAIN_SECONDS)
                raise exceptions.OutputLimitExceeded(host=self.host, limit=self.max_output)
        except BaseException:
            _kill_tree(proc, job)
            raise
        finally:
            if job is not None:
                job.close()
        stdout, stderr = run.output()
        return RawOutput(stdout=stdout.decode("utf-8", errors="replace"),
                         stderr=stderr.decode("utf-8", errors="replace"),
                         exit_code=proc.returncode)

    @contextlib.contextmanager
    def translate_errors(self, timeout: float) -> Iterator[None]:
        """OS errors starting or talking to PowerShell → :class:`ExecutorError`."""
        try:
            yield
        except exceptions.SmbvolError:
            raise
        except OSError as exc:
            raise exceptions.ExecutorError(
                host=self.host, reason="cannot run %s: %s" % (
                    self.powershell_path, exc.strerror or exc)) from None

    def __repr__(self) -> str:
        return "<LocalExecutor host=%r powershell=%r>" % (self.host, self.powershell_path)


def _group_kwargs() -> dict:
    """Start the process as the leader of its own group, so its tree can be killed."""
    if _WINDOWS:
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
        flags |= getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
        return {"creationflags": flags}
    return {"start_new_session": True}


class _Run:
    """Feeds stdin and reads stdout/stderr of one process in threads, with a byte cap."""

    def __init__(self, proc: "subprocess.Popen[bytes]", payload: bytes, cap: int) -> None:
        self.proc = proc
        self.cap = int(cap)
        self.changed = threading.Event()
        self.overflow = False
        self._size = 0
        self._lock = threading.Lock()
        self._out: List[bytes] = []
        self._err: List[bytes] = []
        self._threads = [
            threading.Thread(target=self._feed, args=(payload,), daemon=True),
            threading.Thread(target=self._read, args=(proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self._err), daemon=True),
            threading.Thread(target=self._reap, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _feed(self, payload: bytes) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(payload)
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]

    def _read(self, pipe: Optional[IO[bytes]], into: List[bytes]) -> None:
        try:
            while pipe is not None:
                chunk = pipe.read1(_CHUNK) if hasattr(pipe, "read1") else pipe.read(_CHUNK)
                if not chunk:
                    break
                with self._lock:
                    self._size += len(chunk)
                    if self._size > self.cap:
                        self.overflow = True
                        self.changed.set()
                        return
                    into.append(chunk)
        except (OSError, ValueError):
            pass
        finally:
            self.changed.set()

    def _reap(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.wait()
        self.changed.set()

    def _readers_done(self) -> bool:
        return not (self._threads[1].is_alive() or self._threads[2].is_alive())

    def wait(self, timeout: float) -> str:
        """``done``, ``timeout`` or ``overflow``."""
        deadline = time.monotonic() + max(0.0, timeout)
        exited_at: Optional[float] = None
        while True:
            if self.overflow:
                return "overflow"
            if self.proc.poll() is not None:
                if self._readers_done():
                    return "done"
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > _DRAIN_SECONDS:
                    # A descendant keeps the pipes open: what it writes now is not ours.
                    LOG.warning("process %d ended but a child keeps its output open; "
                                "not waiting for it", self.proc.pid)
                    return "done"
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            self.changed.clear()
            if self.overflow or (self.proc.poll() is not None and self._readers_done()):
                continue
            self.changed.wait(min(left, 0.2 if exited_at else left))

    def drain(self, seconds: float) -> None:
        """Give the readers ``seconds`` to collect what is left.

        A reader still blocked after that (a surviving descendant holds the pipe) is
        left to end with the pipe; closing the pipe under it would block this thread.
        """
        end = time.monotonic() + seconds
        for t in self._threads[1:3]:
            t.join(max(0.0, end - time.monotonic()))

    def output(self) -> "tuple[bytes, bytes]":
        with self._lock:
            return b"".join(self._out), b"".join(self._err)


class _JobObject:
    """A Windows Job object that kills every process in it when terminated or closed."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    @classmethod
    def around(cls, proc: "subprocess.Popen[bytes]") -> Optional["_JobObject"]:
        """Put ``proc`` in a new kill-on-close job (None if Windows refuses)."""
        try:
            import ctypes
            from ctypes import wintypes
        except ImportError:  # pragma: no cover - Windows only
            return None

        class _Limits(ctypes.Structure):  # JOBOBJECT_EXTENDED_LIMIT_INFORMATION
            _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64),
                        ("PerJobUserTimeLimit", ctypes.c_int64),
                        ("LimitFlags", wintypes.DWORD),
                        ("MinimumWorkingSetSize", ctypes.c_size_t),
                        ("MaximumWorkingSetSize", ctypes.c_size_t),
                        ("ActiveProcessLimit", wintypes.DWORD),
                        ("Affinity", ctypes.c_size_t),
                        ("PriorityClass", wintypes.DWORD),
                        ("SchedulingClass", wintypes.DWORD),
                        ("IoInfo", ctypes.c_uint64 * 6),
                        ("ProcessMemoryLimit", ctypes.c_size_t),
                        ("JobMemoryLimit", ctypes.c_size_t),
                        ("PeakProcessMemoryUsed", ctypes.c_size_t),
                        ("PeakJobMemoryUsed", ctypes.c_size_t)]

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.CreateJobObjectW.restype = wintypes.HANDLE
        job = kernel32.CreateJobObjectW(None, None)
        if not job:
            LOG.warning("could not create a Job object: error %d", ctypes.get_last_error())
            return None
        limits = _Limits()
        limits.LimitFlags = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        ok = kernel32.SetInformationJobObject(job, 9, ctypes.byref(limits),  # Extended
                                              ctypes.sizeof(limits))
        if ok:
            ok = kernel32.AssignProcessToJobObject(job, wintypes.HANDLE(int(proc._handle)))
        if not ok:
            LOG.warning("could not put process %d in a Job object: error %d", proc.pid,
                        ctypes.get_last_error())
            kernel32.CloseHandle(job)
            return None
        return cls(job)

    def terminate(self) -> None:
        import ctypes
        ctypes.WinDLL("kernel32").TerminateJobObject(self.handle, 1)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.handle:
            import ctypes
            ctypes.WinDLL("kernel32").CloseHandle(self.handle)  # type: ignore[attr-defined]
            self.handle = 0


def _kill_tree(proc: "subprocess.Popen[bytes]", job: Optional[_JobObject] = None) -> None:
    """Kill ``proc`` and every process it started (its job on Windows, its group on POSIX)."""
    if job is not None:
        with contextlib.suppress(OSError):
            job.terminate()
    elif _WINDOWS:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["taskkill", "/PID", str(proc.pid), "/T", "/F"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=_DRAIN_SECONDS * 5, check=False)
    else:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_DRAIN_SECONDS * 5)
