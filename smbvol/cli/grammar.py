"""The PowerShell grammar check of scripts printed by ``--dry-run``.

A script is parsed with tree-sitter's PowerShell grammar before it is shown to
an operator; a script that does not parse is never printed.  The grammar is an
optional import: without ``tree-sitter`` and ``tree-sitter-powershell``
:func:`check` raises :class:`~smbvol.cli.errors.DryRunUnavailable`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, List, Tuple

from smbvol.cli.errors import DryRunUnavailable, ScriptSyntaxError
from smbvol.quoting import DOUBLE_QUOTES, SINGLE_QUOTES

LOG = logging.getLogger(__name__)

INSTALL_HINT = ("--dry-run checks the script with the PowerShell grammar, which is not "
                "installed: pip install tree-sitter tree-sitter-powershell")


@functools.lru_cache(maxsize=1)
def _language() -> Any:
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError as exc:
        LOG.debug("PowerShell grammar unavailable: %s", exc)
        raise DryRunUnavailable(reason=INSTALL_HINT) from exc
    return tree_sitter.Language(tree_sitter_powershell.language())


def parse(text: str) -> Any:
    """The tree-sitter tree of ``text`` (raises DryRunUnavailable without the grammar)."""
    language = _language()  # first: it turns a missing grammar into DryRunUnavailable
    import tree_sitter

    return tree_sitter.Parser(language).parse(text.encode("utf-8"))


def _errors(node: Any, out: List[Tuple[int, int, str]]) -> None:
    if len(out) >= 5:
        return
    if node.type == "ERROR" or node.is_missing:
        row, col = node.start_point
        what = "missing %s" % node.type if node.is_missing else "unexpected text"
        out.append((row + 1, col + 1, what))
        return
    if node.has_error:
        for child in node.children:
            _errors(child, out)


def _single_quoted_end(text: str) -> int:
    """Where PowerShell ends the single-quoted literal ``text`` (index of its closing quote).

    PowerShell closes a single-quoted string at any of ' U+2018 U+2019 U+201A U+201B
    that is not doubled (two quote characters in a row stand for one); the
    grammar only knows the ASCII quote.  ``len(text)`` means not closed in ``text``.
    """
    i = 1
    while i < len(text):
        if text[i] in SINGLE_QUOTES:
            if i + 1 < len(text) and text[i + 1] in SINGLE_QUOTES:
                i += 2
                continue
            return i
        i += 1
    return len(text)


def _quote_errors(node: Any, out: List[Tuple[int, int, str]]) -> None:
    """Single-quoted literals PowerShell would end elsewhere than the grammar does."""
    stack = [node]
    while stack and len(out) < 5:
        n = stack.pop()
        if n.type == "string_literal":
            text = n.text.decode("utf-8")
            if text[:1] in SINGLE_QUOTES and _single_quoted_end(text) != len(text) - 1:
                row, col = n.start_point
                out.append((row + 1, col + 1, "a quote character inside a string literal "
                                              "is not doubled"))
            continue
        if n.type == "comment":
            continue
        if n.child_count == 0 and any(c in SINGLE_QUOTES[1:] + DOUBLE_QUOTES[1:]
                                      for c in n.text.decode("utf-8")):
            row, col = n.start_point
            out.append((row + 1, col + 1, "a typographic quote outside a string literal"))
        stack.extend(reversed(n.children))


def check(text: str, operation: str = "smbvol") -> None:
    """Raise :class:`ScriptSyntaxError` unless ``text`` parses as PowerShell.

    Besides the grammar's errors, every single-quoted literal must end where
    PowerShell ends it (all of its quote characters doubled), and no
    typographic quote may stand outside a literal.
    """
    tree = parse(text)
    found: List[Tuple[int, int, str]] = []
    if tree.root_node.has_error:
        _errors(tree.root_node, found)
        found = found or [(1, 1, "syntax error")]
    else:
        _quote_errors(tree.root_node, found)
    if found:
        where = "; ".join("line %d column %d: %s" % f for f in found)
        raise ScriptSyntaxError(operation=operation, reason=where)


def string_literals(text: str) -> List[str]:
    """The source text of every string literal of ``text`` (tests and audits)."""
    tree = parse(text)
    out: List[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "string_literal":
            out.append(node.text.decode("utf-8"))
            continue
        stack.extend(node.children)
    return out
