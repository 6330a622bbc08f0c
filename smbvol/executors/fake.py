"""A fake executor that hands every script to a function: tests without a host.

The handler is called as ``handler(script, parameters)`` with the rendered
:class:`~smbvol.scripts.Script` (its ``name`` says which operation) and the
checked parameters, and returns one of:

* a ``dict`` envelope (``{"ok": True, "result": {...}}``, see
  :func:`smbvol.envelope.ok` / :func:`smbvol.envelope.error`), printed as a
  template would print it and parsed by the same code as a real host's output;
* a ``str``: the raw output of the host;
* a :class:`~smbvol.executors.base.RawOutput`.

It may also raise any :class:`smbvol.exceptions.SmbvolError` to stand for a
transport failure.  ``calls`` records ``(operation, parameters)`` of each run.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Tuple, Union

from smbvol import envelope
from smbvol.executors.base import Executor, RawOutput
from smbvol.scripts import Script

Handler = Callable[[Script, Mapping[str, Any]], Union[dict, str, RawOutput]]


class FakeExecutor(Executor):
    """An executor whose scripts ``handler(script, parameters)`` answers (tests, no host).

    ``FakeExecutor(handler, host="hv01")``: ``handler`` gets the rendered
    :class:`~smbvol.scripts.Script` and the checked parameters and returns an
    envelope dict, raw output text or a :class:`~smbvol.executors.base.RawOutput`
    (module docstring); ``calls`` lists ``(operation, parameters)`` of every run.
    :meth:`smbvol.testing.HostDouble.executor` gives one answered by the host double,
    and ``smbvol.executors.get_executor(conf, name="fake")`` one answered by an
    empty double (reach it as ``executor.handler.__self__``).
    """

    kind = "fake"

    def __init__(self, handler: Handler, host: str = "fake-host",
                 default_timeout: float = 300.0) -> None:
        super().__init__(host=host, default_timeout=default_timeout)
        self.handler = handler
        self.calls: List[Tuple[str, Mapping[str, Any]]] = []

    def handle(self, script: Script, parameters: Mapping[str, Any],
               timeout: float) -> RawOutput:
        self.calls.append((script.name, dict(parameters)))
        out = self.handler(script, parameters)
        if isinstance(out, RawOutput):
            return out
        if isinstance(out, dict):
            return RawOutput(stdout=envelope.format_envelope(out))
        if isinstance(out, str):
            return RawOutput(stdout=out)
        raise TypeError("a FakeExecutor handler returns a dict, a str or a RawOutput, not %s"
                        % type(out).__name__)
