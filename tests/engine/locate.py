"""Where the PowerShell engine is, and what a test does when there is none.

Order: ``$SMBVOL_PWSH``, then ``../shared/tools/pwsh`` relative to the checkout, then ``pwsh``
on ``PATH``.  Without an engine the engine tests are skipped with that reason, unless
``SMBVOL_REQUIRE_PWSH=1`` (set by ``.ci/run``): then a missing engine fails the run.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional, Tuple

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_PWSH = os.path.join(os.path.dirname(CHECKOUT), "shared", "tools", "pwsh")

HOW_TO_GET = ("install PowerShell 7 (Microsoft's packages give 'pwsh'), or set SMBVOL_PWSH "
              "to its path")


def find_pwsh() -> Tuple[Optional[str], str]:
    """``(path, "")`` of the engine, or ``(None, why not)``."""
    env = os.environ.get("SMBVOL_PWSH")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env, ""
        found = shutil.which(env)
        if found:
            return found, ""
        return None, "SMBVOL_PWSH=%r is not an executable file" % env
    if os.path.isfile(SHARED_PWSH) and os.access(SHARED_PWSH, os.X_OK):
        return SHARED_PWSH, ""
    found = shutil.which("pwsh")
    if found:
        return found, ""
    return None, ("no PowerShell engine: no $SMBVOL_PWSH, no ../shared/tools/pwsh, no pwsh on "
                  "PATH; " + HOW_TO_GET)


def required() -> bool:
    return os.environ.get("SMBVOL_REQUIRE_PWSH", "").strip() not in ("", "0", "false", "no")


def pwsh_or_skip() -> str:
    """The engine's path; else ``pytest.skip`` (or ``pytest.fail`` when it is required)."""
    import pytest

    path, why = find_pwsh()
    if path is None:
        if required():
            pytest.fail("SMBVOL_REQUIRE_PWSH=1 but " + why, pytrace=False)
        pytest.skip(why)
    return path
