"""Argument parsers that neither guess nor echo: no abbreviations, no unknown values shown.

argparse takes ``--share-pass`` for ``--share-password-file`` (an abbreviation)
and prints every unrecognised argument back, so a password typed after a
mistyped option would land on the terminal.  :func:`harden` turns
abbreviations off on a parser and rewrites its "unrecognized arguments" error
to name the unknown options only (up to any ``=``) and count the other words.
"""

from __future__ import annotations

import argparse
import re
from typing import List

_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<args>.*)\Z", re.S)


def unknown_words(words: List[str]) -> str:
    """``--foo, --bar and 2 other word(s) (not shown)``: option names, never values."""
    names = []
    for word in words:
        if word.startswith("-") and len(word) > 1:
            name = word.split("=", 1)[0]
            if name not in names:
                names.append(name)
    others = sum(1 for w in words if not (w.startswith("-") and len(w) > 1))
    text = ", ".join(names)
    if others:
        text += "%s%d other word(s) (not shown)" % (" and " if text else "", others)
    return text


def safe_message(message: str) -> str:
    """An argparse error message with the values of unknown arguments left out."""
    match = _UNRECOGNIZED.match(message)
    if match is None:
        return message
    words = match.group("args").split()
    return "unrecognized arguments: %s; see --help" % unknown_words(words)


def harden(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` without abbreviations and with value-free errors (returned)."""
    parser.allow_abbrev = False
    error = parser.error

    def safe_error(message: str):  # argparse's error() exits with code 2
        error(safe_message(message))

    parser.error = safe_error  # type: ignore[method-assign]
    return parser
