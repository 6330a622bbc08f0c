"""The executor interface: run a rendered script with its parameters on a host.

An executor overrides one method, :meth:`Executor.handle`, which runs the
script text with the parameters and returns what the host printed
(:class:`RawOutput`).  :meth:`Executor.run` — the method everything above calls —
checks the parameters against the operation, calls ``handle`` inside the
executor's error-mapping seam (:meth:`Executor.translate_errors`), and parses
the envelope into a :class:`~smbvol.envelope.ScriptResult` or an exception.

Every call has one deadline (``timeout``, default ``script_timeout``) for all
its attempts and requests, and one output cap (``max_output_bytes``); every
error it raises is an :class:`~smbvol.exceptions.SmbvolError` masked with every
secret known to the call and the executor (:func:`smbvol.secret.mask`); an
error raised once the script may have started is flagged
``script_may_have_started`` so the connection retry policy does not run the
script again blindly; for the length of a call, the records of the HTTP and
remoting libraries' loggers are masked, escaped and lowered to DEBUG
(:class:`smbvol.secret.LogSanitizer`), and smbvol's own log records always have
their control and bidi characters escaped and are bounded.

Local and WinRM executors start ``powershell.exe`` with a fixed bootstrap
(:data:`BOOTSTRAP`) on its command line and send script and parameters over
standard input (:func:`encode_payload`), so no value — and no secret — is ever
on a command line, and scripts are not limited by the 8191-character limit of
``cmd.exe``.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import dataclasses
import json
import logging
import ntpath
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional

from smbvol import envelope, exceptions
from smbvol.executors._deadline import DEFAULT_MAX_OUTPUT, CallBudget
from smbvol.scripts import Script
from smbvol.secret import (
    LIBRARY_LOGGERS,
    Credential,
    LogSanitizer,
    Secret,
    iter_secrets,
    loggers_under,
    mask,
)

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RawOutput:
    """What the host printed for one script."""

    stdout: str
    stderr: str = ""
    exit_code: Optional[int] = 0
    #: Error records / warnings collected by a PSRP runspace (already as text).
    errors: tuple = ()
    had_errors: bool = False


class Executor(abc.ABC):
    """Runs scripts on one host.  Subclasses implement :meth:`handle`."""

    #: ``local``, ``winrm``, ``psrp`` or ``fake``.
    kind = "abstract"

    def __init__(self, host: str = "localhost", default_timeout: float = 300.0,
                 retry: Optional[Callable[..., Any]] = None,
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self.host = host
        self.default_timeout = default_timeout
        #: Optional retry policy (a ``tenacity.Retrying``, e.g.
        #: :func:`smbvol.retry.connection_policy`) applied around ``handle``: it
        #: retries the errors :func:`smbvol.exceptions.is_connection_failure` allows,
        #: within the call's one deadline.
        self.retry = retry
        #: Bytes a script may print (``[smbvol] max_output_bytes``); more is
        #: :class:`~smbvol.exceptions.OutputLimitExceeded`.
        self.max_output = int(max_output)
        self._calls = threading.local()
        install_log_hygiene()

    # -- per call ------------------------------------------------------------
    def known_secrets(self) -> List[str]:
        """Secrets of the executor itself (the transport password), for masking."""
        return []

    def call_budget(self, timeout: float) -> CallBudget:
        """The budget of the call this thread is in (a new one outside :meth:`run`)."""
        budget = getattr(self._calls, "budget", None)
        if budget is None:
            budget = CallBudget(float(timeout), clock=self.clock, max_output=self.max_output)
        return budget

    def clock(self) -> float:
        """Monotonic seconds (executors may inject their own clock)."""
        clock = getattr(self, "_clock", None)
        return clock() if clock is not None else time.monotonic()

    # -- the one method to implement -------------------------------------
    @abc.abstractmethod
    def handle(self, script: Script, parameters: Mapping[str, Any],
               timeout: float) -> RawOutput:
        """Run ``script.text`` with ``parameters`` (secrets revealed only here)."""

    # -- the error-mapping seam (override per library) ----------------------
    @contextlib.contextmanager
    def translate_errors(self, timeout: float) -> Iterator[None]:
        """Map the transport library's exceptions to smbvol's.  Default: none to map.

        Translate with ``raise ... from None``: the library's exception (whose text
        may hold unmasked data) must not stay in the chain that ``--debug``
        tracebacks print; :meth:`run` also drops it from ``__context__``.
        """
        yield

    # -- public API --------------------------------------------------------
    def run(self, script: Script, parameters: Optional[Mapping[str, Any]] = None,
            timeout: Optional[float] = None) -> envelope.ScriptResult:
        """Run ``script`` with ``parameters``; the parsed result, or an exception."""
        params = script.check_parameters(parameters or {})
        timeout = float(timeout if timeout is not None else self.default_timeout)
        secrets = list(dict.fromkeys(list(iter_secrets(params)) + list(self.known_secrets())))
        budget = CallBudget(timeout, clock=self.clock, max_output=self.max_output)
        LOG.debug("running %s on %s (%s) with parameters %s", script.name, self.host,
                  self.kind, describe_parameters(params))
        previous = getattr(self._calls, "budget", None)
        self._calls.budget = budget
        try:
            with masked_library_logs(secrets):
                try:
                    raw = self._attempts(script, params, timeout, budget)
                    LOG.debug("%s on %s answered in %.2f s (exit %s)", script.name, self.host,
                              budget.elapsed(), raw.exit_code)
                    self._check_output_size(raw)
                    stderr = raw.stderr
                    if raw.errors:
                        stderr = (stderr + "\n" if stderr else "") + "\n".join(raw.errors)
                    return envelope.parse(raw.stdout, operation=script.name, host=self.host,
                                          secrets=secrets, exit_code=raw.exit_code,
                                          stderr=stderr)
                except exceptions.SmbvolError as err:
                    mask_error(err, secrets)
                    raise
        finally:
            self._calls.budget = previous

    def _attempts(self, script: Script, params: Mapping[str, Any], timeout: float,
                  budget: CallBudget) -> RawOutput:
        """``handle`` under the connection retry policy, all within the call's deadline."""

        def attempt() -> RawOutput:
            budget.script_started = False
            budget.check(self.host)
            try:
                with self.translate_errors(timeout):
                    return self.handle(script, params, timeout)
            except exceptions.SmbvolError as err:
                if err.__suppress_context__:
                    # Translated ``from None``: drop the library's exception (its text may
                    # hold unmasked data) from the error entirely, not only from tracebacks.
                    err.__context__ = None
                if budget.script_started and not getattr(err, "request_not_sent", False):
                    # The script may have run: not a failure to reach the host that the
                    # connection policy may retry blindly (the operation decides).
                    err.script_may_have_started = True
                raise

        if self.retry is None:
            return attempt()
        try:
            return self.retry(attempt)
        except exceptions.SmbvolError as err:
            if exceptions.is_connection_failure(err):
                # This executor already retried it: the operation policy must not
                # multiply the attempts (see smbvol.exceptions.is_transient).
                err.connection_retries_exhausted = True
            raise

    def _check_output_size(self, raw: RawOutput) -> None:
        size = len(raw.stdout) + len(raw.stderr) + sum(len(e) for e in raw.errors)
        if size > self.max_output:
            raise exceptions.OutputLimitExceeded(host=self.host, limit=self.max_output)

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections (idempotent)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<%s host=%r>" % (type(self).__name__, self.host)


#: Keyword arguments of an error that never come from the host or a library.
_TRUSTED_FIELDS = frozenset({"host", "operation", "auth", "setting", "option", "field",
                             "volume_id", "instance", "kind", "limit"})


def mask_error(err: exceptions.SmbvolError, secrets: Iterable[str]) -> exceptions.SmbvolError:
    """``err`` with every secret masked in its message, arguments and text attributes."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return err
    kwargs = {k: (mask(v, secrets) if isinstance(v, str) and k not in _TRUSTED_FIELDS else v)
              for k, v in err.kwargs.items()}
    message = None
    try:
        if type(err)(**err.kwargs).message == err.message:  # built from its template
            message = type(err)(**kwargs).message
    except Exception:  # noqa: BLE001 - a class with another signature: mask the text
        message = None
    if message is None:
        message = mask(err.message, secrets)
    err.kwargs = kwargs
    for name, value in kwargs.items():
        if isinstance(getattr(err, name, None), str):
            setattr(err, name, value)
    err.message = message
    err.args = (message,)
    return err


def install_log_hygiene() -> None:
    """Escape control/bidi characters and bound the records of smbvol's own loggers."""
    for logger in loggers_under(("smbvol",)):
        if not any(type(f) is LogSanitizer for f in logger.filters):
            logger.addFilter(LogSanitizer())


@contextlib.contextmanager
def masked_library_logs(secrets: Iterable[str]) -> Iterator[None]:
    """For the block: library records masked with ``secrets``, escaped and lowered to
    DEBUG; smbvol's records masked too."""
    secrets = list(secrets)
    library = LogSanitizer(secrets, demote=True)
    own = LogSanitizer(secrets) if secrets else None
    attached = []
    for logger in loggers_under(LIBRARY_LOGGERS):
        logger.addFilter(library)
        attached.append((logger, library))
    if own is not None:
        for logger in loggers_under(("smbvol",)):
            # first, so the secret is masked before any other filter bounds the text
            logger.filters.insert(0, own)
            attached.append((logger, own))
    try:
        yield
    finally:
        for logger, f in attached:
            logger.removeFilter(f)


def windows_powershell(configured: str, environ: Optional[Mapping[str, str]] = None,
                       is_32bit_process: Optional[bool] = None) -> str:
    """The Windows PowerShell to start on a Windows host.

    ``configured`` (``[smbvol] powershell_path``) is used as given unless it is the
    bare default ``powershell.exe``, which becomes
    ``%SystemRoot%\\System32\\WindowsPowerShell\\v1.0\\powershell.exe`` — never a
    ``powershell.exe`` found first on PATH — and, from a 32-bit process on 64-bit
    Windows, ``%SystemRoot%\\Sysnative\\...`` (the 32-bit PowerShell has no Hyper-V
    module).  ``environ`` gives ``SystemRoot``; without it the text keeps
    ``%SystemRoot%`` for the host to expand.
    """
    if configured.strip().lower() not in ("powershell.exe", "powershell"):
        return configured
    root = "%SystemRoot%"
    if environ is not None:
        root = environ.get("SystemRoot") or environ.get("SYSTEMROOT") or environ.get(
            "windir") or "C:\\Windows"
    if is_32bit_process is None:
        is_32bit_process = sys.maxsize <= 2 ** 32
    system = "System32"
    if is_32bit_process and (environ or os.environ).get("PROCESSOR_ARCHITEW6432"):
        system = "Sysnative"
    return ntpath.join(root, system, "WindowsPowerShell", "v1.0", "powershell.exe")


def describe_parameters(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Parameters for logs and dry-run summaries: secrets as ``***``."""
    out: Dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, Credential):
            out[k] = "%s/***" % v.username
        elif isinstance(v, Secret):
            out[k] = "***"
        elif isinstance(v, (list, tuple)):
            out[k] = [("%s/***" % x.username) if isinstance(x, Credential) else
                      ("***" if isinstance(x, Secret) else x) for x in v]
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------
# The stdin protocol shared by the local and WinRM executors.
# --------------------------------------------------------------------------

#: Fixed bootstrap (no value in it).  Reads standard input — the ``$input`` enumerator
#: powershell.exe fills from a redirected stdin, else ``[Console]::In``; never through a
#: cmdlet, so module logging does not record it — as lines:
#:   1. base64(UTF-8 script text)
#:   2. base64(UTF-8 JSON object of the non-secret parameters)
#:   3+ one secret per line, tab-separated base64 fields:
#:        credential <name> <index or -> <user> <password>
#:        securestring <name> <index or -> <value>
#: Secrets become SecureString / PSCredential through .NET calls only.
BOOTSTRAP = r"""$ErrorActionPreference = 'Stop'
# PowerShell 7 colours error text with ANSI escapes: plain text, as Windows PowerShell 5.1 writes.
if ($null -ne (Get-Variable -Name 'PSStyle' -ErrorAction SilentlyContinue)) {
    $PSStyle.OutputRendering = 'PlainText'
}
$utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
try { [Console]::OutputEncoding = $utf8 } catch { $null = $_ }
$lines = New-Object -TypeName System.Collections.Generic.List[string]
foreach ($line in $input) { $lines.Add([string]$line) }
if ($lines.Count -lt 2) {
    $lines.Clear()
    $lines.AddRange([string[]][Console]::In.ReadToEnd().Split([char]10))
}
function ConvertFrom-SmbvolB64([string]$Text) {
    return $utf8.GetString([System.Convert]::FromBase64String($Text.Trim()))
}
$text = ConvertFrom-SmbvolB64 $lines[0]
$values = @{}
$data = ConvertFrom-SmbvolB64 $lines[1]
if ($data -ne '{}') {
    $object = ConvertFrom-Json -InputObject $data
    foreach ($p in $object.PSObject.Properties) { $values[$p.Name] = $p.Value }
}
$lists = @{}
for ($i = 2; $i -lt $lines.Count; $i++) {
    $f = $lines[$i].Trim().Split([char]9)
    if ($f.Length -lt 4) { continue }
    $name = ConvertFrom-SmbvolB64 $f[1]
    $secure = New-Object -TypeName System.Security.SecureString
    # The secret is decoded by .NET calls only (no cmdlet or function parameter holds it).
    $plain = $utf8.GetString([System.Convert]::FromBase64String($f[$f.Length - 1].Trim()))
    foreach ($c in $plain.ToCharArray()) {
        $secure.AppendChar($c)
    }
    $plain = $null
    $secure.MakeReadOnly()
    $value = $secure
    if ($f[0] -eq 'credential') {
        $user = ConvertFrom-SmbvolB64 $f[3]
        $value = [System.Management.Automation.PSCredential]::new($user, $secure)
    }
    if ($f[2] -eq '-') {
        $values[$name] = $value
    } else {
        if (-not $lists.ContainsKey($name)) { $lists[$name] = @{} }
        $lists[$name][[int]$f[2]] = $value
    }
}
foreach ($name in $lists.Keys) {
    $count = [int]$values[$name + '#count']
    $array = New-Object -TypeName 'object[]' -ArgumentList $count
    foreach ($index in $lists[$name].Keys) { $array[$index] = $lists[$name][$index] }
    $values[$name] = $array
}
foreach ($key in @($values.Keys)) { if ($key.EndsWith('#count')) { $values.Remove($key) } }
$block = [ScriptBlock]::Create($text)
& $block @values
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def encode_payload(script_text: str, parameters: Mapping[str, Any]) -> str:
    """Standard input for :data:`BOOTSTRAP`: script, plain parameters, then secrets."""
    plain: Dict[str, Any] = {}
    secret_lines: List[str] = []

    def secret_line(name: str, index: str, value: Any) -> None:
        if isinstance(value, Credential):
            secret_lines.append("\t".join(["credential", _b64(name), index,
                                           _b64(value.username), _b64(value.password.reveal())]))
        else:
            secret_lines.append("\t".join(["securestring", _b64(name), index,
                                           _b64(value.reveal())]))

    for name, value in parameters.items():
        if isinstance(value, (Credential, Secret)):
            secret_line(name, "-", value)
        elif isinstance(value, (list, tuple)) and any(
                isinstance(v, (Credential, Secret)) for v in value):
            plain[name + "#count"] = len(value)
            for i, v in enumerate(value):
                if v is not None:
                    secret_line(name, str(i), v)
        else:
            plain[name] = list(value) if isinstance(value, tuple) else value
    lines = [_b64(script_text), _b64(json.dumps(plain, ensure_ascii=False))] + secret_lines
    return "\n".join(lines) + "\n"


def encoded_command(script_text: str) -> str:
    """``-EncodedCommand`` argument: base64 of UTF-16LE."""
    return base64.b64encode(script_text.encode("utf-16-le")).decode("ascii")


#: powershell.exe arguments shared by the local and WinRM executors (fixed text only).
POWERSHELL_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                   "-InputFormat", "Text", "-OutputFormat", "Text",
                   "-EncodedCommand", encoded_command(BOOTSTRAP))
