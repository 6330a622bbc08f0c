"""The WinRM executor: Windows PowerShell on a remote host through pywinrm.

For each script the host sees, over WS-Management (HTTPS port 5986 by default):

1. *Create* — a ``cmd`` shell resource with code page 65001 (UTF-8) and no
   user profile;
2. *Command* — Windows PowerShell (``C:\\Windows\\System32\\WindowsPowerShell\\
   v1.0\\powershell.exe``, as the shell starts it without ``cmd.exe`` and so
   expands no ``%SystemRoot%``; never a ``powershell.exe`` found on PATH; or
   ``[smbvol] powershell_path`` when set to something else) with the fixed arguments of
   :data:`smbvol.executors.base.POWERSHELL_ARGS` and ``WINRS_SKIP_CMD_SHELL``:
   no ``cmd.exe`` in between, no value and no secret on the command line (the
   host's process-creation audit log records it), and no 8191-character limit;
3. *Send* — the script, its parameters and its secrets
   (:func:`smbvol.executors.base.encode_payload`) on the process's standard
   input, in chunks, the last one closing it;
4. *Receive* — standard output and error until the command is done; WSMan
   operation timeouts are expected while the script runs and polled again
   until ``script_timeout`` (then :class:`~smbvol.exceptions.ExecutorTimeout`);
5. *Signal* (terminate) and *Delete* — always, even after a failure (with a
   short clean-up budget of their own when the call's deadline has passed).

Every request of a call is bounded by the call's one deadline
(:mod:`smbvol.executors._deadline`): a slow, silent or dripping host ends in
:class:`~smbvol.exceptions.ExecutorTimeout` at ``script_timeout``; output beyond
``max_output_bytes`` ends in :class:`~smbvol.exceptions.OutputLimitExceeded`;
a failure once the command was sent is flagged ``script_may_have_started`` (no
blind re-run by the connection policy).

Authentication: ``ntlm`` (default, NTLM in an HTTP ``Negotiate`` header),
``kerberos`` and ``credssp`` (if pywinrm's extras are installed),
``certificate`` (HTTPS only) and ``basic`` (HTTPS only unless
``allow_unencrypted``).  pywinrm has no SPNEGO ``negotiate``: choose ``ntlm``,
``kerberos`` or the ``psrp`` transport.  Over plain HTTP messages are
encrypted by the authentication (``message_encryption``); TLS certificates are
validated unless ``cert_validation = false``, which is logged as a WARNING on
every connection.

Error mapping (:meth:`WinRMExecutor.translate_errors`):

============================================  ===========================================
pywinrm / requests                            smbvol
============================================  ===========================================
401, NTLM/Kerberos failure                    AuthenticationError (mechanism, user)
refused, reset, DNS, connect timeout          TransportError (transient)
certificate verification failed               CertificateError (never retried)
other TLS failure                             TransportError
HTTP 502/503/504 without a WSMan fault        TransportError (transient)
HTTP 500 (or other status) without a fault    RemoteFault ``HTTP 500``: the service took
                                              the request, so it is not retried blindly
WSMan fault (``s:Fault``)                     RemoteFault with the WSManFault code
operation timeout outside Receive, read       ExecutorTimeout (with the elapsed time and
timeout, ``script_timeout`` exceeded          the setting that fired)
an answer that is not XML (cut, doubled,      ResponseUnreadable (outcome unknown)
garbage)
============================================  ===========================================
"""

from __future__ import annotations

import contextlib
import logging
import time
import xml.etree.ElementTree as ET
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple

import requests
from winrm import exceptions as winrm_exc
from winrm import protocol as winrm_protocol
from winrm import transport as winrm_transport

from smbvol import exceptions
from smbvol.executors._deadline import DEFAULT_MAX_OUTPUT, CallBudget, SessionGuard, cleanup_budget
from smbvol.executors._http import RemoteOptions, connection_failure
from smbvol.executors.base import (
    POWERSHELL_ARGS,
    Executor,
    RawOutput,
    encode_payload,
    windows_powershell,
)
from smbvol.retry import connection_policy
from smbvol.scripts import Script
from smbvol.secret import Secret, mask

LOG = logging.getLogger(__name__)

try:  # pyspnego is what requests-ntlm (and pywinrm's NTLM) authenticates with
    from spnego.exceptions import SpnegoError as _SpnegoError
except ImportError:  # pragma: no cover - pyspnego comes with requests-ntlm
    class _SpnegoError(Exception):  # type: ignore[no-redef]
        pass

#: smbvol ``auth`` → pywinrm ``transport``.
PYWINRM_AUTH = {"ntlm": "ntlm", "kerberos": "kerberos", "credssp": "credssp",
                "certificate": "certificate", "basic": "basic"}
#: The remote program: Windows PowerShell by its full path (no cmd.exe, so no
#: %SystemRoot% expansion; the system directory of every Hyper-V host we support).
POWERSHELL = windows_powershell("powershell.exe", {"SystemRoot": "C:\\Windows"},
                                is_32bit_process=False)
#: Code page of the remote shell: UTF-8.
CODEPAGE = 65001
#: Payload bytes per Send request (base64 makes ~44 KiB of the 150 KiB envelope).
SEND_CHUNK = 32 * 1024
#: Gateway/unavailable statuses: nothing reached the WinRM service, a retry may work.
_UNAVAILABLE = (502, 503, 504)
_EXCERPT = 300


class WinRMExecutor(Executor):
    """Runs scripts on ``options.host`` over WinRM, one remote shell per script."""

    kind = "winrm"

    def __init__(self, options: RemoteOptions, password: Optional[Secret] = None,
                 retry: Optional[Callable[..., Any]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 chunk_size: int = SEND_CHUNK, powershell_path: str = "powershell.exe",
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        if password is not None and not isinstance(password, Secret):
            password = Secret(password)
        options = options.with_password(password).validate()
        _check_pywinrm_support(options)
        super().__init__(host=options.host, default_timeout=float(options.script_timeout),
                         retry=retry, max_output=max_output)
        self.options = options
        self.chunk_size = max(1, int(chunk_size))
        self._clock = clock
        #: The program the remote shell starts (see :data:`POWERSHELL`).
        self.program = (POWERSHELL if powershell_path.strip().lower() in
                        ("", "powershell.exe", "powershell") else powershell_path)

    @classmethod
    def from_conf(cls, conf, host: Optional[str] = None, password: Optional[Secret] = None,
                  sleep: Optional[Callable[[float], None]] = None) -> "WinRMExecutor":
        """From ``[smbvol]``, retrying failures to reach the host with the connection policy.

        Only :func:`smbvol.exceptions.is_connection_failure` errors are retried here;
        a timeout is left to the operation's own policy (no multiplied retries).
        """
        options = RemoteOptions.from_conf(conf, host=host, password=password)
        retry = connection_policy(conf, sleep=sleep, what="WinRM call to %s" % options.host)
        return cls(options, retry=retry, powershell_path=conf.smbvol.powershell_path,
                   max_output=int(getattr(conf.smbvol, "max_output_bytes", DEFAULT_MAX_OUTPUT)))

    def known_secrets(self) -> List[str]:
        return [self.options.password.reveal()] if self.options.password else []

    # -- the one method ---------------------------------------------------------
    def handle(self, script: Script, parameters: Mapping[str, Any],
               timeout: float) -> RawOutput:
        self.options.log_insecure(LOG)
        payload = encode_payload(script.text, parameters).encode("utf-8")
        budget = self.call_budget(timeout)
        guard = SessionGuard(self.host, self.options.read_timeout)
        protocol = self._protocol()
        transport = protocol.transport
        build, setup = transport.build_session, transport.setup_encryption
        transport.build_session = lambda: guard.install(build())
        # the encryption set-up (NTLM/Kerberos over HTTP) sends from inside build_session
        transport.setup_encryption = lambda session: setup(guard.install(session))
        try:
            with guard.active(budget):
                return self._run_in_shell(protocol, payload, budget, timeout, guard)
        finally:
            protocol.transport.close_session()

    def _run_in_shell(self, protocol: winrm_protocol.Protocol, payload: bytes,
                      budget: CallBudget, timeout: float, guard: SessionGuard) -> RawOutput:
        shell_id = protocol.open_shell(codepage=CODEPAGE, noprofile=True)
        failed = True
        try:
            budget.script_started = True  # from the Command on the script may run
            command_id = protocol.run_command(shell_id, self.program, list(POWERSHELL_ARGS),
                                              console_mode_stdin=False, skip_cmd_shell=True)
            try:
                for chunk, last in _chunks(payload, self.chunk_size):
                    protocol.send_command_input(shell_id, command_id, chunk, end=last)
                stdout, stderr, exit_code = self._receive(protocol, shell_id, command_id,
                                                          budget, timeout)
                failed = False
            finally:
                self._cleanup("stop the command", failed, guard, protocol.cleanup_command,
                              shell_id, command_id)
        finally:
            self._cleanup("close the shell", failed, guard, protocol.close_shell, shell_id)
        return RawOutput(stdout=stdout.decode("utf-8", errors="replace"),
                         stderr=stderr.decode("utf-8", errors="replace"),
                         exit_code=exit_code)

    def _protocol(self) -> winrm_protocol.Protocol:
        o = self.options
        return winrm_protocol.Protocol(
            endpoint=o.endpoint,
            transport=PYWINRM_AUTH[o.auth],
            username=o.username,
            password=o.password.reveal() if o.password is not None else None,
            ca_trust_path=o.ca_file or None,
            cert_pem=o.certificate_pem,
            cert_key_pem=o.certificate_key_pem,
            server_cert_validation="validate" if o.cert_validation else "ignore",
            read_timeout_sec=int(o.read_timeout),
            operation_timeout_sec=int(o.operation_timeout),
            message_encryption=o.message_encryption,
            proxy=None,
        )

    def _receive(self, protocol: winrm_protocol.Protocol, shell_id: str, command_id: str,
                 budget: CallBudget, timeout: float) -> Tuple[bytes, bytes, int]:
        stdout: List[bytes] = []
        stderr: List[bytes] = []
        size = 0
        while True:
            try:
                out, err, exit_code, done = protocol.get_command_output_raw(shell_id,
                                                                            command_id)
            except winrm_exc.WinRMOperationTimeoutError:
                done = False  # no output within operation_timeout: the script still runs
            else:
                stdout.append(out)
                stderr.append(err)
                size += len(out) + len(err)
                if size > self.max_output:
                    raise exceptions.OutputLimitExceeded(host=self.host, limit=self.max_output)
            if done:
                return b"".join(stdout), b"".join(stderr), exit_code
            if budget.expired():
                LOG.warning("script on %s did not finish within %s s; stopping it",
                            self.host, timeout)
                raise budget.timeout_error(self.host)

    def _cleanup(self, what: str, failed: bool, guard: SessionGuard,
                 call: Callable[..., Any], *args: str) -> None:
        budget = guard.budget
        if budget is not None and (failed or budget.expired()):
            # one short clean-up budget for the Signal and the Delete together
            budget = guard.cleanup = (getattr(guard, "cleanup", None)
                                      or cleanup_budget(self.options.operation_timeout))
        try:
            if budget is None:
                call(*args)
            else:
                with guard.active(budget):
                    call(*args)
        except Exception as exc:  # the result (or the first error) matters more
            log = LOG.debug if failed else LOG.warning
            log("could not %s on %s: %s: %s", what, self.host, type(exc).__name__,
                self._mask(str(exc)))

    # -- the error-mapping seam ---------------------------------------------------
    def _mask(self, text: str) -> str:
        secrets = [self.options.password.reveal()] if self.options.password else []
        return mask(text, secrets)

    @contextlib.contextmanager
    def translate_errors(self, timeout: float) -> Iterator[None]:
        """pywinrm, requests and socket errors → smbvol's (table in the module doc)."""
        start = self._clock()
        o = self.options

        def reason(exc: BaseException) -> str:
            return self._mask(str(exc)) or type(exc).__name__

        try:
            yield
        except exceptions.SmbvolError:
            raise
        except winrm_exc.WinRMOperationTimeoutError:
            raise exceptions.ExecutorTimeout(host=self.host, elapsed=self._clock() - start,
                                             timeout=o.operation_timeout,
                                             setting="operation_timeout") from None
        except (winrm_exc.AuthenticationError, PermissionError, _SpnegoError) as exc:
            raise exceptions.AuthenticationError(
                host=self.host, auth=o.auth, username=o.username or "(default credentials)",
                reason=reason(exc)) from None
        except winrm_exc.WSManFaultError as exc:
            code = exc.wsman_fault_code
            detail = self._mask(exc.reason or "(no reason given)")
            if code is not None:
                detail += " (WSManFault 0x%08X" % code
                detail += ", %s)" % exc.fault_subcode if exc.fault_subcode else ")"
            else:
                code = exc.fault_subcode or exc.fault_code or "HTTP %s" % exc.code
            raise exceptions.RemoteFault(host=self.host, code=code, reason=detail,
                                         http_status=exc.code) from None
        except winrm_exc.WinRMTransportError as exc:
            status = exc.code
            body = " ".join(self._mask(exc.response_text or "").split())[:_EXCERPT]
            if status in _UNAVAILABLE:
                raise exceptions.TransportError(
                    host=self.host, reason="HTTP %s from %s: the WinRM service (or a proxy) "
                    "is unavailable" % (status, o.endpoint)) from None
            raise exceptions.RemoteFault(
                host=self.host, code="HTTP %s" % status, http_status=status,
                reason="unexpected answer from %s without a WSMan fault%s"
                % (o.endpoint, (": " + body) if body else "")) from None
        except winrm_exc.WinRMError as exc:
            raise exceptions.ExecutorError(host=self.host, reason=reason(exc)) from None
        except requests.exceptions.SSLError as exc:
            text = reason(exc)
            if _is_certificate_failure(text):
                raise exceptions.CertificateError(host=self.host, reason=text) from None
            raise exceptions.TransportError(host=self.host, reason="TLS failure: " + text
                                            ) from None
        except requests.exceptions.ConnectTimeout:
            raise exceptions.TransportError(
                host=self.host, reason="no connection to %s within %s s"
                % (o.endpoint, o.read_timeout)) from None
        except requests.exceptions.ReadTimeout:
            raise exceptions.ExecutorTimeout(host=self.host, elapsed=self._clock() - start,
                                             timeout=o.read_timeout,
                                             setting="read_timeout") from None
        except (requests.exceptions.ConnectionError, OSError) as exc:
            raise connection_failure(self.host, exc, o.endpoint, self._mask) from None
        except requests.exceptions.RequestException as exc:
            raise exceptions.TransportError(host=self.host, reason=reason(exc)) from None
        except (ET.ParseError, StopIteration, AttributeError, IndexError, KeyError, TypeError,
                ValueError, UnicodeDecodeError) as exc:
            # pywinrm reading an answer it did not expect (not XML, a missing element).
            raise exceptions.ResponseUnreadable(
                host=self.host, reason="the answer from %s is not a WSMan message (%s)"
                % (o.endpoint, type(exc).__name__)) from None

    def __repr__(self) -> str:
        o = self.options
        return "<WinRMExecutor endpoint=%r auth=%r user=%r>" % (o.endpoint, o.auth, o.username)


def _check_pywinrm_support(o: RemoteOptions) -> None:
    """ConfigError when pywinrm cannot do ``o.auth`` here."""
    if o.auth not in PYWINRM_AUTH:
        raise exceptions.ConfigError(
            option="smbvol.auth",
            reason="the winrm transport (pywinrm) has no %r; use ntlm or kerberos, or "
                   "transport = psrp" % o.auth)
    missing = {"kerberos": (winrm_transport.HAVE_KERBEROS, "pywinrm[kerberos]"),
               "credssp": (winrm_transport.HAVE_CREDSSP, "pywinrm[credssp]"),
               "ntlm": (winrm_transport.HAVE_NTLM, "requests-ntlm")}.get(o.auth)
    if missing is not None and not missing[0]:
        raise exceptions.ConfigError(
            option="smbvol.auth",
            reason="%s authentication needs %s; install it or choose another mechanism"
                   % (o.auth, missing[1]))


def _chunks(data: bytes, size: int) -> Iterator[Tuple[bytes, bool]]:
    """``data`` in pieces of ``size`` bytes, the last flagged (at least one piece)."""
    for offset in range(0, max(len(data), 1), size):
        yield data[offset:offset + size], offset + size >= len(data)


def _is_certificate_failure(text: str) -> bool:
    text = text.lower()
    return any(s in text for s in ("certificate verify failed", "certificate_verify_failed",
                                   "hostname mismatch", "doesn't match", "self signed",
                                   "self-signed", "unable to get local issuer"))
