"""Secret values: passwords and CHAP secrets that must never be shown.

A :class:`Secret` holds a value that ``str()``, ``repr()``, ``format()`` and
JSON encoding (with :class:`RedactingJSONEncoder`, or the stdlib encoder, which
refuses it) never reveal.  The only way to read it is :meth:`Secret.reveal`,
which the executors call at the last moment, when the value is handed to the
transport.

**The masking rule** (:func:`mask`, used by the executors, the envelope parser,
VolumeOps and the command line alike): text that may echo a secret — what a
host or a library said, an output excerpt, a message built from them — is
masked against every secret known at that point (transport password, share
password, CHAP secrets of the call):

1. a secret of at least :data:`MIN_MASKABLE` (4) characters is replaced by
   ``***`` wherever it occurs, also in its XML-escaped and JSON-escaped forms;
2. a secret shorter than that is never searched for (starring each ``o`` of a
   one-letter password would turn "response" into "resp***nse" and tell the
   password); instead the whole text is replaced by :data:`WITHHELD`, whether
   or not it contains the secret, so what is shown never depends on the secret;
3. empty secrets are ignored.

Separately, :func:`safe_text` escapes control, bidi and other invisible
characters and bounds the length of a value that goes into a message or a log
record, and :class:`LogSanitizer` applies both to log records.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import re
import traceback
from typing import Any, Iterable, Iterator, List, Optional

MASK = "***"
#: Shortest secret that :func:`mask` searches for; shorter ones withhold the text.
MIN_MASKABLE = 4
#: What :func:`mask` returns when a known secret is too short to be masked safely.
WITHHELD = ("[text withheld: a configured secret is shorter than %d characters and cannot "
            "be masked safely; use a longer password]" % MIN_MASKABLE)
#: Longest value :func:`safe_text` keeps, and longest log message :class:`LogSanitizer` keeps.
MAX_VALUE_CHARS = 300
MAX_MESSAGE_CHARS = 1000


class Secret:
    """A string that is never printed."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str, not %s" % type(value).__name__)
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The plain value.  Call only where it is handed to a transport."""
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('%s')" % MASK

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    def __hash__(self) -> int:
        return hash(("smbvol.Secret", self._value))

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo: Any) -> "Secret":
        return self

    def __reduce__(self):  # pragma: no cover - pickling is refused on purpose
        raise TypeError("a Secret cannot be pickled")


@dataclasses.dataclass(frozen=True)
class Credential:
    """A user name and its password, as PowerShell's PSCredential.

    ``username`` may be ``user``, ``DOMAIN\\user`` or a UPN ``user@domain``.
    """

    username: str
    password: Secret

    def __post_init__(self) -> None:
        if not isinstance(self.password, Secret):
            object.__setattr__(self, "password", Secret(self.password))


class RedactingJSONEncoder(json.JSONEncoder):
    """JSON encoder that writes every Secret as ``"***"``."""

    def default(self, o: Any) -> Any:
        if isinstance(o, Secret):
            return MASK
        if isinstance(o, Credential):
            return {"username": o.username, "password": MASK}
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        return super().default(o)


def iter_secrets(value: Any) -> Iterator[str]:
    """Every revealed secret string found inside ``value`` (dicts, lists, Credentials)."""
    if isinstance(value, Secret):
        if value.reveal():
            yield value.reveal()
    elif isinstance(value, Credential):
        yield from iter_secrets(value.password)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_secrets(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_secrets(v)


def _forms(secret: str) -> List[str]:
    """``secret`` as it may appear in text: plain, XML-escaped, JSON-escaped."""
    xml = (secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
           .replace('"', "&quot;").replace("'", "&apos;"))
    js = json.dumps(secret, ensure_ascii=False)[1:-1]
    js_ascii = json.dumps(secret)[1:-1]
    return [f for f in dict.fromkeys((secret, xml, js, js_ascii, xml.replace("&apos;", "&#39;")))]


def mask(text: str, secrets: Optional[Iterable[str]]) -> str:
    """``text`` under the masking rule of this module (see the module docstring)."""
    known = {str(s) for s in (secrets or ()) if s}
    if not known or text is None:
        return text
    if any(len(s) < MIN_MASKABLE for s in known):
        return WITHHELD
    forms = sorted({f for s in known for f in _forms(s)}, key=len, reverse=True)
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def has_short_secret(secrets: Optional[Iterable[str]]) -> bool:
    """Whether :func:`mask` withholds every text for these secrets."""
    return any(s and len(s) < MIN_MASKABLE for s in (secrets or ()))


#: C0/C1 controls, DEL, bidi controls and other invisible format characters, line and
#: paragraph separators, BOM, lone surrogates.
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f"
                        "\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
                        "\ud800-\udfff]")


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(m: "re.Match[str]") -> str:
    if m.group(0) in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[m.group(0)]
    c = ord(m.group(0))
    return "\\x%02x" % c if c < 0x100 else "\\u%04x" % c


def escape_unsafe(text: str) -> str:
    """``text`` with control, bidi and invisible characters written as ``\\xNN``/``\\uNNNN``."""
    return _UNSAFE_RE.sub(_escape_char, text)


def bound(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = max(1, limit - 40)
    return "%s[... %d more characters]" % (text[:keep], len(text) - keep)


def safe_text(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as it may go into a message or a log record: escaped, then bounded."""
    return bound(escape_unsafe(value if isinstance(value, str) else str(value)), limit)


class LogSanitizer(logging.Filter):
    """Masks ``secrets`` (the rule of :func:`mask`), escapes control/bidi characters and
    bounds every record it sees to :data:`MAX_MESSAGE_CHARS`.

    Attached to a logger, it applies to the records created on that logger (the
    executors attach one to every logger of the HTTP and remoting libraries for the
    length of a call, and a secret-less one to smbvol's own loggers).
    """

    def __init__(self, secrets: Iterable[str] = (), limit: int = MAX_MESSAGE_CHARS,
                 demote: bool = False) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]
        self.limit = limit
        #: Lower every record to DEBUG: a library's own warnings (pypsrp's "Failed to
        #: parse WSManFault message") then reach only a --debug log, masked.
        self.demote = demote

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_smbvol_sanitized", None) is self:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: keep what can be shown
            text = "%s %s" % (record.msg, record.args)
        text = mask(text, self.secrets) if self.secrets else text
        record.msg = bound(escape_unsafe(text), self.limit)
        record.args = None
        if record.exc_info and self.secrets:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_text = mask(record.exc_text, self.secrets)
        elif record.exc_text and self.secrets:
            record.exc_text = mask(record.exc_text, self.secrets)
        if record.stack_info and self.secrets:
            record.stack_info = mask(record.stack_info, self.secrets)
        if self.demote and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record._smbvol_sanitized = self
        return True


#: Loggers of the libraries under the remote executors, whose DEBUG records carry raw
#: requests and answers.
LIBRARY_LOGGERS = ("pypsrp", "psrpcore", "winrm", "urllib3", "requests", "requests_ntlm",
                   "requests_credssp", "spnego", "ntlm_auth", "krb5", "gssapi")


def loggers_under(prefixes: Iterable[str]) -> List[logging.Logger]:
    """Every existing logger named ``prefix`` or ``prefix.*`` for the given prefixes."""
    prefixes = tuple(prefixes)
    out = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and any(
                name == p or name.startswith(p + ".") for p in prefixes):
            out.append(logger)
    for p in prefixes:
        logger = logging.getLogger(p)
        if logger not in out:
            out.append(logger)
    return out
