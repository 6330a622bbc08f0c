"""The one function that turns a value into PowerShell source text.

Only the standalone rendering of a script (for an operator to read and run by
hand) inlines values; the scripts smbvol runs itself receive every value as a
parameter.  Inlined strings become single-quoted literals.  PowerShell ends a
single-quoted string at any of ``'`` U+2018 U+2019 U+201A U+201B, and reads a
doubled quote character as one literal quote, so every one of them is doubled.
Secrets are never inlined: :func:`ps_literal` refuses them.
"""

from __future__ import annotations

from typing import Any

from smbvol import exceptions
from smbvol.secret import Credential, Secret

#: Every character that opens or closes a PowerShell single-quoted string.
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
#: Every character that opens or closes a PowerShell double-quoted string.
DOUBLE_QUOTES = '"\u201c\u201d\u201e'

_TRANSLATION = {ord(q): q + q for q in SINGLE_QUOTES}


def ps_quote(value: str) -> str:
    """``value`` as a PowerShell single-quoted string literal.

    >>> ps_quote("it's")
    "'it''s'"
    """
    if not isinstance(value, str):
        raise TypeError("ps_quote takes a str, not %s" % type(value).__name__)
    if "\x00" in value:
        raise exceptions.InvalidInput(field="value", value="<contains NUL>",
                                      reason="NUL characters cannot be passed to PowerShell")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise exceptions.InvalidInput(field="value", value="<lone surrogate>",
                                      reason="the text is not valid Unicode") from None
    return "'" + value.translate(_TRANSLATION) + "'"


def ps_literal(value: Any) -> str:
    """Any non-secret parameter value as PowerShell source text."""
    if isinstance(value, (Secret, Credential)):
        raise TypeError("secrets are never inlined into script text")
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return ps_quote(value)
    if isinstance(value, (list, tuple)):
        return "@(" + ", ".join(ps_literal(v) for v in value) + ")"
    raise TypeError("cannot write a %s as a PowerShell literal" % type(value).__name__)
