"""Exit codes and the one-line error messages of the ``smbvol`` command.

Every failure the command reports becomes one line on standard error: what
failed (the exception's message, which names the host, VM, share or option
concerned and never a secret) followed by what to do about it.  The exit code
says which kind of failure it was:

====  ===================================================================
code  meaning
====  ===================================================================
0     every host succeeded
1     the operation failed on the host (VM not found, share unreachable...)
2     usage error or invalid input, detected before anything ran
3     connection or authentication failure (nothing is known of the host)
4     partial failure: some hosts succeeded, others failed (or failed
      for different reasons)
====  ===================================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Optional

from smbvol import exceptions

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_PARTIAL = 4

EXIT_CODES_HELP = """\
exit codes:
  0  success on every host
  1  the operation failed on the host (VM not found, share unreachable, no free slot...)
  2  usage error or invalid input (malformed export, file name or connection_info,
     bad option or configuration) detected before anything ran
  3  connection or authentication failure (WinRM not listening, credentials refused,
     certificate not trusted, timeout)
  4  partial failure: some hosts succeeded and others failed, or hosts failed for
     different reasons
"""


class UsageError(exceptions.SmbvolError):
    """A command line that cannot work (exit code 2)."""

    msg_fmt = "%(reason)s"


class FlagError(exceptions.InvalidInput):
    """A volume flag (``--export``, ``--name``, ``--format``) with a bad value (exit code 2)."""

    msg_fmt = "invalid %(flag)s: %(reason)s"

    def __init__(self, *, field: str, value: Any, reason: str) -> None:
        shown = "" if value is None or value == "" else " '%s'" % value
        super().__init__(field=field, value=value, reason=reason, flag=field + shown)


class PlainInvalidInput(exceptions.InvalidInput):
    """An :class:`~smbvol.exceptions.InvalidInput` as the command line shows it: the
    value quoted as typed (no Python repr, no doubled backslash, no ``None``)."""

    msg_fmt = "invalid %(what)s: %(reason)s"


def plain(exc: BaseException) -> BaseException:
    """``exc`` reworded without Python reprs when it is a field/value/reason error."""
    if isinstance(exc, FlagError) or not isinstance(exc, exceptions.InvalidInput):
        return exc
    kwargs = getattr(exc, "kwargs", {})
    if not {"field", "value", "reason"} <= set(kwargs):
        return exc
    value = kwargs["value"]
    shown = "" if value is None or value == "" else " '%s'" % (value,)
    prefix = "connection_info field " if isinstance(
        exc, exceptions.InvalidConnectionInfo) else ""
    return PlainInvalidInput(what="%s%s%s" % (prefix, kwargs["field"], shown),
                             reason=kwargs["reason"])


class DryRunUnavailable(exceptions.SmbvolError):
    """``--dry-run`` cannot check the script: the PowerShell grammar is not installed."""

    msg_fmt = "%(reason)s"


class ScriptSyntaxError(exceptions.SmbvolError):
    """A generated script does not parse; it is not printed."""

    msg_fmt = "the generated %(operation)s script does not parse as PowerShell: %(reason)s"


# (exception class, hint) — the first matching class wins, so subclasses come first.
_HINTS = (
    (exceptions.CertificateError,
     "pass the CA that issued the host's certificate with --ca-file (or [smbvol] ca_file), "
     "or give the host a certificate for its name; --insecure only for a lab"),
    (exceptions.AuthenticationError,
     "check --username (DOMAIN\\user or user@domain), the password (SMBVOL_PASSWORD or "
     "--password-file) and --auth; the user must be an administrator of the Hyper-V host"),
    (exceptions.ExecutorTimeout,
     "the host did not answer in time: check that it is up, or raise the [smbvol] timeout "
     "the message names (script_timeout, read_timeout or operation_timeout)"),
    (exceptions.TransportError,
     "check the host name and that WinRM listens on it (Enable-PSRemoting; "
     "winrm enumerate winrm/config/listener), --port, --ssl/--no-ssl and the firewall"),
    (exceptions.RemoteFault,
     "the WinRM service refused the request: check the user's remoting rights "
     "(Remote Management Users or administrators) and the host's WinRM quotas"),
    (exceptions.ExecutorError,
     "check --host, --transport, --auth and the credentials"),
    (exceptions.VMNotFound,
     "check the VM name (smbvol volume list shows the VMs and their disks)"),
    (exceptions.ShareUnreachable,
     "check from the Hyper-V host that the share answers (Test-Path \\\\server\\share): "
     "DNS, TCP port 445, and that the share exists"),
    (exceptions.AccessDenied,
     "grant the Hyper-V hosts' computer accounts (DOMAIN\\HOST$) and "
     "NT VIRTUAL MACHINE\\Virtual Machines full control on the share and its folder (NTFS), "
     "and check --share-username"),
    (exceptions.ImageNotFound,
     "check --export and --name: the image file must exist on the share"),
    (exceptions.MappingConflict,
     "Windows error 1219: the host already maps this server with other credentials; remove "
     "that mapping (Get-SmbGlobalMapping / Get-SmbMapping) or use the same share user"),
    (exceptions.LogonSessionMissing,
     "the remoting double hop: use --auth credssp, Kerberos delegation to the file server, "
     "or set [hyperv] smb_mapping_via_scheduled_task = true"),
    (exceptions.NoFreeSlot,
     "every SCSI location of the VM is used: detach a disk, or add a SCSI controller "
     "while the VM is off"),
    (exceptions.DiskInUse,
     "the share still holds disks of the VMs named above: detach them first "
     "(a share in use is never unmounted)"),
    (exceptions.HostBusy,
     "another smbvol operation holds the lock of this VM or share: retry later, or raise "
     "[hyperv] host_lock_timeout"),
    (exceptions.InvalidState,
     "the VM is not in a state that allows this (IDE needs a Generation 1 VM that is off)"),
    (exceptions.InvalidParameters,
     "the host script refused its input: check the values given"),
    (exceptions.HostOperationError,
     "run again with --debug for the details, and check the host's event log"),
    (exceptions.VolumeOperationFailed,
     "see the error above; run again with --debug for the details"),
    (exceptions.EnvelopeError,
     "the host printed something smbvol cannot read: run again with --debug and report it"),
    (exceptions.InvalidInput, "fix the value named and run again"),
    (exceptions.ConfigError, "fix the option named (command line or --config-file)"),
    (DryRunUnavailable, ""),
    (ScriptSyntaxError, "nothing was printed; this is a bug in smbvol, please report it"),
    (UsageError, "see smbvol help"),
)


#: Without --host the command runs PowerShell on this machine: name what to do instead.
POWERSHELL_HINT = ("without --host the command runs PowerShell on this machine: give the "
                   "Hyper-V host with --host HOST, or set [smbvol] powershell_path (in a "
                   "--config-file) to powershell.exe or pwsh")


def _cause_chain(exc: BaseException) -> Iterable[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__


def exit_code_of(exc: BaseException) -> int:
    """The exit code for one failure (see the module docstring)."""
    if isinstance(exc, (exceptions.InvalidInput, exceptions.ConfigError, UsageError,
                        DryRunUnavailable)):
        return EXIT_USAGE
    if isinstance(exc, exceptions.ExecutorError):
        return EXIT_CONNECTION
    if isinstance(exc, exceptions.VolumeOperationFailed):
        # A volume operation that gave up because the host could not be reached
        # (retries exhausted) is a connection failure.
        for cause in _cause_chain(exc.__cause__):
            if isinstance(cause, exceptions.ExecutorError):
                return EXIT_CONNECTION
    return EXIT_FAILED


def hint_of(exc: BaseException) -> str:
    """What to do about ``exc``: one sentence, or ''."""
    if isinstance(exc, exceptions.VolumeOperationFailed):
        for cause in _cause_chain(exc.__cause__):
            if not isinstance(cause, exceptions.VolumeOperationFailed):
                hint = hint_of(cause)
                if hint:
                    return hint
    if isinstance(exc, exceptions.ConfigError) and getattr(exc, "kwargs", {}).get(
            "option") == "smbvol.powershell_path":
        return POWERSHELL_HINT
    for cls, hint in _HINTS:
        if isinstance(exc, cls):
            return hint
    return "run again with --debug for the traceback"


def combined_exit_code(codes: Iterable[int]) -> int:
    """The exit code of a run over several hosts, from each host's code."""
    codes = list(codes)
    failed = {c for c in codes if c != EXIT_OK}
    if not failed:
        return EXIT_OK
    if len(failed) == 1 and EXIT_OK not in codes:
        return failed.pop()
    return EXIT_PARTIAL


@dataclasses.dataclass(frozen=True)
class Failure:
    """One failure as reported: where, what, what to do, and the exit code."""

    host: Optional[str]
    message: str
    hint: str
    code: int

    def line(self) -> str:
        where = "%s: " % self.host if self.host else ""
        text = "smbvol: error: %s%s" % (where, self.message)
        if self.hint:
            text += " -- " + self.hint
        return " ".join(text.split())


def failure(exc: BaseException, host: Optional[str] = None) -> Failure:
    """``exc`` as a :class:`Failure` (the message never holds a secret)."""
    message = str(plain(exc)) or type(exc).__name__
    if not isinstance(exc, exceptions.SmbvolError):
        message = "%s: %s" % (type(exc).__name__, message)
    # VolumeOps already says what to do for some errors: never say it twice.
    hint = "" if "what to do:" in message else hint_of(exc)
    return Failure(host=host, message=message, hint=hint, code=exit_code_of(exc))
