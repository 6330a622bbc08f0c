"""Executors: one API over a local and remote PowerShell, picked by configuration.

=========  ===========================================  =============================
name       class                                        runs scripts
=========  ===========================================  =============================
local      smbvol.executors.local.LocalExecutor         powershell.exe on this host
winrm      smbvol.executors.winrm.WinRMExecutor         over WinRM (pywinrm)
psrp       smbvol.executors.psrp.PSRPExecutor           over PSRP (pypsrp)
fake       smbvol.executors.fake.FakeExecutor           a Python function (tests)
=========  ===========================================  =============================

Classes are imported when first chosen, so the local executor on a Windows
host never imports the remoting libraries.
"""

from __future__ import annotations

import importlib
from typing import Optional

from smbvol import exceptions
from smbvol.executors.base import Executor, RawOutput
from smbvol.executors.fake import FakeExecutor

EXECUTORS = {
    "local": "smbvol.executors.local:LocalExecutor",
    "winrm": "smbvol.executors.winrm:WinRMExecutor",
    "psrp": "smbvol.executors.psrp:PSRPExecutor",
}


def executor_class(name: str) -> type:
    try:
        path = EXECUTORS[name]
    except KeyError:
        raise exceptions.ConfigError(
            option="smbvol.transport",
            reason="unknown executor %r; use one of %s" % (name, ", ".join(sorted(EXECUTORS)))
        ) from None
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_executor(conf, host: Optional[str] = None, name: Optional[str] = None) -> Executor:
    """The executor chosen by ``conf.smbvol.transport`` (or ``name``) for ``host``.

    ``conf`` is an oslo.config ``ConfigOpts`` with :func:`smbvol.opts.register_opts`
    applied.  Each executor class builds itself from it with ``from_conf``.
    """
    name = name or conf.smbvol.transport
    if name == "fake":  # tests: a FakeExecutor answered by an empty in-memory host
        from smbvol.testing import HostDouble
        return HostDouble(host or "hv01").executor(host)
    return executor_class(name).from_conf(conf, host=host)


__all__ = ["EXECUTORS", "Executor", "FakeExecutor", "RawOutput", "executor_class",
           "get_executor"]
