"""Every error smbvol raises, as message templates.

Hierarchy::

    SmbvolError                         base of everything below
    ├── InvalidInput (ValueError)       bad input, detected before anything runs; names the field
    │   ├── InvalidConnectionInfo       a Cinder connection_info that cannot be used
    │   └── UnknownDriverType           no driver for this driver_volume_type
    ├── ConfigError                     an option value that cannot work
    ├── ScriptError                     a template could not be rendered (name, option)
    ├── ExecutorError                   talking to the host failed; nothing is known of the script
    │   ├── TransportError *            refused, reset, DNS, TLS
    │   │   ├── CertificateError        the host's TLS certificate is not trusted
    │   │   └── ResponseUnreadable *    an answer that is not a WSMan message (cut, doubled,
    │   │                               garbage XML); the script may have run
    │   ├── AuthenticationError         the host refused the credentials (mechanism, user)
    │   ├── ExecutorTimeout *           no answer within the timeout (names the setting)
    │   ├── OutputLimitExceeded         the script printed more than max_output_bytes
    │   └── RemoteFault                 a WSMan/PSRP fault (code and reason)
    ├── EnvelopeError                   the script ran but its output cannot be read
    │   ├── NoEnvelope                  no result document in the output
    │   ├── MultipleEnvelopes           more than one result document
    │   └── MalformedEnvelope           a result document that is not valid
    ├── HostOperationError              the script reported ``ok: false``; ``kind`` says why
    │   ├── VMNotFound                  vm_not_found
    │   ├── ShareUnreachable *          share_unreachable
    │   ├── AccessDenied                access_denied
    │   ├── ImageNotFound               image_not_found
    │   ├── MappingConflict             mapping_conflict (Windows error 1219)
    │   ├── LogonSessionMissing         logon_session_missing (the remoting double hop)
    │   ├── NoFreeSlot                  no_free_slot
    │   ├── DiskInUse                   disk_in_use
    │   ├── HostBusy *                  host_busy (host-side lock not acquired in time)
    │   ├── InvalidState                invalid_state
    │   ├── InvalidParameters           invalid_parameters (the script refused its input)
    │   ├── TargetUnreachable *         target_unreachable (iSCSI portal)
    │   ├── ChapAuthFailed              chap_auth_failed
    │   ├── LunNotFound                 lun_not_found
    │   └── UnexpectedHostError         unexpected (anything else)
    └── VolumeOperationFailed           an operation failed for good; carries the volume id

``*`` marks the transient errors.  This module is the one place that decides
what a retry policy may retry, with two predicates for the two retry layers:

* :func:`is_transient` — the **operation** policy
  (:func:`smbvol.retry.attach_policy`, around a whole volume operation): every
  ``*`` error above.  The templates are idempotent, so running the operation
  again is safe even when the previous try may have done its work.
* :func:`is_connection_failure` — the **connection** policy
  (:func:`smbvol.retry.connection_policy`, inside the WinRM/PSRP executors):
  only failures to reach the host (:class:`TransportError`: refused, reset,
  DNS, HTTP 502/503/504), never :class:`CertificateError` (retrying cannot fix
  trust), never :class:`ExecutorTimeout` (the script may be running: the
  operation policy decides), never an error raised once the script may have
  started (``script_may_have_started``: a reset or an unreadable answer after
  the command was sent — no blind re-run at the connection layer; the
  operation, which knows idempotency and clean-up, decides) and never a host
  error.  So the layers do not
  multiply: a timeout costs ``volume_attach_retry_count + 1`` tries, not
  ``(connection_retry_count + 1) * (volume_attach_retry_count + 1)``.

Every class has a ``msg_fmt`` template filled from keyword arguments, so the
message always names what it is about.  Messages never contain secrets: the
code that raises them is given names and paths, never passwords, and output
excerpts are masked before they are attached (the executors mask every error
of a call once more with every secret they know, :func:`smbvol.secret.mask`).
Every message has its control, bidi and invisible characters escaped and is
bounded to about :data:`smbvol.secret.MAX_MESSAGE_CHARS` characters, each
string value in it to :data:`smbvol.secret.MAX_VALUE_CHARS`
(:func:`smbvol.secret.safe_text`).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Type

from smbvol.secret import MAX_MESSAGE_CHARS, bound, escape_unsafe, safe_text

LOG = logging.getLogger(__name__)


class SmbvolError(Exception):
    """Base class.  ``msg_fmt`` is filled from the keyword arguments."""

    msg_fmt = "an smbvol operation failed"

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            shown = {k: safe_text(v, self.value_chars) if isinstance(v, str) else v
                     for k, v in kwargs.items()}
            try:
                message = self.msg_fmt % shown
            except (KeyError, TypeError, ValueError):
                LOG.debug("could not format %s with %s", type(self).__name__, sorted(kwargs))
                message = self.msg_fmt
        message = bound(escape_unsafe(str(message)), MAX_MESSAGE_CHARS)
        self.message = message
        super().__init__(message)

    #: Longest string value shown in the message (see :func:`smbvol.secret.safe_text`).
    value_chars = 300

    def __str__(self) -> str:
        return self.message


class InvalidInput(SmbvolError, ValueError):
    msg_fmt = "invalid %(field)s %(value)r: %(reason)s"

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        self.field = kwargs.get("field")
        super().__init__(message, **kwargs)


class InvalidConnectionInfo(InvalidInput):
    msg_fmt = "invalid connection_info field %(field)s %(value)r: %(reason)s"


class UnknownDriverType(InvalidInput):
    msg_fmt = ("unknown driver_volume_type %(value)r: use one of %(known)s")

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        kwargs.setdefault("field", "driver_volume_type")
        super().__init__(message, **kwargs)


class ConfigError(SmbvolError):
    msg_fmt = "invalid configuration option %(option)s: %(reason)s"


class ScriptError(SmbvolError):
    msg_fmt = "cannot render script %(name)s: %(reason)s"


class ExecutorError(SmbvolError):
    msg_fmt = "cannot run the script on %(host)s: %(reason)s"


class TransportError(ExecutorError):
    msg_fmt = "cannot reach %(host)s: %(reason)s"


class CertificateError(TransportError):
    msg_fmt = ("the TLS certificate of %(host)s is not trusted: %(reason)s; "
               "pass the issuing CA with ca_file, or fix the host's certificate")


class AuthenticationError(ExecutorError):
    msg_fmt = ("%(host)s refused %(auth)s authentication for user %(username)s: %(reason)s")


class ResponseUnreadable(TransportError):
    msg_fmt = ("the answer of %(host)s cannot be read (%(reason)s); if the script had "
               "started, its outcome is unknown")


class ExecutorTimeout(ExecutorError):
    """``setting`` names the option whose limit fired (``script_timeout``, ``read_timeout``)."""

    msg_fmt = "no answer from %(host)s after %(elapsed).1f s (%(setting)s %(timeout)s s)"

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        kwargs.setdefault("setting", "timeout")
        self.setting = kwargs["setting"]
        super().__init__(message, **kwargs)


class OutputLimitExceeded(ExecutorError):
    msg_fmt = ("the script on %(host)s printed more than %(limit)d bytes; it was stopped and "
               "its outcome is unknown (raise [smbvol] max_output_bytes if this much output "
               "is expected)")


class RemoteFault(ExecutorError):
    msg_fmt = "%(host)s answered with a fault %(code)s: %(reason)s"


class EnvelopeError(SmbvolError):
    """The output of a script cannot be read.  ``excerpt`` is bounded and masked."""

    value_chars = 700
    msg_fmt = "cannot read the result of %(operation)s: %(reason)s; output: %(excerpt)s"

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        self.excerpt = kwargs.get("excerpt", "")
        super().__init__(message, **kwargs)


class NoEnvelope(EnvelopeError):
    msg_fmt = ("%(operation)s printed no result document (exit code %(exit_code)s); "
               "output: %(excerpt)s")


class MultipleEnvelopes(EnvelopeError):
    msg_fmt = "%(operation)s printed %(count)d result documents; output: %(excerpt)s"


class MalformedEnvelope(EnvelopeError):
    pass


class HostOperationError(SmbvolError):
    """A script ran and reported failure.  Attributes mirror the envelope's error."""

    kind = "unexpected"
    msg_fmt = "%(operation)s failed on %(host)s: %(detail)s"

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        self.operation = kwargs.get("operation")
        self.host = kwargs.get("host")
        self.detail = kwargs.get("detail")
        self.category = kwargs.get("category")
        self.fq_error_id = kwargs.get("fq_error_id")
        self.hresult = kwargs.get("hresult")
        self.native_code = kwargs.get("native_code")
        self.data = kwargs.get("data") or {}
        super().__init__(message, **kwargs)


class VMNotFound(HostOperationError):
    kind = "vm_not_found"


class ShareUnreachable(HostOperationError):
    kind = "share_unreachable"


class AccessDenied(HostOperationError):
    kind = "access_denied"


class ImageNotFound(HostOperationError):
    kind = "image_not_found"


class MappingConflict(HostOperationError):
    kind = "mapping_conflict"


class LogonSessionMissing(HostOperationError):
    kind = "logon_session_missing"


class NoFreeSlot(HostOperationError):
    kind = "no_free_slot"


class DiskInUse(HostOperationError):
    kind = "disk_in_use"


class HostBusy(HostOperationError):
    kind = "host_busy"


class InvalidState(HostOperationError):
    kind = "invalid_state"


class InvalidParameters(HostOperationError):
    kind = "invalid_parameters"


class TargetUnreachable(HostOperationError):
    kind = "target_unreachable"


class ChapAuthFailed(HostOperationError):
    kind = "chap_auth_failed"


class LunNotFound(HostOperationError):
    kind = "lun_not_found"


class UnexpectedHostError(HostOperationError):
    kind = "unexpected"


class VolumeOperationFailed(SmbvolError):
    msg_fmt = "%(operation)s of volume %(volume_id)s on %(instance)s failed: %(reason)s"

    def __init__(self, message: Optional[str] = None, **kwargs: Any) -> None:
        self.volume_id = kwargs.get("volume_id")
        super().__init__(message, **kwargs)


#: error ``kind`` of an envelope → exception class.
HOST_ERRORS: Dict[str, Type[HostOperationError]] = {
    cls.kind: cls
    for cls in (VMNotFound, ShareUnreachable, AccessDenied, ImageNotFound, MappingConflict,
                LogonSessionMissing, NoFreeSlot, DiskInUse, HostBusy, InvalidState,
                InvalidParameters, TargetUnreachable, ChapAuthFailed, LunNotFound,
                UnexpectedHostError)
}

_TRANSIENT = (TransportError, ExecutorTimeout, ShareUnreachable, HostBusy, TargetUnreachable)
_NEVER_TRANSIENT = (CertificateError,)


def is_transient(exc: BaseException) -> bool:
    """Whether running the same operation again may succeed (the operation retry policy).

    A failure to reach the host that an executor's connection policy has already
    retried (``connection_retries_exhausted``) is not retried again, so the two
    retry layers never multiply.
    """
    if isinstance(exc, _NEVER_TRANSIENT):
        return False
    if getattr(exc, "connection_retries_exhausted", False):
        return False
    return isinstance(exc, _TRANSIENT)


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure to reach the host that the connection policy may retry.

    Only :class:`TransportError` (not its :class:`CertificateError`) raised before the
    script may have started (``script_may_have_started`` unset): not
    :class:`ExecutorTimeout`, not :class:`AuthenticationError` or
    :class:`RemoteFault`, not a host error.  A subset of :func:`is_transient`.
    """
    if getattr(exc, "script_may_have_started", False):
        return False
    return isinstance(exc, TransportError) and not isinstance(exc, _NEVER_TRANSIENT)


def outcome_unknown(exc: BaseException) -> bool:
    """Whether the script may have done its work although the call failed.

    A transport error (a reset may come after the host did the work), a timeout,
    a fault or unreadable output: True.  An authentication or certificate failure
    (nothing ran) and a host error (the script reported failure and rolled back
    what it did): False.  Decides when a failed attach cleans up after itself.
    """
    if isinstance(exc, (AuthenticationError, CertificateError)):
        return False
    return isinstance(exc, (ExecutorError, EnvelopeError))


def host_error(kind: str, **kwargs: Any) -> HostOperationError:
    """The exception for an envelope error of ``kind`` (unknown kinds → UnexpectedHostError)."""
    cls = HOST_ERRORS.get(kind, UnexpectedHostError)
    return cls(**kwargs)
