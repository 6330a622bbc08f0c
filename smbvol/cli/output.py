"""Rows for cliff's formatters: results of one or many hosts as columns.

Every command prints a list (cliff ``Lister``) so that ``-f table``, ``json``,
``yaml``, ``value`` and ``csv`` all work the same way: one row per host (per
disk for ``volume list``), with the columns ``host``, ``status``, the fields
of the result, and ``error``.  Lists and mappings are shown joined in tables
and kept structured in JSON and YAML.  Secrets never reach a row.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from cliff import columns as cliff_columns
from cliff.formatters import commaseparated

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


class CSVFormatter(commaseparated.CSVLister):
    """cliff's CSV output, readable back by :class:`csv.DictReader`.

    cliff writes with ``escapechar='\\'``, which doubles every backslash of a
    Windows path although the fields are quoted; here a quote inside a field is
    doubled (the CSV rule) and a backslash is written as it is.  Only
    ``--quote none``, where nothing is quoted, needs the escape character.
    """

    def emit_list(self, column_names, data, stdout, parsed_args) -> None:
        quoting = self.QUOTE_MODES[parsed_args.quote_mode]
        writer = csv.writer(stdout, quoting=quoting, lineterminator=os.linesep,
                            escapechar="\\" if quoting == csv.QUOTE_NONE else None)
        writer.writerow(column_names)
        for row in data:
            writer.writerow([str(c.machine_readable())
                             if isinstance(c, cliff_columns.FormattableColumn) else c
                             for c in row])


def formatter(name: str, default: Any) -> Any:
    """The formatter object for ``-f name`` (cliff's, except for CSV)."""
    if name == "csv":
        return CSVFormatter()
    return default


#: Formats that print text cells: an empty cell (None) is an empty string in each of them.
TEXT_FORMATS = ("table", "value", "csv")


def for_format(name: str, data: Iterable[Sequence[Any]]) -> List[tuple]:
    """``data`` for ``-f name``.

    In the text formats every cell reads the same: an empty cell (None, an empty
    list) is ``''``, and a list or mapping is ``a, b`` / ``k=v`` (never a Python
    repr); JSON and YAML keep ``null`` and the structure.
    """
    if name not in TEXT_FORMATS:
        return [tuple(row) for row in data]
    return [tuple(_text_cell(value) for value in row) for row in data]


def _text_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, cliff_columns.FormattableColumn):
        return value.human_readable()
    return value
