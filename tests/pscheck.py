"""Offline checks that a script is PowerShell that Windows PowerShell 5.1 will run as written.

There is no PowerShell on the test machine, so the scripts are read with the tree-sitter
PowerShell grammar (``tree_sitter_powershell``) and checked against the vendored cmdlet reference
``tests/data/cmdlets.json``.  Every checker takes the script text and returns a list of
:class:`Issue` (empty: clean); :func:`all_issues` runs them all.

Checkers
--------
:func:`parse_errors`
    Every ERROR and MISSING node of the tree, with its line and column.  A template passes only
    with none.

:func:`quote_issues` -- the quote re-scan
    The grammar ends a single-quoted string only at the ASCII ``'`` and a double-quoted one only
    at ``"``.  PowerShell also ends a single-quoted string at U+2018, U+2019, U+201A and U+201B,
    and a double-quoted one at U+201C, U+201D and U+201E, so ``$a = 'x’; Evil; ’'`` is one
    harmless string to the grammar and runs ``Evil`` in PowerShell.  Every string-literal node
    (single- and double-quoted, both here-string kinds) is therefore scanned again from its
    opening quote with PowerShell's own rule -- any quote character of the string's kind that is
    not doubled by a second quote character of that kind ends the string (a doubled pair, even
    of two different characters such as ``’'``, is one literal quote: the second); in double-quoted
    strings a backtick escapes the next character and ``$(...)``/``${...}``/``$name`` parts are
    code, not text; a here-string ends at a line that starts with a quote character of its kind
    followed by ``@`` -- and the checker fails when PowerShell would end the string anywhere but
    where the grammar does (earlier: code would run; later: code would be swallowed).  A
    typographic quote character outside every string literal and comment is also reported: there
    PowerShell opens a string the grammar does not see.  :func:`decode_single_quoted` returns the
    value PowerShell gives a single-quoted literal.

:func:`command_issues`
    Every command invocation must name a cmdlet of ``cmdlets.json``, a function the same script
    defines (``function X``/``filter X``; it wins over a cmdlet of the same name, as in
    PowerShell), or an entry of ``externals`` (empty by default: no native programs).  A
    module-qualified name (``Hyper-V\\Get-VM``) must use the cmdlet's own module.  The cmdlet
    must be documented in one of ``docsets`` (default ``winserver2016-ps`` and
    ``powershell-5.1``, the floor), else it must be guarded (below).  Every named parameter
    (``-Name``; full names only, no prefixes) must exist for that cmdlet in those docsets --
    directly, as an alias, or as a common parameter of ``meta.common_parameters`` (not
    ``ProgressAction``, which only PowerShell 7.4 has); a parameter documented only in a newer
    docset must be guarded.  Parameters of a script-defined function are checked against its own
    ``param()`` block (common parameters only when it is an advanced function: ``[CmdletBinding()]``
    or a ``[Parameter()]`` attribute).  A literal argument (bare word, constant string, number) of
    a parameter that has ``accepted_values`` must be one of them, case-insensitively.
    Forbidden whatever the docsets say, because they turn values into code or put secrets in
    clear text: ``Invoke-Expression`` (and ``iex``), ``ConvertTo-SecureString -AsPlainText``,
    ``[scriptblock]::Create``.  Invoking a command whose name is computed (``& $x``) cannot be
    checked and is reported; ``& { ... }`` is fine (the block itself is checked).  Splatting
    (``@params``) and positional arguments are allowed but cannot be checked;
    :func:`command_report` lists each splatted call as a note.

:func:`ps7_only_syntax`
    PowerShell 7 syntax that Windows PowerShell 5.1 rejects or reads differently: pipeline
    chains ``&&``/``||`` (the grammar has nodes for them), and -- by a token scan of the text
    outside strings and comments -- ``??``, ``??=``, ``?.``, ``?[``, the ternary ``a ? b : c``,
    the parameters ``-AsArray`` and ``-EnumsAsStrings``, and a ``clean { }`` block.  ``::new``
    is Windows PowerShell 5.0 and fine.

The guard rule
--------------
A cmdlet documented only in docsets newer than ``docsets`` (e.g. ``New-SmbGlobalMapping``, only
in ``winserver2022-ps`` and later) may be invoked only where a *guard fact* ``exists(X)`` holds
for it; a newer-only parameter ``P`` of cmdlet ``X`` only where ``has(X, P)`` holds.

Guard expressions give facts:

* ``Get-Command -Name 'X' -ErrorAction SilentlyContinue`` (``-Name`` or the first positional
  argument a constant; ``-ErrorAction`` ``SilentlyContinue`` or ``Ignore``, because with
  ``$ErrorActionPreference = 'Stop'`` a failed lookup throws) is truthy exactly when
  ``exists(X)``; the same inside ``$null -ne (...)``, ``(...) -ne $null`` or ``[bool](...)``.
* ``(Get-Command ...'X'...).Parameters.ContainsKey('P')`` is truthy only when ``has(X, P)``.
* ``-not e`` and ``!e`` flip, ``$null -eq e``/``e -eq $null`` test ``e`` false; ``a -and b``
  true gives the facts of both being true, ``a -or b`` false those of both being false.
* A variable every assignment of which (by name, anywhere in the script) is a guard
  expression carries the facts common to all of them when it is truthy.

Facts hold in:

* the body of ``if (c)`` / ``elseif (c)``: the facts of ``c`` true (and of every earlier
  condition of the chain false); the ``else`` body: the facts of every condition false;
* the statements after ``if (c) { ... }`` with no ``elseif``/``else`` whose body always exits
  -- its last statement is ``return``, ``throw``, ``exit``, ``break``, ``continue`` or a call
  of a function of the same script whose body ends with ``throw`` (``Stop-Smbvol``) -- in the
  same statement list: the facts of ``c`` false.

A guard must be in the same function as the guarded call: a function body is not guarded by the
place it is called from.  Under ``exists(X)``, a parameter of ``X`` passes when the oldest docset
documenting ``X`` lists it; anything newer needs ``has(X, P)``.

Grammar limits seen so far (valid PowerShell the grammar reports as errors, so templates avoid
them): a ``param(...)`` block followed by a statement on the same line, and a ``param(...)``
block followed by named ``begin``/``process``/``end`` blocks on one line.

Helpers for the tests: :func:`parse`, :func:`string_literals`, :func:`value_positions` (where a
value occurs in a text), :func:`substitution_issues` (a script rendered with values is its
sentinel-valued baseline with only string-literal contents changed, each decoding to its value;
its issues have check ``value``), :func:`load_cmdlets`, :func:`load_index`.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import json
import os
import re
from typing import Any, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Tuple

import tree_sitter
import tree_sitter_powershell

#: The vendored cmdlet reference.
CMDLETS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cmdlets.json")
#: The floor every script must run on: Windows Server 2016 with Windows PowerShell 5.1.
BASELINE_DOCSETS = ("winserver2016-ps", "powershell-5.1")
#: Oldest first, per family; used to find the oldest docset documenting a cmdlet.
DOCSET_ORDER = ("powershell-5.1", "powershell-7.4", "winserver2016-ps", "winserver2019-ps",
                "winserver2022-ps", "winserver2025-ps")
#: Common parameters that Windows PowerShell 5.1 does not have.
PS7_COMMON_PARAMETERS = frozenset({"progressaction"})

#: Every character that opens or closes a single-quoted string in PowerShell.
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
#: Every character that opens or closes a double-quoted string in PowerShell.
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
#: The quote characters the grammar does not know.
TYPOGRAPHIC_QUOTES = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e"

#: Commands that are never allowed (values would become code).
FORBIDDEN_COMMANDS = {
    "invoke-expression": "Invoke-Expression runs a string as code",
    "iex": "iex (Invoke-Expression) runs a string as code",
}

_STRING_KINDS = {
    "verbatim_string_characters": "single",
    "expandable_string_literal": "double",
    "verbatim_here_string_characters": "single_here",
    "expandable_here_string_literal": "double_here",
}
_FLOW_EXIT = ("return", "throw", "exit", "break", "continue")
_SILENT = ("silentlycontinue", "ignore")


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Issue:
    """One finding: which checker, where (1-based line and column), what."""

    check: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return "%d:%d: [%s] %s" % (self.line, self.column, self.check, self.message)


@dataclasses.dataclass(frozen=True)
class StringLiteral:
    """A string-literal node: its span (str offsets), kind, source text and decoded value.

    ``value`` is what PowerShell makes of a single-quoted literal, or of a double-quoted one
    without any ``$``/backtick part; ``None`` otherwise.
    """

    start: int
    end: int
    kind: str
    source: str
    value: Optional[str]


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_powershell.language())


_CONTINUATION_MASK = bytes(1 if 0x80 <= b <= 0xBF else 0 for b in range(256))


class _Source:
    """A parsed text with byte/str offset conversions."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError("a script is a str, not %s" % type(text).__name__)
        self.text = text
        self.data = text.encode("utf-8")
        self.tree = tree_sitter.Parser(language()).parse(self.data)
        # str offset of a byte offset = the offset minus the UTF-8 continuation bytes before it
        self._continuation: Optional[List[int]] = None
        if len(self.data) != len(text):
            # _continuation[b]: how many continuation bytes precede byte offset b
            mask = self.data.translate(_CONTINUATION_MASK)
            self._continuation = list(itertools.accumulate(mask, initial=0))
        self._line_starts: Optional[List[int]] = None  # made when an issue needs a line
        self._nodes: Optional[Dict[str, List[tree_sitter.Node]]] = None
        self._merged: Dict[Tuple[str, ...], List[tree_sitter.Node]] = {}
        self._literals: Optional[List[StringLiteral]] = None

    @property
    def root(self) -> tree_sitter.Node:
        return self.tree.root_node

    def char(self, byte_offset: int) -> int:
        """The str offset of a byte offset."""
        if self._continuation is None:
            return byte_offset
        return byte_offset - self._continuation[byte_offset]

    def nodes(self, *types: str) -> List[tree_sitter.Node]:
        """Every node of the given types, in text order (found by one tree-sitter query)."""
        if self._nodes is None:
            found = _captures(_index_query(), self.root)
            self._nodes = {k: sorted(v, key=lambda n: (n.start_byte, -n.end_byte))
                           for k, v in found.items()}
        if len(types) == 1:
            return self._nodes.get(types[0], [])
        if types not in self._merged:
            out = [n for t in types for n in self._nodes.get(t, ())]
            self._merged[types] = sorted(out, key=lambda n: (n.start_byte, -n.end_byte))
        return self._merged[types]

    def span(self, node: tree_sitter.Node) -> Tuple[int, int]:
        return self.char(node.start_byte), self.char(node.end_byte)

    def node_text(self, node: tree_sitter.Node) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def line_col(self, offset: int) -> Tuple[int, int]:
        """1-based line and column of a str offset."""
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", self.text)]
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def issue(self, check: str, offset: int, message: str) -> Issue:
        line, col = self.line_col(offset)
        return Issue(check, line, col, message)

    def node_issue(self, check: str, node: tree_sitter.Node, message: str) -> Issue:
        return self.issue(check, self.char(node.start_byte), message)


@functools.lru_cache(maxsize=32)
def _source(text: str) -> _Source:
    return _Source(text)


_INDEXED_TYPES = ("verbatim_string_characters", "expandable_string_literal",
                  "verbatim_here_string_characters", "expandable_here_string_literal", "comment",
                  "command", "function_statement", "assignment_expression",
                  "pipeline_chain_tail", "invokation_expression")


@functools.lru_cache(maxsize=1)
def _index_query() -> tree_sitter.Query:
    return tree_sitter.Query(language(), " ".join("(%s) @%s" % (t, t) for t in _INDEXED_TYPES))


def _captures(query: tree_sitter.Query, node: tree_sitter.Node) -> Dict[str, list]:
    cursor = getattr(tree_sitter, "QueryCursor", None)
    if cursor is not None:  # tree-sitter >= 0.25
        return cursor(query).captures(node)
    return query.captures(node)


def parse(text: str) -> tree_sitter.Tree:
    """The tree-sitter tree of ``text``."""
    return _source(text).tree


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _excerpt(text: str, limit: int = 40) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------
# a. parse errors
# --------------------------------------------------------------------------

def parse_errors(text: str) -> List[Issue]:
    """Every ERROR or MISSING node of the grammar's tree."""
    src = _source(text)
    if not src.root.has_error:
        return []
    out = []
    for node in _walk(src.root):
        if node.is_missing:
            out.append(src.node_issue("parse", node, "missing %s" % node.type))
        elif node.is_error:
            out.append(src.node_issue("parse", node, "syntax error at %r"
                                      % _excerpt(src.node_text(node))))
    return out


# --------------------------------------------------------------------------
# b. quote re-scan
# --------------------------------------------------------------------------

def _code_spans(src: _Source, node: tree_sitter.Node) -> Dict[int, int]:
    """start → end (str offsets) of the code parts of an expandable string node."""
    return {src.char(c.start_byte): src.char(c.end_byte) for c in node.named_children}


def _powershell_string_end(text: str, start: int, kind: str,
                           code: Mapping[int, int]) -> Tuple[Optional[int], str]:
    """Where PowerShell ends the string opened at ``start``: (end offset or None, problem)."""
    n = len(text)
    double = kind.startswith("double")
    quotes = DOUBLE_QUOTES if double else SINGLE_QUOTES
    if kind == "single":
        end = _SINGLE_BODY.match(text, start).end()
        return (end + 1, "") if end < n else (None, "not terminated")
    if kind == "double":
        i = start + 1
        while i < n:
            if i in code:
                i = max(code[i], i + 1)
                continue
            c = text[i]
            if double and c == "`":
                i += 2
                continue
            if c in quotes:
                if i + 1 < n and text[i + 1] in quotes:
                    i += 2
                    continue
                return i + 1, ""
            i += 1
        return None, "not terminated"
    # Here-strings: @' or @" then only blanks to the end of the line.
    i = start + 2
    while i < n and text[i] in " \t":
        i += 1
    if i >= n or text[i] not in "\r\n":
        return None, "a here-string header must end the line"
    i += 2 if text.startswith("\r\n", i) else 1
    at_line_start = True
    while i < n:
        if at_line_start and text[i] in quotes and i + 1 < n and text[i + 1] == "@":
            return i + 2, ""
        at_line_start = False
        if double and i in code:
            i = max(code[i], i + 1)
            continue
        c = text[i]
        if double and c == "`":
            i += 2
            continue
        if c == "\r":
            i += 2 if text.startswith("\r\n", i) else 1
            at_line_start = True
            continue
        if c == "\n":
            at_line_start = True
        i += 1
    return None, "not terminated"


#: An opening single quote, then characters and doubled quotes: stops at the closing quote.
_SINGLE_BODY = re.compile("[{q}](?:[^{q}]+|[{q}][{q}])*".format(q=SINGLE_QUOTES))
_SINGLE_PAIR = re.compile("[{q}]([{q}])".format(q=SINGLE_QUOTES))
_ANY_SINGLE_QUOTE = re.compile("[{q}]".format(q=SINGLE_QUOTES))


def _comment_and_string_spans(src: _Source) -> List[Tuple[int, int]]:
    """Spans of text that is not code: comments, and strings minus their code parts."""
    spans = []
    for node in src.nodes("comment", *_STRING_KINDS):
        if node.type == "comment":
            spans.append(src.span(node))
        else:
            start, end = src.span(node)
            pos = start
            for child in node.named_children:
                cs, ce = src.span(child)
                spans.append((pos, cs))
                pos = ce
            spans.append((pos, end))
    return sorted(s for s in spans if s[1] > s[0])


def quote_issues(text: str) -> List[Issue]:
    """Every string literal that PowerShell would end elsewhere than the grammar does."""
    src = _source(text)
    out = []
    for node in src.nodes(*_STRING_KINDS):
        kind = _STRING_KINDS[node.type]
        start, end = src.span(node)
        code = _code_spans(src, node) if kind.startswith("double") else {}
        ps_end, problem = _powershell_string_end(text, start, kind, code)
        if ps_end == end:
            continue
        what = "%s-quoted %sstring %r" % (
            "single" if kind.startswith("single") else "double",
            "here-" if kind.endswith("here") else "", _excerpt(src.node_text(node)))
        if ps_end is None:
            out.append(src.issue("quote", start, "%s: PowerShell finds it %s" % (what, problem)))
        elif ps_end < end:
            line, col = src.line_col(ps_end - 1)
            out.append(src.issue(
                "quote", start, "%s: PowerShell ends it at %d:%d (%r), before the grammar does; "
                "the rest would run as code" % (what, line, col, text[ps_end - 1])))
        else:
            out.append(src.issue(
                "quote", start, "%s: PowerShell continues it past the grammar's end; the code "
                "after it would be read as text" % what))
    not_code = _comment_and_string_spans(src)
    starts = [s for s, _ in not_code]
    for m in re.finditer("[%s]" % TYPOGRAPHIC_QUOTES, text):
        k = bisect.bisect_right(starts, m.start()) - 1
        if k >= 0 and not_code[k][0] <= m.start() < not_code[k][1]:
            continue
        out.append(src.issue("quote", m.start(), "quote character U+%04X outside any string "
                             "literal: PowerShell opens or closes a string here, the grammar "
                             "does not" % ord(m.group())))
    return out


def _second_quote(match: "re.Match[str]") -> str:
    return match.group(1)


def decode_single_quoted(node_text: str) -> str:
    """The value PowerShell gives the single-quoted literal ``node_text``.

    A quote character (any of ``'`` U+2018 U+2019 U+201A U+201B) followed by another one is
    one literal quote (the second); any other quote character ends the string.  Raises
    ValueError when PowerShell would end the literal before the end of ``node_text``.
    """
    if not node_text or node_text[0] not in SINGLE_QUOTES:
        raise ValueError("not a single-quoted literal: %r" % _excerpt(node_text))
    body_end = _SINGLE_BODY.match(node_text).end()
    if body_end == len(node_text) - 1:  # the common case, at regex speed
        body = node_text[1:body_end]
        if not _ANY_SINGLE_QUOTE.search(body):
            return body
        return _SINGLE_PAIR.sub(_second_quote, body)
    out = []
    i, n = 1, len(node_text)
    while i < n:
        c = node_text[i]
        if c in SINGLE_QUOTES:
            if i + 1 < n and node_text[i + 1] in SINGLE_QUOTES:
                out.append(node_text[i + 1])
                i += 2
                continue
            if i != n - 1:
                raise ValueError("PowerShell ends this literal at offset %d of %d" % (i, n))
            return "".join(out)
        out.append(c)
        i += 1
    raise ValueError("single-quoted literal not terminated")


def _decode_constant_double(node_text: str) -> Optional[str]:
    """A double-quoted literal without ``$`` or backtick, decoded; else None."""
    body = node_text[1:-1]
    if "$" in body or "`" in body:
        return None
    out = []
    i = 0
    while i < len(body):
        if body[i] in DOUBLE_QUOTES and i + 1 < len(body) and body[i + 1] in DOUBLE_QUOTES:
            out.append(body[i + 1])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


def _string_value(src: _Source, node: tree_sitter.Node) -> Optional[str]:
    """The constant value of a string_literal (or string kind) node, or None."""
    if node.type == "string_literal" and node.named_child_count == 1:
        node = node.named_children[0]
    kind = _STRING_KINDS.get(node.type)
    raw = src.node_text(node)
    try:
        if kind == "single":
            return decode_single_quoted(raw)
        if kind == "double" and node.named_child_count == 0:
            return _decode_constant_double(raw)
    except ValueError:
        return None
    return None


def string_literals(text: str) -> List[StringLiteral]:
    """Every string-literal node of ``text``, in order."""
    src = _source(text)
    if src._literals is None:
        out = []
        for node in src.nodes(*_STRING_KINDS):
            start, end = src.span(node)
            out.append(StringLiteral(start, end, _STRING_KINDS[node.type], text[start:end],
                                     _string_value(src, node)))
        src._literals = out
    return list(src._literals)


def value_positions(text: str, value: str) -> List[Tuple[int, int]]:
    """Every (start, end) str span where ``value`` occurs in ``text``, overlaps included.

    An empty value occurs nowhere.
    """
    if not value:
        return []
    out = []
    pos = text.find(value)
    while pos >= 0:
        out.append((pos, pos + len(value)))
        pos = text.find(value, pos + 1)
    return out


def _mask_literals(text: str, literals: Sequence[StringLiteral]) -> str:
    """``text`` with every outermost string literal replaced by ``''``."""
    out = []
    pos = 0
    for lit in literals:
        if lit.start < pos:
            continue  # inside a literal already masked (a string in "$(...)")
        out.append(text[pos:lit.start])
        out.append("''")
        pos = lit.end
    out.append(text[pos:])
    return "".join(out)


def substitution_issues(text: str, baseline: str,
                        substitutions: Mapping[str, str]) -> List[Issue]:
    """Whether ``text`` is ``baseline`` with values put in place of sentinels, as data only.

    ``baseline`` is the same script rendered with a unique sentinel string in place of every
    value (``substitutions``: sentinel → value).  ``text`` passes when, outside its string
    literals, it is character for character ``baseline``, it has the same string literals of
    the same kinds, and each literal's decoded value (PowerShell's rule) is the baseline
    literal's decoded value with the sentinels replaced by their values.  So every value is
    inside string literals and nowhere else, and changes nothing but their contents.
    """
    src = _source(text)
    got = string_literals(text)
    want = string_literals(baseline)
    if len(got) != len(want):
        return [src.issue("value", 0, "%d string literals, the baseline has %d"
                          % (len(got), len(want)))]
    out = []
    masked, masked_baseline = _mask_literals(text, got), _mask_literals(baseline, want)
    if masked != masked_baseline:
        at = next((i for i, (a, b) in enumerate(zip(masked, masked_baseline)) if a != b),
                  min(len(masked), len(masked_baseline)))
        out.append(src.issue("value", 0, "outside its string literals the text differs from "
                             "the baseline (masked offset %d: %r vs %r)"
                             % (at, _excerpt(masked[at:at + 30]),
                                _excerpt(masked_baseline[at:at + 30]))))
    keys = sorted(substitutions, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(k) for k in keys)) if keys else None
    for lit, base in zip(got, want):
        if lit.kind != base.kind:
            out.append(src.issue("value", lit.start, "a %s literal where the baseline has a %s "
                                 "one" % (lit.kind, base.kind)))
            continue
        if base.value is None or pattern is None:
            if lit.source != base.source:
                out.append(src.issue("value", lit.start, "literal %r differs from the baseline's"
                                     " %r" % (_excerpt(lit.source), _excerpt(base.source))))
            continue
        expected = pattern.sub(lambda m: substitutions[m.group()], base.value)
        if lit.value != expected:
            out.append(src.issue("value", lit.start, "literal %r decodes to %r, expected %r"
                                 % (_excerpt(lit.source), None if lit.value is None
                                    else _excerpt(lit.value), _excerpt(expected))))
    return out


# --------------------------------------------------------------------------
# c. commands and parameters
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CmdletInfo:
    """One cmdlet of the reference, indexed by lower-case names."""

    name: str
    module: str
    docsets: Tuple[str, ...]
    #: lower-case parameter → canonical name
    parameters: Mapping[str, str]
    #: docset → lower-case canonical parameter names it documents
    by_docset: Mapping[str, FrozenSet[str]]
    #: lower-case alias → lower-case canonical parameter
    aliases: Mapping[str, str]
    #: lower-case canonical parameter → accepted values (lower-case)
    accepted: Mapping[str, FrozenSet[str]]
    #: lower-case canonical parameter → declared type (lower-case)
    types: Mapping[str, str]

    def oldest_docset(self) -> str:
        return min(self.docsets, key=lambda d: DOCSET_ORDER.index(d)
                   if d in DOCSET_ORDER else len(DOCSET_ORDER))

    def canonical(self, parameter: str) -> Optional[str]:
        p = parameter.lower()
        if p in self.parameters:
            return p
        return self.aliases.get(p)

    def documented_in(self, canonical: str, docsets: Sequence[str]) -> bool:
        return any(canonical in self.by_docset.get(d, ()) for d in docsets)


@dataclasses.dataclass(frozen=True)
class CmdletIndex:
    """cmdlets.json indexed for lookups."""

    cmdlets: Mapping[str, CmdletInfo]
    common: FrozenSet[str]
    source: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> "CmdletIndex":
        cmdlets = {}
        for name, entry in doc["cmdlets"].items():
            params: Dict[str, str] = {}
            by_docset = {}
            for ds, names in entry.get("parameters_by_docset", {}).items():
                by_docset[ds] = frozenset(n.lower() for n in names)
                for n in names:
                    params.setdefault(n.lower(), n)
            types: Dict[str, str] = {}
            for pset in entry.get("parameter_sets", {}).values():
                for p in pset:
                    params.setdefault(p["name"].lower(), p["name"])
                    types.setdefault(p["name"].lower(), str(p.get("type", "")).lower())
            aliases = {a.lower(): canonical.lower()
                       for canonical, names in entry.get("aliases", {}).items() for a in names}
            accepted = {k.lower(): frozenset(v.lower() for v in values)
                        for k, values in entry.get("accepted_values", {}).items()}
            cmdlets[name.lower()] = CmdletInfo(
                name=name, module=entry["module"], docsets=tuple(entry["docsets"]),
                parameters=params, by_docset=by_docset, aliases=aliases, accepted=accepted,
                types=types)
        meta = doc.get("meta", {})
        common = frozenset(p.lower() for p in meta.get("common_parameters", ()))
        return cls(cmdlets=cmdlets, common=common - PS7_COMMON_PARAMETERS,
                   source=str(meta.get("source", "")))


@functools.lru_cache(maxsize=4)
def load_index(path: str = CMDLETS_JSON) -> CmdletIndex:
    return CmdletIndex.from_document(load_cmdlets(path))


def load_cmdlets(path: str = CMDLETS_JSON) -> Dict[str, Any]:
    """The cmdlet reference document (``{"meta": ..., "cmdlets": ...}``)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _as_index(cmdlets: Any) -> CmdletIndex:
    if isinstance(cmdlets, CmdletIndex):
        return cmdlets
    if cmdlets is None:
        return load_index()
    return CmdletIndex.from_document(cmdlets)


@dataclasses.dataclass(frozen=True)
class _Function:
    name: str
    parameters: FrozenSet[str]
    advanced: bool
    ends_with_throw: bool


def _script_functions(src: _Source) -> Dict[str, List[_Function]]:
    out: Dict[str, List[_Function]] = {}
    for node in src.nodes("function_statement"):
        name_node = next((c for c in node.named_children if c.type == "function_name"), None)
        if name_node is None:
            continue
        params = set()
        advanced = False
        body = None
        for child in node.named_children:
            if child.type == "function_parameter_declaration":
                params |= _declared_parameters(src, child)
            elif child.type == "script_block":
                body = child
                for block in child.named_children:
                    if block.type == "param_block":
                        params |= _declared_parameters(src, block)
                        advanced = advanced or _is_advanced(src, block)
        fn = _Function(src.node_text(name_node), frozenset(params), advanced,
                       body is not None and _ends_with_throw(body))
        out.setdefault(fn.name.lower(), []).append(fn)
    return out


def _declared_parameters(src: _Source, node: tree_sitter.Node) -> set:
    params = set()
    for plist in node.named_children:
        if plist.type != "parameter_list":
            continue
        for sp in plist.named_children:
            if sp.type != "script_parameter":
                continue
            var = next((c for c in sp.named_children if c.type == "variable"), None)
            if var is not None:
                params.add(src.node_text(var).lstrip("$").strip("{}").lower())
    return params


def _is_advanced(src: _Source, param_block: tree_sitter.Node) -> bool:
    for node in _walk(param_block):
        if node.type == "attribute_name":
            if src.node_text(node).strip().lower() in ("cmdletbinding", "parameter"):
                return True
    return False


def _ends_with_throw(block: tree_sitter.Node) -> bool:
    statements = _last_statements(block)
    return bool(statements) and statements[-1].type == "flow_control_statement" and \
        statements[-1].children[0].type == "throw"


def _last_statements(block: tree_sitter.Node) -> List[tree_sitter.Node]:
    """The statements of a statement_block or script_block (none for named blocks)."""
    node = block
    if node.type == "script_block":
        node = next((c for c in node.named_children if c.type == "script_block_body"), None)
        if node is None:
            return []
    statements = next((c for c in node.named_children if c.type == "statement_list"), None)
    if statements is None:
        return []
    return [c for c in statements.named_children if c.type != "comment"]


def _strip(node: tree_sitter.Node) -> tree_sitter.Node:
    """Descend through wrappers that only hold one expression."""
    while True:
        named = [c for c in node.named_children if c.type != "comment"]
        if node.type == "parenthesized_expression" and len(named) == 1:
            node = named[0]
        elif node.type in ("pipeline", "pipeline_chain") and len(named) == 1 \
                and node.child_count == 1:
            node = named[0]
        elif node.type in ("logical_expression", "bitwise_expression", "comparison_expression",
                           "additive_expression", "multiplicative_expression",
                           "format_expression", "range_expression", "array_literal_expression",
                           "unary_expression", "expression_with_unary_operator") \
                and node.child_count == 1:
            node = named[0]
        else:
            return node


def _is_null(src: _Source, node: tree_sitter.Node) -> bool:
    node = _strip(node)
    return node.type == "variable" and src.node_text(node).lower() == "$null"


Fact = Tuple[str, Optional[str]]


class _Guards:
    """Guard facts of one script (see the module docstring)."""

    def __init__(self, src: _Source, functions: Mapping[str, List[_Function]]) -> None:
        self.src = src
        self.functions = functions
        self.variables = self._guard_variables()

    # -- facts of expressions ------------------------------------------------
    def facts(self, node: tree_sitter.Node, want: bool, depth: int = 0) -> FrozenSet[Fact]:
        """Facts that hold when the expression ``node`` is truthy (``want``) or falsy."""
        if depth > 50:
            return frozenset()
        node = _strip(node)
        t = node.type
        kids = [c for c in node.children if c.type != "comment"]
        if t == "expression_with_unary_operator" and len(kids) == 2:
            if kids[0].type in ("-not", "!"):
                return self.facts(kids[1], not want, depth + 1)
            return frozenset()
        if t == "cast_expression" and len(kids) == 2 and \
                self.src.node_text(kids[0]).replace(" ", "").lower() == "[bool]":
            return self.facts(kids[1], want, depth + 1)
        if t == "logical_expression" and len(kids) == 3:
            op = kids[1].type
            if op == "-and" and want:
                return self.facts(kids[0], True, depth + 1) | self.facts(kids[2], True, depth + 1)
            if op == "-or" and not want:
                return self.facts(kids[0], False, depth + 1) | \
                    self.facts(kids[2], False, depth + 1)
            return frozenset()
        if t == "comparison_expression" and len(kids) == 3:
            op = self.src.node_text(kids[1]).strip().lower()
            if op in ("-eq", "-ne", "-ieq", "-ine"):
                if _is_null(self.src, kids[0]):
                    other = kids[2]
                elif _is_null(self.src, kids[2]):
                    other = kids[0]
                else:
                    return frozenset()
                other = _strip(other)
                if other.type != "command" and not (
                        other.type == "variable" and self._var(other) in self.variables):
                    return frozenset()  # only "is there a command" tests compare with $null
                return self.facts(other, want == op.endswith("ne"), depth + 1)
            return frozenset()
        if not want:
            return frozenset()
        if t == "variable":
            return self.variables.get(self._var(node), frozenset())
        if t == "command":
            name = self._get_command_name(node, need_silent=True)
            return frozenset({(name, None)}) if name else frozenset()
        if t == "invokation_expression":
            return self._contains_key(node)
        return frozenset()

    def _var(self, node: tree_sitter.Node) -> str:
        return self.src.node_text(node).lower().lstrip("$").strip("{}")

    def _get_command_name(self, command: tree_sitter.Node, need_silent: bool) -> Optional[str]:
        """The constant name a ``Get-Command`` invocation looks up, else None."""
        name, elements = _command_parts(self.src, command)
        if name is None or name.lower().rsplit("\\", 1)[-1] != "get-command":
            return None
        args = _arguments(self.src, elements)
        target = None
        silent = False
        for pname, values in args:
            if pname == "name" and values:
                target = values[0]
            elif pname is None and target is None and values:
                target = values[0]
            elif pname == "erroraction" and values:
                silent = values[0].lower() in _SILENT
        if target is None or (need_silent and not silent):
            return None
        return target.rsplit("\\", 1)[-1].lower()

    def _contains_key(self, node: tree_sitter.Node) -> FrozenSet[Fact]:
        # (Get-Command ...).Parameters.ContainsKey('P')
        kids = [c for c in node.named_children]
        if len(kids) != 3 or kids[0].type != "member_access" or kids[2].type != "argument_list":
            return frozenset()
        if self.src.node_text(kids[1]).lower() != "containskey":
            return frozenset()
        access = [c for c in kids[0].named_children]
        if len(access) != 2 or self.src.node_text(access[1]).lower() != "parameters":
            return frozenset()
        target = _strip(access[0])
        if target.type != "command":
            return frozenset()
        name = self._get_command_name(target, need_silent=False)
        literals = [n for n in _walk(kids[2]) if n.type == "string_literal"]
        if name is None or len(literals) != 1:
            return frozenset()
        param = _string_value(self.src, literals[0])
        if param is None:
            return frozenset()
        facts = {(name, param.lower())}
        if self._get_command_name(target, need_silent=True):
            facts.add((name, None))
        return frozenset(facts)

    def _guard_variables(self) -> Dict[str, FrozenSet[Fact]]:
        assigned: Dict[str, List[Optional[FrozenSet[Fact]]]] = {}
        self.variables = {}
        for node in self.src.nodes("assignment_expression"):
            kids = node.named_children
            if len(kids) < 3:
                continue
            left = _strip(kids[0].named_children[0]) if kids[0].named_children else kids[0]
            if left.type != "variable":
                continue
            op = self.src.node_text(kids[1]).strip()
            facts = self.facts(kids[2], True) if op == "=" else frozenset()
            assigned.setdefault(self._var(left), []).append(facts or None)
        out = {}
        for var, all_facts in assigned.items():
            if all(f is not None for f in all_facts):
                out[var] = frozenset.intersection(*all_facts)
        return out

    # -- where facts hold ----------------------------------------------------
    def holding_at(self, node: tree_sitter.Node) -> FrozenSet[Fact]:
        facts: set = set()
        child, parent = node, node.parent
        while parent is not None:
            if parent.type in ("function_statement", "class_method_definition"):
                break
            if parent.type == "statement_block":
                facts |= self._block_facts(parent)
            elif parent.type == "statement_list":
                for sib in parent.named_children:
                    if sib.start_byte >= child.start_byte:
                        break
                    facts |= self._early_exit_facts(sib)
            child, parent = parent, parent.parent
        return frozenset(facts)

    def _block_facts(self, block: tree_sitter.Node) -> FrozenSet[Fact]:
        owner = block.parent
        if owner is None:
            return frozenset()
        if owner.type == "if_statement":
            return self.facts(owner.child_by_field_name("condition"), True)
        if owner.type == "elseif_clause":
            if_stmt = owner.parent.parent
            facts = set(self.facts(if_stmt.child_by_field_name("condition"), False))
            for clause in owner.parent.named_children:
                if clause.start_byte >= owner.start_byte:
                    break
                facts |= self.facts(clause.child_by_field_name("condition"), False)
            return frozenset(facts | self.facts(owner.child_by_field_name("condition"), True))
        if owner.type == "else_clause":
            if_stmt = owner.parent
            facts = set(self.facts(if_stmt.child_by_field_name("condition"), False))
            for clauses in if_stmt.named_children:
                if clauses.type == "elseif_clauses":
                    for clause in clauses.named_children:
                        facts |= self.facts(clause.child_by_field_name("condition"), False)
            return frozenset(facts)
        return frozenset()

    def _early_exit_facts(self, statement: tree_sitter.Node) -> FrozenSet[Fact]:
        if statement.type != "if_statement":
            return frozenset()
        if any(c.type in ("elseif_clauses", "else_clause") for c in statement.named_children):
            return frozenset()
        body = next((c for c in statement.named_children if c.type == "statement_block"), None)
        if body is None or not self._always_exits(body):
            return frozenset()
        return self.facts(statement.child_by_field_name("condition"), False)

    def _always_exits(self, block: tree_sitter.Node) -> bool:
        statements = _last_statements(block)
        if not statements:
            return False
        last = statements[-1]
        if last.type == "flow_control_statement":
            return last.children[0].type in _FLOW_EXIT
        command = _strip(last)
        if command.type == "command":
            name, _ = _command_parts(self.src, command)
            fns = self.functions.get((name or "").lower(), [])
            return bool(fns) and all(f.ends_with_throw for f in fns)
        return False


def _command_parts(src: _Source, command: tree_sitter.Node
                   ) -> Tuple[Optional[str], Optional[tree_sitter.Node]]:
    """(constant command name or None, command_elements node or None)."""
    name = None
    elements = None
    for child in command.named_children:
        if child.type == "command_name":
            name = src.node_text(child)
        elif child.type == "command_name_expr":
            inner = child.named_children[0] if child.named_children else None
            if inner is not None and inner.type == "command_name":
                name = src.node_text(inner)
            elif inner is not None and inner.type == "string_literal":
                name = _string_value(src, inner)
        elif child.type == "command_elements":
            elements = child
    return name, elements


def _literal_values(src: _Source, node: tree_sitter.Node) -> Optional[List[str]]:
    """The constant values of an argument node, or None when it is computed."""
    t = node.type
    if t == "generic_token":
        return [v.strip() for v in src.node_text(node).split(",") if v.strip()]
    if t == "string_literal":
        v = _string_value(src, node)
        return None if v is None else [v]
    if t in ("integer_literal", "decimal_integer_literal"):
        return [src.node_text(node)]
    if t in ("array_literal_expression", "unary_expression"):
        out: List[str] = []
        for child in node.named_children:
            vals = _literal_values(src, child)
            if vals is None:
                return None
            out.extend(vals)
        return out
    return None


def _arguments(src: _Source, elements: Optional[tree_sitter.Node]
               ) -> List[Tuple[Optional[str], List[str]]]:
    """(lower-case parameter name or None for positional, constant values) of a command."""
    out: List[Tuple[Optional[str], List[str]]] = []
    for pname, _node, values in _argument_nodes(src, elements):
        pname = pname.lower() if pname else None
        vals: List[str] = []
        for v in values:
            lit = _literal_values(src, v)
            if lit is not None:
                vals.extend(lit)
        out.append((pname, vals))
    return out


def _argument_nodes(src: _Source, elements: Optional[tree_sitter.Node]):
    """(parameter name as written or None, parameter node, [argument nodes]) of a command.

    Every argument after a parameter is attributed to it; a switch parameter followed by a
    positional argument therefore carries it too (only accepted-values checks read it).
    """
    if elements is None:
        return []
    out = []
    current: Optional[list] = None
    glued = False
    for child in elements.named_children:
        if child.type == "command_argument_sep":
            sep = src.node_text(child)
            glued = sep.strip() == ":" or sep == ""
            if sep.strip() not in ("", ":"):
                current = None
            continue
        if child.type == "command_parameter":
            current = [src.node_text(child).lstrip("-").rstrip(":"), child, []]
            out.append(current)
            glued = False
            continue
        if child.type in ("comment", "redirection", "redirections"):
            continue
        if current is not None and (not current[2] or glued):
            current[2].append(child)
        else:
            current = None
            out.append([None, child, [child]])
    return [tuple(x) for x in out]


def command_report(text: str, cmdlets: Any = None,
                   docsets: Sequence[str] = BASELINE_DOCSETS,
                   externals: Sequence[str] = ()) -> Tuple[List[Issue], List[Issue]]:
    """(issues, notes) of :func:`command_issues`; notes list unchecked splatted calls."""
    index = _as_index(cmdlets)
    src = _source(text)
    functions = _script_functions(src)
    guards = _Guards(src, functions)
    externals_lower = {e.lower() for e in externals}
    issues: List[Issue] = []
    notes: List[Issue] = []

    for node in src.nodes("invokation_expression"):
        _check_scriptblock_create(src, node, issues)
    for node in src.nodes("command"):
        name, elements = _command_parts(src, node)
        if name is None:
            kind = next((c for c in node.named_children if c.type == "command_name_expr"), None)
            inner = kind.named_children[0] if kind is not None and kind.named_children else None
            if inner is None or inner.type != "script_block_expression":
                issues.append(src.node_issue("command", node, "command name is computed (%r): "
                                             "it cannot be checked"
                                             % _excerpt(src.node_text(node))))
            continue
        args = _argument_nodes(src, elements)
        for _pname, _pnode, values in args:
            for v in values:
                inner = _strip(v)
                if inner.type == "variable" and src.node_text(inner).startswith("@"):
                    notes.append(src.node_issue("command", v, "%s is splatted (%s): its "
                                                "parameters cannot be checked"
                                                % (name, src.node_text(inner))))
        module, _, base = name.rpartition("\\")
        lower = base.lower()
        if lower in FORBIDDEN_COMMANDS:
            issues.append(src.node_issue("command", node, "forbidden: %s"
                                         % FORBIDDEN_COMMANDS[lower]))
            continue
        if not module and lower in functions:
            _check_function_call(src, functions[lower], name, args, index.common, issues)
            continue
        info = index.cmdlets.get(lower)
        if info is None:
            if not module and name.lower() in externals_lower:
                continue
            issues.append(src.node_issue("command", node, "unknown command %r: not a cmdlet of "
                                         "cmdlets.json nor a function of this script" % name))
            continue
        if module and module.lower() != info.module.lower():
            issues.append(src.node_issue("command", node, "%s is in module %s, not %s"
                                         % (info.name, info.module, module)))
        facts = None
        cmd_guarded = False
        if not set(info.docsets) & set(docsets):
            facts = guards.holding_at(node)
            cmd_guarded = (lower, None) in facts
            if not cmd_guarded:
                issues.append(src.node_issue(
                    "command", node, "%s is only documented in %s, not in %s: guard it with "
                    "Get-Command (see tests/pscheck.py)" % (info.name, ", ".join(info.docsets),
                                                           ", ".join(docsets))))
                continue
        for written, pnode, values in args:
            if written is None:
                continue
            pname = written.lower()
            canonical = info.canonical(pname)
            if canonical is None:
                if pname in index.common:
                    continue
                issues.append(src.node_issue("command", pnode, "%s has no parameter -%s"
                                             % (info.name, written)))
                continue
            ok_docsets = [info.oldest_docset()] if cmd_guarded else list(docsets)
            if not info.documented_in(canonical, ok_docsets):
                if facts is None:
                    facts = guards.holding_at(node)
                if (lower, canonical) not in facts and (lower, pname) not in facts:
                    newer = sorted(d for d, ps in info.by_docset.items() if canonical in ps)
                    issues.append(src.node_issue(
                        "command", pnode, "%s -%s is only documented in %s, not in %s: guard "
                        "it with (Get-Command ...).Parameters.ContainsKey('%s')"
                        % (info.name, info.parameters[canonical], ", ".join(newer) or "no docset",
                           ", ".join(ok_docsets), info.parameters[canonical])))
                    continue
            if lower == "convertto-securestring" and canonical == "asplaintext":
                issues.append(src.node_issue("command", pnode, "forbidden: ConvertTo-SecureString "
                                             "-AsPlainText puts a secret in clear text"))
            accepted = info.accepted.get(canonical)
            if accepted and info.types.get(canonical) != "switch":
                for v in values:
                    for lit in _literal_values(src, v) or ():
                        if lit.lower() not in accepted:
                            issues.append(src.node_issue(
                                "command", v, "%s -%s %r is not one of %s"
                                % (info.name, info.parameters[canonical], lit,
                                   ", ".join(sorted(accepted)))))
    return issues, notes


def _check_function_call(src: _Source, fns: List[_Function], name: str, args: list,
                         common: FrozenSet[str], issues: List[Issue]) -> None:
    for written, pnode, _values in args:
        if written is None:
            continue
        pname = written.lower()
        if any(pname in f.parameters or (f.advanced and pname in common) for f in fns):
            continue
        issues.append(src.node_issue("command", pnode, "function %s (defined in this script) "
                                     "has no parameter -%s" % (name, written)))


def _check_scriptblock_create(src: _Source, node: tree_sitter.Node, issues: List[Issue]) -> None:
    kids = node.children
    if len(kids) >= 3 and kids[0].type == "type_literal" and kids[1].type == "::":
        type_name = src.node_text(kids[0]).strip("[] ").lower()
        member = src.node_text(kids[2]).lower()
        if type_name in ("scriptblock", "system.management.automation.scriptblock") \
                and member == "create":
            issues.append(src.node_issue("command", node, "forbidden: [scriptblock]::Create "
                                         "turns a string into code"))


def command_issues(text: str, cmdlets: Any = None,
                   docsets: Sequence[str] = BASELINE_DOCSETS,
                   externals: Sequence[str] = ()) -> List[Issue]:
    """Every command, parameter or literal argument that is not valid on ``docsets``.

    ``cmdlets``: the cmdlets.json document, a :class:`CmdletIndex`, or None (the vendored one).
    """
    return command_report(text, cmdlets, docsets, externals)[0]


# --------------------------------------------------------------------------
# d. PowerShell 7-only syntax
# --------------------------------------------------------------------------

_PS7_TOKENS = (
    (re.compile(r"\?\?="), "null-coalescing assignment ??="),
    (re.compile(r"\?\?(?!=)"), "null-coalescing operator ??"),
    (re.compile(r"(?<=[\w}\)\]])\?\."), "null-conditional member access ?."),
    (re.compile(r"(?<=[\w}\)\]])\?\["), "null-conditional index ?["),
    (re.compile(r"&&"), "pipeline chain operator &&"),
    (re.compile(r"\|\|"), "pipeline chain operator ||"),
    (re.compile(r"(?i)(?<![\w-])-AsArray\b"), "-AsArray (ConvertTo-Json, PowerShell 7)"),
    (re.compile(r"(?i)(?<![\w-])-EnumsAsStrings\b"),
     "-EnumsAsStrings (ConvertTo-Json, PowerShell 7)"),
    (re.compile(r"(?i)(?:^|(?<=[\s;{}]))clean\s*\{"), "clean { } block"),
)
_TERNARY = re.compile(r"(?<=\s)\?(?=\s)")


def _code_only(src: _Source) -> str:
    """The text with comments and string contents blanked (newlines kept)."""
    chars = list(src.text)
    for start, end in _comment_and_string_spans(src):
        for i in range(start, end):
            if chars[i] not in "\r\n":
                chars[i] = " "
    return "".join(chars)


def ps7_only_syntax(text: str) -> List[Issue]:
    """Every PowerShell 7-only construct of ``text``."""
    src = _source(text)
    out = []
    seen = set()
    for node in src.nodes("pipeline_chain_tail"):
        start = src.char(node.start_byte)
        seen.add(start)
        out.append(src.issue("ps7", start, "pipeline chain operator %s"
                             % src.node_text(node).strip()))
    code = _code_only(src)
    for pattern, what in _PS7_TOKENS:
        for m in pattern.finditer(code):
            if m.start() not in seen:
                out.append(src.issue("ps7", m.start(), what))
    for m in _TERNARY.finditer(code):
        before = code[:m.start()].rstrip()
        if before and before[-1] not in "|;{(":
            out.append(src.issue("ps7", m.start(), "ternary operator ? :"))
    return sorted(out, key=lambda i: (i.line, i.column))


# --------------------------------------------------------------------------
# All of them
# --------------------------------------------------------------------------

def all_issues(text: str, cmdlets: Any = None,
               docsets: Sequence[str] = BASELINE_DOCSETS) -> List[Issue]:
    """Every issue of every checker."""
    return (parse_errors(text) + quote_issues(text) + command_issues(text, cmdlets, docsets)
            + ps7_only_syntax(text))
