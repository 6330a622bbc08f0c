"""Secret values: passwords and CHAP secrets that must never be shown.

A :class:`Secret` holds a value that ``str()``, ``repr()``, ``format()`` and
JSON encoding (with :class:`RedactingJSONEncoder`, or the stdlib encoder, which
refuses it) never reveal.  The only way to read it is :meth:`Secret.reveal`,
which the executors call at the last moment, when the value is handed to the
transport.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from typing import Any, Iterable, Iterator, Optional

MASK = "***"


class Secret:
    """A string that is never printed."""

    __slots__ = ("_value",)

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


def mask(text: str, secrets: Optional[Iterable[str]]) -> str:
    """``text`` with every occurrence of every secret replaced by ``***``."""
    for s in sorted({s for s in (secrets or ()) if s}, key=len, reverse=True):
        text = text.replace(s, MASK)
    return text
