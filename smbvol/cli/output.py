"""Rows for cliff's formatters: results of one or many hosts as columns.

Every command prints a list (cliff ``Lister``) so that ``-f table``, ``json``,
``yaml``, ``value`` and ``csv`` all work the same way: one row per host (per
disk for ``volume list``), with the columns ``host``, ``status``, the fields
of the result, and ``error``.  Lists and mappings are shown joined in tables
and kept structured in JSON and YAML.  Secrets never reach a row.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from cliff import columns as cliff_columns

from smbvol.secret import MASK, Credential, Secret

STATUS_OK = "ok"
STATUS_ERROR = "error"

LEADING = ("host", "status")
TRAILING = ("error",)


class ListColumn(cliff_columns.FormattableColumn):
    """A list: ``a, b`` in tables, a list in JSON/YAML."""

    def human_readable(self) -> str:
        return ", ".join(str(v) for v in self._value)


class DictColumn(cliff_columns.FormattableColumn):
    """A mapping: ``k=v, k=v`` in tables, an object in JSON/YAML."""

    def human_readable(self) -> str:
        return ", ".join("%s=%s" % (k, v) for k, v in sorted(self._value.items()))


def plain(value: Any) -> Any:
    """``value`` as JSON-friendly data with every secret masked."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Credential):
        return "%s/%s" % (value.username, MASK)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def cell(value: Any) -> Any:
    """One cell: lists and mappings wrapped so each formatter shows them its way."""
    value = plain(value)
    if isinstance(value, list):
        return ListColumn(value)
    if isinstance(value, dict):
        return DictColumn(value)
    return value


def fields_of(result: Any) -> Dict[str, Any]:
    """The fields of a result object (a dataclass or a mapping), in order."""
    if result is None:
        return {}
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    if isinstance(result, Mapping):
        return dict(result)
    raise TypeError("cannot show a %s as columns" % type(result).__name__)


def result_columns(result_type: Optional[type], fallback: Sequence[str] = ()) -> Tuple[str, ...]:
    """The result columns of a result class (its dataclass fields), else ``fallback``."""
    if result_type is not None and dataclasses.is_dataclass(result_type):
        names = tuple(f.name for f in dataclasses.fields(result_type))
    else:
        names = tuple(fallback)
    return tuple(n for n in names if n not in LEADING + TRAILING)


@dataclasses.dataclass(frozen=True)
class Row:
    """One output row: the host, and its result fields or its error."""

    host: str
    status: str
    fields: Dict[str, Any]
    error: Optional[str] = None


def table(rows: Iterable[Row], columns: Sequence[str]) -> Tuple[Tuple[str, ...], List[tuple]]:
    """``(column names, data)`` for a cliff Lister.

    ``columns`` are the result columns known in advance; a field some result
    has beyond them is appended, so nothing a host reported is hidden.
    """
    rows = list(rows)
    names: List[str] = [c for c in columns if c not in LEADING + TRAILING]
    for row in rows:
        for key in row.fields:
            if key not in names and key not in LEADING + TRAILING:
                names.append(key)
    header = LEADING + tuple(names) + TRAILING
    data = []
    for row in rows:
        values = [row.host, row.status]
        values += [cell(row.fields.get(n)) for n in names]
        values.append(row.error)
        data.append(tuple(values))
    return header, data
