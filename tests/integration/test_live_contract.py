"""Replay every contract vector against a live Hyper-V host, over each remote executor.

The same files and the same runner as the host double's tests/test_contract.py.  A vector
whose starting state the lab cannot build (``live: false``, or state this module cannot
apply) is reported as skipped with the reason — never as passed.
"""

from __future__ import annotations

import ntpath
from typing import Any, Dict, Mapping, Optional

import pytest

from tests import contract_runner
from tests.integration import lab

VECTORS = contract_runner.load_vectors()
#: State keys the lab can apply on a real host (see lab_apply.ps1.j2).
APPLICABLE_STATE = {"host", "vms", "shares", "mappings"}


def lab_names(live: lab.LiveSettings, lab_state: Mapping[str, Any],
              host_info: Mapping[str, Any]) -> Dict[str, str]:
    images = [ntpath.basename(p) for p in lab_state["images"]]
    vhdx = [i for i in images if i.endswith(".vhdx")]
    vhd = [i for i in images if i.endswith(".vhd")]
    share = live.share_path
    names = dict(contract_runner.DOUBLE_NAMES)
    names.update({
        "HOST": host_info["host_name"], "HOST_FQDN": host_info["fqdn"],
        "HOST_DOMAIN": host_info.get("domain") or "",
        "VM_GEN2": lab_state["vms"]["gen2"]["name"], "VM_GEN2_ID": lab_state["vms"]["gen2"]["id"],
        "VM_GEN1": lab_state["vms"]["gen1"]["name"], "VM_GEN1_ID": lab_state["vms"]["gen1"]["id"],
        "SHARE": share, "SHARE_SERVER": share.lstrip("\\").split("\\")[0],
        "SHARE_USER": live.share_credential.username if live.share_credential else "",
        "IMAGE1": vhdx[0], "IMAGE2": vhdx[1], "IMAGE3": vhdx[2], "VHD1": vhd[0],
        "MISSING_IMAGE": live.prefix + "-missing.vhdx",
    })
    return names


def unsupported_state(state: Mapping[str, Any], names: Mapping[str, str]) -> Optional[str]:
    extra = sorted(set(state) - APPLICABLE_STATE)
    if extra:
        return "starting state %s cannot be built on a real host" % ", ".join(extra)
    lab_vms = {names["VM_GEN1"], names["VM_GEN2"]}
    for name, vm in (state.get("vms") or {}).items():
        if name not in lab_vms:
            return "VM %s is not one of the lab's VMs" % name
        if vm.get("fill_scsi"):
            return "filling every SCSI slot is not done on a real host"
    if state.get("mappings"):
        return "pre-existing mappings with given credentials/status are not built on a real host"
    return None


def apply_state(executor, live, state: Mapping[str, Any], names: Mapping[str, str]) -> None:
    vms = state.get("vms") or {}
    vm_names = [names["VM_GEN1"], names["VM_GEN2"]]
    disks = [(vm_name, d) for vm_name, vm in vms.items() for d in vm.get("disks") or ()]
    executor.run(lab.render_lab("lab_apply"), {
        "VMNames": vm_names,
        "Running": [1 if (vms.get(n) or {}).get("running") else 0 for n in vm_names],
        "DiskVMs": [v for v, _ in disks],
        "DiskPaths": [d["path"] for _, d in disks],
        "DiskControllerTypes": [d["controller_type"] for _, d in disks],
        "DiskNumbers": [d["controller_number"] for _, d in disks],
        "DiskLocations": [d["controller_location"] for _, d in disks],
        "SharePath": live.share_path,
        "RemoveMappings": True,
    }, timeout=600)


@pytest.fixture(scope="session")
def names(live, executors, lab_state):
    from smbvol import scripts

    info = next(iter(executors.values())).run(scripts.render("host_info")).result
    return lab_names(live, lab_state, info)


def secrets_for(live) -> Dict[str, str]:
    share = live.share_credential.password.reveal() if live.share_credential else ""
    return {"share": share, "wrong": share + "-wrong", "other": share + "-other"}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_on_live_host(vector, live, executors, transport, names):
    if not vector["live"]:
        pytest.skip(vector.get("live_reason") or "vector marked live: false")
    filled = contract_runner.substitute(vector, names)
    reason = unsupported_state(filled.get("state") or {}, names)
    if reason:
        pytest.skip(reason)
    executor = executors[transport]
    apply_state(executor, live, filled.get("state") or {}, names)
    outcome = contract_runner.run_vector(executor, filled, secrets_for(live), timeout=600)
    assert contract_runner.compare(outcome, filled) == []
