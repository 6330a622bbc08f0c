"""The live-host suite's switch and lab.

Every test under tests/integration/ runs only when SMBVOL_TEST_HOST and its companions are
set (doc/live-host.rst); otherwise each one is reported as skipped with the reason.  The
lab (VMs and images named with a per-run prefix) is built once per session and removed at
the end, also after failures; what could not be removed is reported.
"""

from __future__ import annotations

import logging

import pytest

from smbvol.executors import get_executor
from tests.integration import lab

LOG = logging.getLogger(__name__)


def pytest_collection_modifyitems(config, items):
    missing = lab.missing_variables()
    if not missing:
        return
    reason = ("live-host suite not configured: set %s (see doc/live-host.rst)"
              % ", ".join(missing))
    for item in items:
        if "tests/integration/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def live():
    missing = lab.missing_variables()
    if missing:
        pytest.skip("live-host suite not configured: set %s" % ", ".join(missing))
    return lab.settings_from_env()


@pytest.fixture(scope="session")
def executors(live):
    made = {t: get_executor(live.conf(t), host=live.host) for t in live.transports}
    yield made
    for ex in made.values():
        ex.close()


@pytest.fixture(scope="session")
def lab_state(live, executors, request):
    ex = next(iter(executors.values()))
    params = {"Prefix": live.prefix, "SharePath": live.share_path, "ImageCount": 4}
    try:
        state = ex.run(lab.render_lab("lab_setup"), params, timeout=600).result
        yield state
    finally:
        res = ex.run(lab.render_lab("lab_teardown"),
                     {"Prefix": live.prefix, "SharePath": live.share_path}, timeout=600).result
        left = list(res.get("left") or [])
        # The mapping smbvol made for the lab share (never one it did not make).
        from smbvol import exceptions, scripts

        try:
            ex.run(scripts.render("unmount_share"), {"SharePath": live.share_path})
        except exceptions.SmbvolError as exc:
            left.append("mapping of %s: %s" % (live.share_path, exc))
        if left:
            msg = "live suite could not remove: %s" % "; ".join(left)
            LOG.error(msg)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(msg, red=True)


@pytest.fixture(params=["psrp", "winrm"])
def transport(request, live):
    if request.param not in live.transports:
        pytest.skip("transport %s not in SMBVOL_TEST_TRANSPORTS" % request.param)
    return request.param
