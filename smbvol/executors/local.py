"""The local executor: Windows PowerShell on this machine (the Nova compute host).

On the host, each script starts one ``powershell.exe`` (or the configured
``[smbvol] powershell_path``, e.g. ``pwsh``) with the fixed arguments of
:data:`smbvol.executors.base.POWERSHELL_ARGS`: ``-NoLogo -NoProfile
-NonInteractive`` and a fixed bootstrap passed with ``-EncodedCommand``.  The
script, its parameters and its secrets are written to the process's standard
input (:func:`smbvol.executors.base.encode_payload`), so no value appears on
the command line (where the process list and the audit log would show it) and
scripts may be of any size.  Output is read as UTF-8.

The process leads its own process group (a new session on POSIX, a new
process group on Windows); when the timeout expires the whole tree is killed
(``killpg`` on POSIX, ``taskkill /T /F`` on Windows) and
:class:`~smbvol.exceptions.ExecutorTimeout` says how long it ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, List, Mapping, Optional

from smbvol import exceptions
from smbvol.executors.base import POWERSHELL_ARGS, Executor, RawOutput, encode_payload
from smbvol.scripts import Script

LOG = logging.getLogger(__name__)

_WINDOWS = sys.platform == "win32"
#: Seconds to collect what a killed process tree left in its pipes.
_DRAIN_SECONDS = 5.0


class LocalExecutor(Executor):
    """Runs scripts with the local PowerShell; values and secrets over stdin."""

    kind = "local"

    def __init__(self, powershell_path: str = "powershell.exe", host: str = "localhost",
                 default_timeout: float = 300.0, retry: Optional[Callable[..., Any]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(host=host, default_timeout=default_timeout, retry=retry)
        if not powershell_path:
            raise exceptions.ConfigError(option="smbvol.powershell_path",
                                         reason="empty; set powershell.exe or pwsh")
        self.powershell_path = powershell_path
        self._clock = clock

    @classmethod
    def from_conf(cls, conf, host: Optional[str] = None) -> "LocalExecutor":
        """``[smbvol] powershell_path`` and ``script_timeout``; ``host`` only labels logs."""
        return cls(powershell_path=conf.smbvol.powershell_path, host=host or "localhost",
                   default_timeout=float(conf.smbvol.script_timeout))

    # -- the one method ---------------------------------------------------------
    def command_line(self) -> List[str]:
        """The argv of every run: the executable and the fixed arguments, no value."""
        exe = shutil.which(self.powershell_path)
        if exe is None:
            raise exceptions.ConfigError(
                option="smbvol.powershell_path",
                reason="%r is not an executable file or on PATH; install Windows PowerShell "
                       "or point powershell_path at powershell.exe or pwsh"
                       % self.powershell_path)
        return [exe] + list(POWERSHELL_ARGS)

    def handle(self, script: Script, parameters: Mapping[str, Any],
               timeout: float) -> RawOutput:
        argv = self.command_line()
        payload = encode_payload(script.text, parameters).encode("utf-8")
        start = self._clock()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **_group_kwargs())
        try:
            stdout, stderr = proc.communicate(input=payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            elapsed = self._clock() - start
            LOG.warning("%s did not finish within %s s; killing process tree %d",
                        script.name, timeout, proc.pid)
            _kill_tree(proc)
            raise exceptions.ExecutorTimeout(host=self.host, elapsed=elapsed,
                                             timeout=timeout) from None
        except BaseException:
            _kill_tree(proc)
            raise
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


def _kill_tree(proc: "subprocess.Popen[bytes]") -> None:
    """Kill ``proc`` and every process it started; reap it and drain its pipes."""
    if _WINDOWS:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["taskkill", "/PID", str(proc.pid), "/T", "/F"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=_DRAIN_SECONDS, check=False)
    else:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    try:
        proc.communicate(timeout=_DRAIN_SECONDS)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        LOG.warning("process %d left its output pipes open after being killed", proc.pid)
        with contextlib.suppress(OSError):
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_DRAIN_SECONDS)
