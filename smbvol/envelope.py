"""Reading what a host printed: the one result document between the markers.

Every template prints exactly one line ``@@SMBVOL-BEGIN@@{json}@@SMBVOL-END@@``
where the JSON is ``{"ok": true, "result": {...}, "warnings": [...]}`` or
``{"ok": false, "error": {"kind", "message", "category", "fq_error_id",
"hresult", "native_code", "data"}, "warnings": [...]}``.  :func:`parse` finds it
whatever surrounds it (warnings, a BOM, CRLF, CLIXML progress records), and
turns ``ok: false`` into the exception of :mod:`smbvol.exceptions` for its kind.

Every scan is linear in the size of the output (``str.find`` from left to right,
never a backtracking pattern), so no output — unterminated markers, half a
CLIXML block, megabytes of noise — can make parsing slow; error excerpts are
bounded (:data:`EXCERPT_CHARS`) and masked with every known secret.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

from smbvol import exceptions
from smbvol.secret import mask

LOG = logging.getLogger(__name__)

BEGIN = "@@SMBVOL-BEGIN@@"
END = "@@SMBVOL-END@@"
EXCERPT_CHARS = 600

# CLIXML as powershell.exe writes it on stderr (and sometimes stdout) of a remote shell.
_CLIXML_HEADER_RE = re.compile(r"#< CLIXML\r?\n?")
_OBJS_OPEN = "<Objs"
_OBJS_CLOSE = "</Objs>"
_CLIXML_STRINGS = ('<S S="Error">', '<S S="Warning">')
_ERROR_FIELDS = ("kind", "message", "category", "fq_error_id", "hresult", "native_code")


@dataclasses.dataclass(frozen=True)
class ScriptResult:
    """The ``result`` of a successful envelope, with the script's warnings."""

    operation: str
    host: str
    result: Dict[str, Any]
    warnings: Tuple[str, ...] = ()


def excerpt(text: str, secrets: Optional[Iterable[str]] = None,
            limit: int = EXCERPT_CHARS) -> str:
    """A bounded excerpt of ``text`` with every secret masked (masked before cutting)."""
    text = mask(text or "", secrets)
    if len(text) > limit:
        half = limit // 2
        text = text[:half] + " [... %d characters ...] " % (len(text) - limit) + text[-half:]
    return text


def find_envelopes(text: str) -> List[str]:
    """The bodies between ``BEGIN`` and ``END`` markers, left to right, in linear time.

    A body starts after the last ``BEGIN`` before its ``END`` (so stray markers before
    a document do not swallow it); an unterminated ``BEGIN`` ends the scan.
    """
    bodies: List[str] = []
    pos = 0
    while True:
        begin = text.find(BEGIN, pos)
        if begin < 0:
            return bodies
        end = text.find(END, begin + len(BEGIN))
        if end < 0:
            return bodies
        begin = text.rfind(BEGIN, begin, end)
        bodies.append(text[begin + len(BEGIN):end])
        pos = end + len(END)


def _tagged_strings(text: str) -> List[str]:
    """The raw contents of ``<S S="Error">…</S>`` / ``<S S="Warning">…</S>``, linear."""
    out: List[str] = []
    pos = 0
    while True:
        hits = [(i, tag) for i, tag in ((text.find(t, pos), t) for t in _CLIXML_STRINGS)
                if i >= 0]
        if not hits:
            return out
        start, tag = min(hits)
        end = text.find("</S>", start + len(tag))
        if end < 0:
            return out
        out.append(text[start + len(tag):end])
        pos = end + 4


def _is_objs_open(text: str, at: int) -> bool:
    nxt = text[at + len(_OBJS_OPEN):at + len(_OBJS_OPEN) + 1]
    return not (nxt.isalnum() or nxt == "_")


def _strip_clixml_blocks(text: str) -> str:
    """``text`` without ``<Objs …>…</Objs>`` blocks (an unterminated one is kept), linear."""
    parts: List[str] = []
    pos = 0
    while True:
        start = text.find(_OBJS_OPEN, pos)
        while start >= 0 and not _is_objs_open(text, start):
            start = text.find(_OBJS_OPEN, start + 1)
        if start < 0:
            break
        end = text.find(_OBJS_CLOSE, start)
        if end < 0:
            break
        parts.append(text[pos:start])
        pos = end + len(_OBJS_CLOSE)
    parts.append(text[pos:])
    return "".join(parts)


def clixml_messages(text: str) -> List[str]:
    """The error/warning strings of CLIXML blocks (``<S S="Error">…</S>``), decoded."""
    out = []
    for s in _tagged_strings(text or ""):
        s = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda g: chr(int(g.group(1), 16)), s)
        s = s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
        s = s.replace("&apos;", "'").replace("&amp;", "&")
        out.append(s)
    return out


def strip_noise(text: str) -> str:
    """``text`` without BOMs and CLIXML blocks, CRLF folded."""
    text = (text or "").replace("\ufeff", "").replace("\r\n", "\n")
    return _strip_clixml_blocks(_CLIXML_HEADER_RE.sub("", text))


def parse(output: str, *, operation: str, host: str = "localhost",
          secrets: Optional[Iterable[str]] = None, exit_code: Optional[int] = None,
          stderr: str = "") -> ScriptResult:
    """The result printed in ``output``, or the exception it stands for."""
    secrets = list(secrets or ())
    raw = (output or "").replace("\ufeff", "")
    found = find_envelopes(raw)
    if not found:
        # The markers may have been split by a CLIXML block or CRLF: try without the noise.
        found = find_envelopes(strip_noise(raw))

    def _excerpt() -> str:
        both = raw if not stderr else raw + "\n[stderr]\n" + "\n".join(
            clixml_messages(stderr) or [strip_noise(stderr)])
        return excerpt(both, secrets)

    if not found:
        raise exceptions.NoEnvelope(operation=operation, exit_code=exit_code, excerpt=_excerpt())
    if len(found) > 1:
        raise exceptions.MultipleEnvelopes(operation=operation, count=len(found),
                                           excerpt=_excerpt())
    body = found[0].strip()
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise exceptions.MalformedEnvelope(operation=operation,
                                           reason="invalid JSON (%s)" % exc.msg,
                                           excerpt=_excerpt()) from None
    return interpret(doc, operation=operation, host=host, secrets=secrets, excerpt_text=_excerpt)


def interpret(doc: Any, *, operation: str, host: str = "localhost",
              secrets: Optional[Iterable[str]] = None, excerpt_text=None) -> ScriptResult:
    """Validate a decoded envelope; map ``ok: false`` to its exception."""
    secrets = list(secrets or ())

    def bad(reason: str) -> exceptions.MalformedEnvelope:
        text = excerpt_text() if excerpt_text else excerpt(json.dumps(doc, default=str), secrets)
        return exceptions.MalformedEnvelope(operation=operation, reason=reason, excerpt=text)

    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        raise bad("the document has no boolean 'ok'")
    warnings = doc.get("warnings") or []
    if isinstance(warnings, str):  # PowerShell 5.1 writes a one-element array as a scalar
        warnings = [warnings]
    if not isinstance(warnings, list):
        raise bad("'warnings' is not a list")
    warnings = tuple(mask(str(w), secrets) for w in warnings)
    for w in warnings:
        LOG.warning("%s on %s: %s", operation, host, w)
    if doc["ok"]:
        result = doc.get("result")
        if not isinstance(result, dict):
            raise bad("'result' is not an object")
        return ScriptResult(operation=operation, host=host, result=result, warnings=warnings)
    error = doc.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("kind"), str):
        raise bad("'error' has no 'kind'")
    fields = {k: error.get(k) for k in _ERROR_FIELDS}
    detail = mask(str(fields.get("message") or fields["kind"]), secrets)
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    raise exceptions.host_error(
        str(fields["kind"]), operation=operation, host=host, detail=detail,
        category=fields["category"], fq_error_id=fields["fq_error_id"],
        hresult=fields["hresult"], native_code=fields["native_code"], data=data,
        warnings=warnings)


def format_envelope(doc: Dict[str, Any]) -> str:
    """The line a template prints for ``doc`` (used by fake executors and the host double)."""
    return BEGIN + json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + END


def ok(result: Dict[str, Any], warnings: Iterable[str] = ()) -> Dict[str, Any]:
    return {"ok": True, "result": result, "warnings": list(warnings)}


def error(kind: str, message: str, data: Optional[Dict[str, Any]] = None,
          native_code: Optional[int] = None, warnings: Iterable[str] = ()) -> Dict[str, Any]:
    return {"ok": False, "warnings": list(warnings), "error": {
        "kind": kind, "message": message, "category": None, "fq_error_id": None,
        "hresult": None, "native_code": native_code, "data": data or {}}}
