"""One operation call on the host double: its injected failure, warnings and undo list.

:class:`Call` is what every ``op_*`` method receives: ``call.stage(name)`` raises the failure
:meth:`HostDouble.fail_next` injected for that step, ``call.warn`` adds a warning to the
envelope, ``call.undo`` records how to roll back a change (undone in reverse order when the
operation fails, as the templates' rollback does).  :class:`Failure` is an error envelope in
the making; :class:`HostCall` is the record :attr:`HostDouble.calls` keeps of each call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional
from typing import Mapping as TMapping


@dataclasses.dataclass(frozen=True)
class HostCall:
    """One operation the double answered: parameters with secrets masked, and the outcome."""

    operation: str
    parameters: Dict[str, Any]
    options: Dict[str, Any]
    #: ``"ok"`` or the error kind.
    outcome: str


@dataclasses.dataclass(frozen=True)
class Injected:
    """A failure :meth:`HostDouble.fail_next` queued for the next call of ``operation``."""

    operation: str
    kind: str
    message: Optional[str]
    stage: Optional[str]
    native_code: Optional[int]
    skip: int = 0
    data: Optional[Dict[str, Any]] = None


class Failure(Exception):
    """An error envelope in the making (never leaves the double)."""

    def __init__(self, kind: str, message: str, data: Optional[Dict[str, Any]] = None,
                 native_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.data = dict(data or {})
        self.native_code = native_code


class Call:
    """One invocation: options, the failure injected for it, warnings, undo actions."""

    def __init__(self, operation: str, options: TMapping[str, Any],
                 injected: Optional[Injected]) -> None:
        self.operation = operation
        self.options = dict(options)
        self.injected = injected
        self.warnings: List[str] = []
        self._undo: List[Callable[[], None]] = []

    def stage(self, name: Optional[str]) -> None:
        """Fail here if the injected failure is for stage ``name`` (None: the start)."""
        inj = self.injected
        if inj is None or inj.stage != name:
            return
        if inj.skip > 0:
            self.injected = dataclasses.replace(inj, skip=inj.skip - 1)
            return
        self.injected = None
        message = inj.message or "injected %s failure%s in %s" % (
            inj.kind, " at stage %s" % name if name else "", self.operation)
        raise Failure(inj.kind, message, inj.data, inj.native_code)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def undo(self, action: Callable[[], None]) -> None:
        self._undo.append(action)

    def roll_back(self) -> None:
        while self._undo:
            self._undo.pop()()
