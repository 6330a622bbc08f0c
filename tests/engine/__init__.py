"""The PowerShell engine in the loop: templates run in a real pwsh against a fake host.

* :mod:`tests.engine.locate` finds the engine (``$SMBVOL_PWSH``, ``../shared/tools/pwsh``,
  ``pwsh`` on PATH) and decides skip or fail (``SMBVOL_REQUIRE_PWSH=1``);
* :mod:`tests.engine.fakehost` builds the fake host modules (``Hyper-V``, ``SmbShare``,
  ``Storage``, ``iSCSI``, ``NetTCPIP``...) from ``tests/data/cmdlets.json`` and gives the
  environment (``PSModulePath``) a pwsh needs to load them.
"""
