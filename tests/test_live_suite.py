"""The live-host suite's switch, and that it replays the very files the host double does."""

import os
import re
import subprocess
import sys

import pytest

from tests import contract_runner, test_contract
from tests.integration import lab, test_live_contract
from tests.markers import needs_grammar

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def test_live_suite_and_double_read_the_same_contract_files():
    assert test_live_contract.contract_runner is contract_runner
    assert test_contract.cr is contract_runner
    live_ids = [v["id"] for v in test_live_contract.VECTORS]
    assert live_ids == [v["id"] for v in contract_runner.load_vectors()]
    assert len(live_ids) > 40


def test_without_variables_every_live_test_is_skipped_with_the_reason():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMBVOL_TEST_")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-n", "0",
         "tests/integration"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = run.stdout
    assert run.returncode == 0, out[-3000:]
    summary = out.strip().splitlines()[-1]
    assert re.search(r"\d+ skipped", summary), summary
    assert "passed" not in summary and "failed" not in summary and "error" not in summary
    assert "live-host suite not configured: set SMBVOL_TEST_HOST" in out


def test_missing_variables_are_named():
    assert lab.missing_variables({}) == list(lab.REQUIRED)
    full = {name: "x" for name in lab.REQUIRED}
    assert lab.missing_variables(full) == []
    settings = lab.settings_from_env(dict(full, SMBVOL_TEST_EXPORT="//hv01/share",
                                          SMBVOL_TEST_SHARE_USERNAME="u",
                                          SMBVOL_TEST_SHARE_PASSWORD="pw-unique-1"))
    assert settings.share_path == "\\\\hv01\\share"
    assert "pw-unique-1" not in repr(settings)


@needs_grammar
def test_lab_scripts_pass_the_offline_verification():
    from tests import pscheck

    for name in sorted(lab.LAB_OPERATIONS):
        text = lab.render_lab(name).text
        issues = pscheck.all_issues(text)
        if issues:
            pytest.fail("%s: %s" % (name, "; ".join(str(i) for i in issues)))


def test_live_scenarios_run_against_the_host_double():
    """The live scenarios' own logic, run against the double (the double speaks the same
    contract), so a mistake in the test code shows here rather than on the first live run."""
    from smbvol.secret import Credential, Secret
    from smbvol.testing import HostDouble
    from tests.integration import test_live_scenarios as scenarios

    share = "\\\\fs01.example.test\\smbvol"
    cred = Credential("EXAMPLE\\svc-smbvol", Secret("live-double-pw"))
    double = HostDouble("hv01")
    vms = {}
    for gen in (2, 1):
        name = "lab-gen%d" % gen
        vms["gen%d" % gen] = {"name": name, "id": double.add_vm(name, generation=gen)}
    images = ["%s\\lab-%d.%s" % (share, i, ext) for i in range(4) for ext in ("vhdx", "vhd")]
    double.add_share(share, files=[i.rsplit("\\", 1)[1] for i in images], credential=cred)
    live = lab.LiveSettings(
        host="hv01", transports=("psrp",), auth="ntlm", username="EXAMPLE\\ops",
        password=Secret("remoting-pw"), ssl=True, ca_file=None,
        export="//fs01.example.test/smbvol", share_credential=cred, prefix="lab")
    lab_state = {"vms": vms, "images": images}
    executor = double.executor("hv01")

    def ops():
        return scenarios.VolumeOps(executor, live.conf("psrp"))

    for generation in ("gen2", "gen1"):
        scenarios.test_attach_detach_idempotent(ops(), live, lab_state, generation)
    scenarios.test_qos_visible_through_get_vmharddiskdrive(ops(), live, lab_state)
    scenarios.test_unmount_refused_while_in_use(ops(), live, lab_state)
    scenarios.test_failed_attach_changes_nothing(ops(), live, lab_state)
    assert all(not double.disks_of(v["name"]) for v in vms.values())
