"""Run scripts on a remote host over the PowerShell Remoting Protocol (pypsrp).

On the host, WinRM starts one ``wsmprovhost.exe`` for the executor's
RunspacePool (``Microsoft.PowerShell`` endpoint, or ``configuration_name``),
opened on the first call and reused by every later call; :meth:`close`
deletes it.  Each call runs the script as one pipeline of that pool: the
script text is added as a script (a script block, no values in it) and every
value as a named parameter of it, so nothing is ever on a command line.

Secrets never travel as plain text: a :class:`~smbvol.secret.Credential`
becomes a ``PSCredential`` whose password is a ``SecureString``, a bare
:class:`~smbvol.secret.Secret` a ``SecureString``; both are encrypted with
the session key that the pool exchanges (RSA public key from us, AES session
key from the host) before the first secret is sent.  Module logging on the
host records the parameter binding, which shows ``System.Security.SecureString``
and the user name, never the password.

Per warm call the executor sends three HTTP requests: Command (the
CreatePipeline message), Receive (output and pipeline state; repeated while
the script runs, one per ``operation_timeout``), and Signal (terminate, to
release the pipeline on the host).  If the host has forgotten the pool (shell
idle timeout, WinRM restart, broken pool), the failure happens before the
pipeline is created, so the pool is reopened once, transparently, and the
call goes on; a pool that dies while a script runs is discarded and the error
raised (the script may have run).

Under faults: every request of a call is bounded by the call's one deadline
(:mod:`smbvol.executors._deadline`; pypsrp's own Receive retries never run, a
dripped answer is cut at the deadline); after any failure once the pipeline
exists it is stopped and released (Signal terminate) with a short clean-up
budget, so no pipeline is left running or open on the host; an answer that is
not a WSMan message (cut, doubled, garbage XML) is
:class:`~smbvol.exceptions.ResponseUnreadable`; output beyond
``max_output_bytes`` stops the pipeline (:class:`~smbvol.exceptions.OutputLimitExceeded`).
Connection failures are described in the same words as over WinRM
(:func:`smbvol.executors._http.describe_connection_error`).
"""

from __future__ import annotations

import binascii
import contextlib
import logging
import math
import struct
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any, Callable, Iterator, List, Mapping, Optional

import requests
from pypsrp import exceptions as psrp_exc
from pypsrp.complex_objects import PSCredential, PSInvocationState, RunspacePoolState
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import TaggedValue
from pypsrp.shell import SignalCode
from pypsrp.wsman import WSMan

from smbvol import exceptions
from smbvol.executors._deadline import DEFAULT_MAX_OUTPUT, CallBudget, SessionGuard, cleanup_budget
from smbvol.executors._http import RemoteOptions, connection_failure
from smbvol.executors.base import Executor, RawOutput, masked_library_logs
from smbvol.retry import connection_policy
from smbvol.scripts import Script
from smbvol.secret import Credential, Secret, iter_secrets, mask

LOG = logging.getLogger(__name__)

#: ERROR_WSMAN_OPERATION_TIMEDOUT: a Receive that had nothing to return.
OPERATION_TIMEOUT = 0x80338029
#: The shell (our pool) is not on the host any more (idle timeout, restart).
#: 0x8033805B (2150858843): "the shell was not found on the server".
SHELL_GONE = frozenset({0x8033805B})
_INT32 = (-(2 ** 31), 2 ** 31 - 1)

Clock = Callable[[], float]


class PSRPExecutor(Executor):
    """One RunspacePool on one host, reused across calls."""

    kind = "psrp"

    def __init__(self, options: RemoteOptions, retry: Optional[Callable[..., Any]] = None,
                 clock: Optional[Clock] = None, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        options = options.validate()
        super().__init__(host=options.host, default_timeout=float(options.script_timeout),
                         retry=retry, max_output=max_output)
        self.options = options
        if options.auth == "credssp":
            try:
                import requests_credssp  # noqa: F401
            except ImportError:
                raise exceptions.ConfigError(
                    option="smbvol.auth", reason="credssp needs the requests-credssp package; "
                    "install it or use another mechanism") from None
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._wsman: Optional[WSMan] = None
        self._pool: Optional[RunspacePool] = None
        self._guard = SessionGuard(options.host, options.read_timeout)
        #: How many pools this executor opened (1 while the first one lives).
        self.pools_opened = 0

    @classmethod
    def from_conf(cls, conf, host: Optional[str] = None, password: Optional[Secret] = None,
                  sleep: Optional[Callable[[float], None]] = None,
                  clock: Optional[Clock] = None) -> "PSRPExecutor":
        """The executor for ``host`` (default ``[smbvol] host``) from ``conf.smbvol``.

        Failures to reach the host (:func:`smbvol.exceptions.is_connection_failure`,
        not timeouts) are retried with :func:`smbvol.retry.connection_policy`
        (``sleep`` injectable for tests).
        """
        options = RemoteOptions.from_conf(conf, host=host, password=password)
        policy = connection_policy(conf, sleep=sleep, what="PSRP call to %s" % options.host)
        return cls(options, retry=policy, clock=clock,
                   max_output=int(getattr(conf.smbvol, "max_output_bytes", DEFAULT_MAX_OUTPUT)))

    def known_secrets(self) -> List[str]:
        return list(iter_secrets(self.options.password))

    # -- connection ----------------------------------------------------------
    def _new_wsman(self) -> WSMan:
        o = self.options
        encryption = o.message_encryption
        if not o.ssl and o.allow_unencrypted and (
                o.auth not in ("negotiate", "ntlm", "kerberos", "credssp")):
            encryption = "never"  # basic/certificate cannot encrypt; allowed explicitly
        verify: Any = o.cert_validation
        if o.cert_validation and o.ca_file:
            verify = o.ca_file
        kwargs = {}
        if o.auth == "certificate":
            kwargs.update(certificate_pem=o.certificate_pem,
                          certificate_key_pem=o.certificate_key_pem)
        try:
            wsman = WSMan(
                o.host, port=o.port, ssl=o.ssl, path="wsman", auth=o.auth,
                username=o.username,
                password=o.password.reveal() if o.password is not None else None,
                cert_validation=verify, encryption=encryption,
                operation_timeout=o.operation_timeout, read_timeout=o.read_timeout,
                connection_timeout=o.read_timeout, reconnection_retries=0,
                reconnection_backoff=0.0, no_proxy=False, **kwargs)
        except ValueError as exc:
            raise exceptions.ConfigError(option="smbvol.auth",
                                         reason=self._mask(str(exc))) from None
        self._guard_transport(wsman)
        return wsman

    def _guard_transport(self, wsman: WSMan) -> None:
        """Put the call deadline under the session pypsrp builds (lazily) for ``wsman``."""
        transport = wsman.transport
        build = transport._build_session
        guard = self._guard

        def build_guarded() -> requests.Session:
            return guard.install(build())

        transport._build_session = build_guarded
        if transport.session is not None:
            guard.install(transport.session)

    def _open_pool(self) -> RunspacePool:
        """Create the shell (RunspacePool) on the host: Create + Receive."""
        self.options.log_insecure(LOG)
        if self._wsman is None:
            self._wsman = self._new_wsman()
        pool = RunspacePool(self._wsman, configuration_name=self.options.configuration_name)
        self._pool = pool
        self.pools_opened += 1
        LOG.debug("opening a PSRP runspace pool on %s (%s)", self.host, self.options.endpoint)
        pool.open()
        return pool

    def _usable_pool(self) -> RunspacePool:
        pool = self._pool
        if pool is not None and pool.state != RunspacePoolState.OPENED:
            LOG.info("the PSRP runspace pool on %s is %s; opening a new one", self.host,
                     _state_name(pool.state))
            self._discard_pool()
            pool = None
        return pool if pool is not None else self._open_pool()

    def _discard_pool(self) -> None:
        """Forget the pool; delete it on the host if it may still be there (best effort)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if pool.state == RunspacePoolState.OPENED:
            try:
                pool.close()
            except Exception as exc:  # the pool is being dropped anyway
                LOG.debug("closing the runspace pool on %s failed: %s", self.host,
                          self._mask(str(exc)))

    def close(self) -> None:
        """Delete the RunspacePool on the host (one Delete request) and close the session."""
        with self._lock, self._guard.active(self._cleanup_budget()), \
                masked_library_logs(self.known_secrets()):
            try:
                with self.translate_errors(float(self.options.operation_timeout)):
                    pool, self._pool = self._pool, None
                    if pool is not None and pool.state == RunspacePoolState.OPENED:
                        pool.close()
            except exceptions.ExecutorError as exc:
                LOG.warning("could not close the PSRP session on %s: %s", self.host, exc)
            finally:
                if self._wsman is not None:
                    self._wsman.close()
                    self._wsman = None

    # -- one script ------------------------------------------------------------
    def handle(self, script: Script, parameters: Mapping[str, Any],
               timeout: float) -> RawOutput:
        budget = self.call_budget(timeout)
        with self._lock, self._guard.active(budget):
            created: List[PowerShell] = []
            try:
                ps = self._start(script, parameters, budget, created)
                return self._collect(ps, timeout, budget)
            except BaseException:
                if created and budget.script_started:
                    self._release(created[-1])
                if self._pool is not None and self._pool.state != RunspacePoolState.OPENED:
                    with self._guard.active(self._cleanup_budget()):
                        self._discard_pool()
                raise

    def _cleanup_budget(self) -> CallBudget:
        return cleanup_budget(self.options.operation_timeout)

    def _release(self, ps: PowerShell) -> None:
        """Stop (if running) and close the pipeline on the host, best effort, briefly."""
        with self._guard.active(self._cleanup_budget()):
            if ps.state == PSInvocationState.RUNNING:
                self._stop(ps)
            try:
                ps.runspace_pool.shell.signal(SignalCode.TERMINATE,
                                              command_id=getattr(ps, "_command_id", None)
                                              or str(ps.id).upper())
            except Exception as exc:  # the first error matters more
                LOG.debug("releasing the pipeline on %s failed: %s: %s", self.host,
                          type(exc).__name__, self._mask(str(exc)))
            ps.runspace_pool.pipelines.pop(ps.id, None)

    def _start(self, script: Script, parameters: Mapping[str, Any],
               budget: CallBudget, created: List[PowerShell]) -> PowerShell:
        """Create the pipeline on the host; reopen the pool once if it is gone."""
        secrets = any(_has_secret(v) for v in parameters.values())
        for attempt in (1, 2):
            pool = self._usable_pool()
            try:
                if secrets:
                    pool.exchange_keys()  # once per pool: Send + Receive
                ps = PowerShell(pool)
                # a local scope: the script's variables, parameters (credentials) and
                # helper functions end with the pipeline, not in the pooled runspace
                ps.add_script(script.text, use_local_scope=True)
                for name, value in parameters.items():
                    ps.add_parameter(name, _psrp_value(value))
                budget.script_started = True  # from here on the script may run
                created.append(ps)
                ps.begin_invoke()  # Command: the CreatePipeline message
                return ps
            except Exception as exc:
                dead = _pool_is_gone(pool, exc)
                if dead:
                    budget.script_started = False  # the host had no pool: nothing ran
                if dead:
                    pool.state = RunspacePoolState.CLOSED  # nothing to delete on the host
                if dead or pool.state != RunspacePoolState.OPENED:
                    self._discard_pool()
                if dead and attempt == 1:
                    LOG.info("the PSRP runspace pool on %s is gone (%s); reopening it once",
                             self.host, self._mask(str(exc)))
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _collect(self, ps: PowerShell, timeout: float, budget: CallBudget) -> RawOutput:
        """Receive until the pipeline ends (or the deadline, or the output cap), then
        release it."""
        op_timeout = int(self.options.operation_timeout)
        size = counted = 0
        while ps.state == PSInvocationState.RUNNING:
            remaining = budget.remaining()
            if remaining <= 0:
                LOG.warning("script on %s did not finish within %s s; stopping it",
                            self.host, timeout)
                raise budget.timeout_error(self.host)
            ps.poll_invoke(timeout=max(1, min(op_timeout, int(math.ceil(remaining)))))
            for item in ps.output[counted:]:
                size += len(item) if isinstance(item, str) else len(str(item))
            counted = len(ps.output)
            if size > self.max_output:
                raise exceptions.OutputLimitExceeded(host=self.host, limit=self.max_output)
        try:
            ps.close()  # Signal terminate: the host frees the pipeline
        except Exception as exc:
            LOG.debug("releasing the pipeline on %s failed: %s", self.host,
                      self._mask(str(exc)))
        return self._raw_output(ps)

    def _stop(self, ps: PowerShell) -> None:
        try:
            ps.stop()
        except Exception as exc:
            LOG.warning("could not stop the script on %s after its timeout: %s", self.host,
                        self._mask(str(exc)))

    def _raw_output(self, ps: PowerShell) -> RawOutput:
        lines = [o if isinstance(o, str) else str(o) for o in ps.output if o is not None]
        errors: List[str] = []
        for record in ps.streams.error:
            text = _record_text(record)
            LOG.warning("error record from %s: %s", self.host, text)
            errors.append(text)
        for record in ps.streams.warning:
            text = "WARNING: " + _record_text(record)
            LOG.warning("warning from %s: %s", self.host, text[9:])
            errors.append(text)
        failed = ps.state == PSInvocationState.FAILED
        return RawOutput(stdout="\n".join(lines), stderr="", exit_code=1 if failed else 0,
                         errors=tuple(errors),
                         had_errors=bool(ps.had_errors or failed or ps.streams.error))

    # -- errors ------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        return mask(text, iter_secrets(self.options.password))

    def _unreadable(self, exc: BaseException) -> exceptions.ResponseUnreadable:
        return exceptions.ResponseUnreadable(
            host=self.host, reason="%s from %s is not a WSMan/PSRP message (%s)"
            % ("the answer", self.options.endpoint, type(exc).__name__))

    @contextlib.contextmanager
    def translate_errors(self, timeout: float) -> Iterator[None]:
        """pypsrp / requests / spnego exceptions → smbvol's."""
        start = self._clock()
        o = self.options
        try:
            yield
        except exceptions.SmbvolError:
            raise
        except psrp_exc.AuthenticationError as exc:
            raise exceptions.AuthenticationError(host=self.host, auth=o.auth,
                                                 username=o.username or "(none)",
                                                 reason=self._mask(str(exc))) from None
        except psrp_exc.WSManFaultError as exc:
            if exc.code == OPERATION_TIMEOUT:
                raise exceptions.ExecutorTimeout(host=self.host, timeout=timeout,
                                                 elapsed=self._clock() - start) from None
            code = ("0x%08X (%d)" % (exc.code, exc.code) if isinstance(exc.code, int)
                    else str(exc.code))
            raise exceptions.RemoteFault(host=self.host, code=code,
                                         reason=self._mask(str(exc.reason or exc))) from None
        except psrp_exc.WinRMTransportError as exc:
            status = exc.code
            body = " ".join(self._mask(exc.response_text or "").split())[:300]
            if status in (502, 503, 504):
                raise exceptions.TransportError(
                    host=self.host, reason="HTTP %s from %s: the WinRM service (or a proxy) "
                    "is unavailable" % (status, o.endpoint)) from None
            raise exceptions.RemoteFault(
                host=self.host, code="HTTP %s" % status, http_status=status,
                reason="unexpected answer from %s without a WSMan fault%s"
                % (o.endpoint, (": " + body) if body else "")) from None
        except (ET.ParseError, binascii.Error, struct.error, UnicodeDecodeError) as exc:
            raise self._unreadable(exc) from None
        except (psrp_exc.InvalidPSRPOperation, psrp_exc.InvalidRunspacePoolStateError,
                psrp_exc.InvalidPipelineStateError, psrp_exc.FragmentError,
                psrp_exc.SerializationError) as exc:
            raise exceptions.RemoteFault(host=self.host, code="PSRP",
                                         reason=self._mask(str(exc))) from None
        except requests.exceptions.SSLError as exc:
            text = self._mask(str(exc))
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                raise exceptions.CertificateError(host=self.host, reason=text) from None
            raise exceptions.TransportError(host=self.host, reason="TLS: " + text) from None
        except requests.exceptions.ConnectTimeout:
            raise exceptions.TransportError(
                host=self.host, reason="no connection to %s within %s s"
                % (o.endpoint, o.read_timeout)) from None
        except requests.exceptions.ReadTimeout:
            raise exceptions.ExecutorTimeout(host=self.host, timeout=o.read_timeout,
                                             elapsed=self._clock() - start,
                                             setting="read_timeout") from None
        except (requests.exceptions.ConnectionError, OSError) as exc:
            raise connection_failure(self.host, exc, o.endpoint, self._mask) from None
        except requests.exceptions.RequestException as exc:
            raise exceptions.TransportError(host=self.host,
                                            reason=self._mask(str(exc))) from None
        except psrp_exc.WinRMError as exc:
            raise exceptions.RemoteFault(host=self.host, code="WinRM",
                                         reason=self._mask(str(exc))) from None
        except Exception as exc:
            if _is_spnego_error(exc):
                raise exceptions.AuthenticationError(host=self.host, auth=o.auth,
                                                     username=o.username or "(none)",
                                                     reason=self._mask(str(exc))) from None
            # Anything else pypsrp raised reading an answer it did not expect (a missing
            # element, a wrong type): the answer is unreadable and the outcome unknown.
            LOG.debug("unexpected %s from pypsrp for %s", type(exc).__name__, self.host,
                      exc_info=True)
            raise self._unreadable(exc) from None

    def __repr__(self) -> str:
        return "<PSRPExecutor %s auth=%s user=%s>" % (self.options.endpoint, self.options.auth,
                                                     self.options.username)


# --------------------------------------------------------------------------
def _psrp_value(value: Any) -> Any:
    """A parameter value as pypsrp serializes it; secrets as SecureString only."""
    if isinstance(value, Credential):
        return PSCredential(username=value.username, password=value.password.reveal())
    if isinstance(value, Secret):
        return TaggedValue("SS", value.reveal())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        # [long] parameters: I32 when it fits (what PowerShell sends), else I64.
        return value if _INT32[0] <= value <= _INT32[1] else TaggedValue("I64", value)
    if isinstance(value, (list, tuple)):
        return [_psrp_value(v) for v in value]
    return value


def _has_secret(value: Any) -> bool:
    if isinstance(value, (Credential, Secret)):
        return True
    return isinstance(value, (list, tuple)) and any(_has_secret(v) for v in value)


def _record_text(record: Any) -> str:
    for attr in ("_to_string", "message", "details_message"):
        text = getattr(record, attr, None)
        if text:
            return str(text)
    exc = getattr(record, "exception", None)
    for attr in ("message", "_to_string"):
        text = getattr(exc, attr, None)
        if text:
            return str(text)
    return "(no message)"


def _pool_is_gone(pool: RunspacePool, exc: BaseException) -> bool:
    if isinstance(exc, psrp_exc.WSManFaultError):
        return exc.code in SHELL_GONE
    if isinstance(exc, psrp_exc.InvalidPSRPOperation) and "broken" in str(exc).lower():
        return True
    return pool.state in (RunspacePoolState.BROKEN, RunspacePoolState.CLOSED)


def _state_name(state: int) -> str:
    for name in ("BEFORE_OPEN", "OPENING", "OPENED", "CLOSED", "CLOSING", "BROKEN",
                 "NEGOTIATION_SENT", "NEGOTIATION_SUCCEEDED", "CONNECTING", "DISCONNECTED"):
        if getattr(RunspacePoolState, name, object()) == state:
            return name.lower()
    return str(state)


def _is_spnego_error(exc: BaseException) -> bool:
    try:
        import spnego.exceptions
    except ImportError:  # pragma: no cover - pyspnego is a pypsrp dependency
        return False
    return isinstance(exc, spnego.exceptions.SpnegoError)
