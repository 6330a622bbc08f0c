"""Connection options shared by the remote executors (WinRM and PSRP).

:class:`RemoteOptions` gathers the ``[smbvol]`` options that say how to reach a
host over WS-Management (endpoint, authentication, TLS, message encryption,
timeouts) and :meth:`RemoteOptions.validate` refuses combinations that cannot
work or would be insecure, naming the option and the fix.  Nothing here talks
to a host.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator, Mapping, Optional

from smbvol import exceptions
from smbvol.secret import Secret

LOG = logging.getLogger(__name__)

#: Mechanisms understood by the options (a transport may support fewer).
AUTH_MECHANISMS = ("negotiate", "ntlm", "kerberos", "credssp", "certificate", "basic")
#: Mechanisms that can encrypt WinRM messages over plain HTTP.
ENCRYPTING_AUTH = ("negotiate", "ntlm", "kerberos", "credssp")
#: Mechanisms that need a password (kerberos may use a ticket cache).
PASSWORD_AUTH = ("negotiate", "ntlm", "credssp", "basic")
MESSAGE_ENCRYPTION = ("auto", "always", "never")
#: Environment variable read for the password when neither the constructor nor
#: ``[smbvol] password`` gives one.
PASSWORD_ENV = "SMBVOL_PASSWORD"


@dataclasses.dataclass(frozen=True)
class RemoteOptions:
    """How to reach one host over WS-Management (HTTP/HTTPS ``/wsman``)."""

    host: str
    port: int
    ssl: bool = True
    auth: str = "ntlm"
    username: Optional[str] = None
    password: Optional[Secret] = dataclasses.field(default=None, repr=False)
    ca_file: Optional[str] = None
    cert_validation: bool = True
    message_encryption: str = "auto"
    allow_unencrypted: bool = False
    certificate_pem: Optional[str] = None
    certificate_key_pem: Optional[str] = None
    operation_timeout: int = 20
    read_timeout: int = 30
    script_timeout: int = 300
    configuration_name: str = "Microsoft.PowerShell"

    def __post_init__(self) -> None:
        if self.password is not None and not isinstance(self.password, Secret):
            object.__setattr__(self, "password", Secret(self.password))

    @classmethod
    def from_conf(cls, conf, host: Optional[str] = None, password: Optional[Secret] = None,
                  environ: Optional[Mapping[str, str]] = None) -> "RemoteOptions":
        """Options from ``conf.smbvol``; ``host`` and ``password`` override the options.

        The password comes from ``password``, else ``[smbvol] password``, else the
        ``SMBVOL_PASSWORD`` environment variable.  The result is not validated yet:
        call :meth:`validate` (every executor does at construction).
        """
        o = conf.smbvol
        environ = os.environ if environ is None else environ
        if password is None:
            if o.password:
                password = Secret(o.password)
            elif environ.get(PASSWORD_ENV):
                password = Secret(environ[PASSWORD_ENV])
        port = o.port or (5986 if o.ssl else 5985)
        return cls(host=host or o.host, port=port, ssl=o.ssl, auth=o.auth,
                   username=o.username, password=password, ca_file=o.ca_file,
                   cert_validation=o.cert_validation,
                   message_encryption=o.message_encryption,
                   allow_unencrypted=o.allow_unencrypted,
                   certificate_pem=o.certificate_pem,
                   certificate_key_pem=o.certificate_key_pem,
                   operation_timeout=o.operation_timeout, read_timeout=o.read_timeout,
                   script_timeout=o.script_timeout,
                   configuration_name=o.configuration_name)

    # -- derived --------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.ssl else "http"

    @property
    def endpoint(self) -> str:
        """``https://host:5986/wsman`` (IPv6 literals in brackets)."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        return "%s://%s:%d/wsman" % (self.scheme, host, self.port)

    @property
    def encrypted(self) -> bool:
        """Whether messages are protected (TLS, or WinRM message encryption)."""
        return self.ssl or (self.auth in ENCRYPTING_AUTH and self.message_encryption != "never")

    def with_password(self, password: Optional[Secret]) -> "RemoteOptions":
        return self if password is None else dataclasses.replace(self, password=password)

    # -- checks ---------------------------------------------------------------
    def validate(self) -> "RemoteOptions":
        """``self`` if the options can work; else :class:`ConfigError` naming the option."""

        def bad(option: str, reason: str) -> exceptions.ConfigError:
            return exceptions.ConfigError(option="smbvol." + option, reason=reason)

        if not self.host or any(c.isspace() or c in "/\\@?#" for c in self.host):
            raise bad("host", "%r is not a host name or address" % (self.host,))
        if not 0 < int(self.port) < 65536:
            raise bad("port", "%r is not a TCP port (1-65535)" % (self.port,))
        if self.auth not in AUTH_MECHANISMS:
            raise bad("auth", "unknown mechanism %r; use one of %s"
                      % (self.auth, ", ".join(AUTH_MECHANISMS)))
        if self.message_encryption not in MESSAGE_ENCRYPTION:
            raise bad("message_encryption", "%r is not one of %s"
                      % (self.message_encryption, ", ".join(MESSAGE_ENCRYPTION)))
        if self.auth == "certificate":
            if not self.ssl:
                raise bad("ssl", "certificate authentication works over HTTPS only; "
                                 "set ssl = true")
            for name in ("certificate_pem", "certificate_key_pem"):
                path = getattr(self, name)
                if not path:
                    raise bad(name, "certificate authentication needs the client "
                                    "certificate and its key; set %s" % name)
                if not os.path.isfile(path):
                    raise bad(name, "file %r does not exist" % path)
        else:
            if self.auth != "kerberos" and not self.username:
                raise bad("username", "%s authentication needs a user name" % self.auth)
            if self.auth in PASSWORD_AUTH and not self.password:
                raise bad("password", "%s authentication needs a password; set it in the "
                                      "%s environment variable or [smbvol] password"
                          % (self.auth, PASSWORD_ENV))
        if not self.ssl and not self.allow_unencrypted:
            if self.auth not in ENCRYPTING_AUTH:
                raise bad("ssl", "%s authentication over plain HTTP sends credentials and "
                                 "data in clear; use ssl = true (or set allow_unencrypted, "
                                 "insecure)" % self.auth)
            if self.message_encryption == "never":
                raise bad("message_encryption", "'never' over plain HTTP leaves every message "
                                                "readable; use 'auto', or ssl = true (or set "
                                                "allow_unencrypted, insecure)")
        if self.message_encryption == "always" and self.auth not in ENCRYPTING_AUTH:
            raise bad("message_encryption", "%s authentication cannot encrypt messages; use "
                                            "'auto' with ssl = true" % self.auth)
        if int(self.operation_timeout) < 1:
            raise bad("operation_timeout", "must be at least 1 second")
        if int(self.read_timeout) <= int(self.operation_timeout):
            raise bad("read_timeout", "must be greater than operation_timeout (%s s), because "
                                      "the host may hold a receive that long; got %s s"
                      % (self.operation_timeout, self.read_timeout))
        if int(self.script_timeout) < 1:
            raise bad("script_timeout", "must be at least 1 second")
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise bad("ca_file", "file %r does not exist" % self.ca_file)
        return self

    def log_insecure(self, logger: Optional[logging.Logger] = None) -> None:
        """Log a WARNING for every insecure setting; call on each connection."""
        logger = logger or LOG
        if self.ssl and not self.cert_validation:
            logger.warning("TLS certificate validation for %s is disabled (cert_validation = "
                           "false): the connection can be intercepted; set ca_file instead",
                           self.endpoint)
        if not self.encrypted:
            logger.warning("messages to %s are not encrypted (allow_unencrypted = true)",
                           self.endpoint)

    def __repr__(self) -> str:
        return ("RemoteOptions(endpoint=%r, auth=%r, username=%r, password=%s, "
                "cert_validation=%r, message_encryption=%r)"
                % (self.endpoint, self.auth, self.username,
                   "'***'" if self.password else None, self.cert_validation,
                   self.message_encryption))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            nxt = getattr(e, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def describe_connection_error(exc: BaseException) -> str:
    """``connection refused`` / ``connection reset`` / ``cannot resolve`` / the error.

    The words of every remote executor for a failure to reach the host, whatever
    the library (pywinrm, pypsrp) and however urllib3 wrapped it.
    """
    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused: is WinRM listening on that port?"
    if any(isinstance(e, ConnectionResetError) for e in chain) or "reset" in text:
        return "connection reset by the host or the network"
    if any(s in text for s in ("name or service not known", "nodename nor servname",
                               "getaddrinfo", "name resolution", "failed to resolve",
                               "no address associated")):
        return "cannot resolve the host name"
    if any(isinstance(e, (ConnectionAbortedError, BrokenPipeError)) for e in chain):
        return "connection aborted"
    if any(s in text for s in ("incompleteread", "connection broken", "ended prematurely",
                               "remote end closed")):
        return "the connection broke in the middle of an answer"
    if any(isinstance(e, TimeoutError) for e in chain) or "timed out" in text:
        return "no connection within the timeout (the host or a firewall drops packets?)"
    # Not urllib3's pool text ("HTTPConnectionPool(...) Max retries exceeded"): the kind.
    return "connection failed (%s)" % type(chain[-1]).__name__


#: What :func:`describe_connection_error` says when no byte of the request left.
NOT_SENT = ("connection refused", "cannot resolve")


def connection_failure(host: str, exc: BaseException, endpoint: str,
                       mask_text) -> "exceptions.TransportError":
    """The :class:`TransportError` for a failure to reach ``endpoint`` (same words for
    every transport).  ``request_not_sent`` is set when the connection was never made
    (refused, unresolvable), so a retry is safe even after the command was due."""
    words = describe_connection_error(exc)
    err = exceptions.TransportError(host=host, reason=mask_text("%s (%s)" % (words, endpoint)))
    err.request_not_sent = words.startswith(NOT_SENT)
    return err
