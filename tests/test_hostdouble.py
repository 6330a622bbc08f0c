"""The host double's own behaviour: concurrency, locks, injected failures, state, extension."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from smbvol import envelope, exceptions, scripts
from smbvol.scripts import OPERATIONS
from smbvol.secret import Credential, Secret
from smbvol.testing import HostDouble
from smbvol.testing.hostdouble import DEFAULT_SECRETS

SHARE = "\\\\fs01\\vols"
PASSWORD = DEFAULT_SECRETS["share"]
CRED = Credential("svc", Secret(PASSWORD))


def make_host(images=4, **kwargs):
    host = HostDouble("hv01", **kwargs)
    host.add_vm("vm2")
    host.add_vm("vm1", generation=1, scsi_controllers=0)
    host.add_share(SHARE, files=["img%d.vhdx" % i for i in range(images)], credential=CRED)
    return host


def run(host, operation, options=None, **params):
    return host.executor().run(scripts.render(operation, **(options or {})), params)


def attach(host, vm="vm2", image="img0.vhdx", **extra):
    return run(host, "attach_vhd", VMName=vm, SharePath=SHARE, DiskName=image,
               ShareCredential=CRED, **extra).result


# --------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------

def test_64_threads_attaching_to_one_vm_get_64_distinct_slots():
    """The double's default (serialised) mode: its host lock, standing for the templates'
    named mutex, keeps concurrent callers that take no lock of their own on distinct slots.
    This proves the double, not smbvol's locks (see test_volumeops'
    test_64_threads_attach_64_volumes_to_one_vm, which runs with ``serialize=False``)."""
    host = make_host(images=64)
    host.set_running("vm2", True)  # hot-add: no controller may be added
    barrier = threading.Barrier(64)

    def one(i):
        barrier.wait()
        return attach(host, image="img%d.vhdx" % i)

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(one, range(64)))
    slots = {(r["controller_type"], r["controller_number"], r["controller_location"])
             for r in results}
    assert len(slots) == 64
    assert slots == {("SCSI", 0, loc) for loc in range(64)}
    assert len(host.disks_of("vm2")) == 64
    assert len(host.mappings) == 1  # one mapping, created once, reused 63 times
    assert sum(r["mapping_created"] for r in results) == 1
    # The VM is running and its only controller is full: the 65th cannot be placed.
    host.add_file(SHARE + "\\img64.vhdx")
    with pytest.raises(exceptions.NoFreeSlot, match="vm2"):
        attach(host, image="img64.vhdx")


def test_concurrent_attach_detach_and_reads_keep_the_state_consistent():
    """Default mode: attach, detach and to_dict from 16 threads never see half a change."""
    host = make_host(images=16)

    def worker(i):
        image = "img%d.vhdx" % i
        for _ in range(5):
            attach(host, image=image)
            json.dumps(host.to_dict())
            run(host, "detach_vhd", VMName="vm2", SharePath=SHARE, DiskName=image)
        attach(host, image=image)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(worker, range(16)))
    disks = host.disks_of("vm2")
    assert sorted(d.path for d in disks) == sorted(
        SHARE + "\\img%d.vhdx" % i for i in range(16))
    assert len({d.slot for d in disks}) == 16


def test_unserialized_host_lets_two_unlocked_attaches_take_the_same_slot():
    """``serialize=False``: the host lock is let go between slot choice and disk add, where
    ``race_window`` runs; two callers without a lock of their own both pick slot 0 and the
    second disk replaces the first — the failure a client's VM lock has to prevent."""
    window = threading.Barrier(2, timeout=10)
    host = make_host(images=2, serialize=False, race_window=window.wait)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: attach(host, image="img%d.vhdx" % i), range(2)))
    assert [r["controller_location"] for r in results] == [0, 0]
    assert len(host.disks_of("vm2")) == 1


def test_unserialized_host_with_a_client_lock_gives_distinct_slots():
    """``serialize=False`` with the callers serialising per VM themselves: distinct slots,
    each disk kept; race_window ran once per attach."""
    windows = []
    host = make_host(images=16, serialize=False, race_window=lambda: windows.append(1))
    client_lock = threading.Lock()

    def one(i):
        with client_lock:
            return attach(host, image="img%d.vhdx" % i)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(16)))
    assert sorted(r["controller_location"] for r in results) == list(range(16))
    assert len({d.slot for d in host.disks_of("vm2")}) == 16
    assert len(windows) == 16


def test_race_window_needs_serialize_false():
    with pytest.raises(ValueError, match="serialize=False"):
        HostDouble("hv01", race_window=lambda: None)
    assert HostDouble("hv01").serialize


# --------------------------------------------------------------------------
# Locks held by another client
# --------------------------------------------------------------------------

def test_a_held_vm_lock_makes_attach_and_detach_host_busy_until_released():
    host = make_host()
    key = host.vm_lock_key("vm2")
    assert key == "vm:" + host.vm("vm2").id.lower()
    with host.hold_lock(key):
        with pytest.raises(exceptions.HostBusy) as info:
            attach(host)
        assert info.value.data["lock"] == key
        with pytest.raises(exceptions.HostBusy):
            run(host, "detach_vhd", VMName="vm2", SharePath=SHARE, DiskName="img0.vhdx")
        assert attach(host, vm="vm1", image="img1.vhdx")["changed"]  # other VMs are not blocked
    assert host.disks_of("vm2") == ()
    assert attach(host)["changed"]
    assert exceptions.is_transient(info.value)


def test_a_held_share_lock_blocks_mount_and_unmount_of_that_share_only():
    host = make_host()
    host.add_share("\\\\fs02\\other", files=["x.vhdx"])
    with host.hold_lock(HostDouble.share_lock_key(SHARE + "\\sub")):
        for op, params in (("mount_share", {"SharePath": SHARE.upper()}),
                           ("unmount_share", {"SharePath": SHARE})):
            with pytest.raises(exceptions.HostBusy):
                run(host, op, **params)
        assert run(host, "mount_share", SharePath="\\\\fs02\\other",
                   DiskName="x.vhdx").result["disk_path"] == "\\\\fs02\\other\\x.vhdx"
    assert host.to_dict()["locks_held"] == []


# --------------------------------------------------------------------------
# Injected failures and rollback
# --------------------------------------------------------------------------

def test_failure_at_attach_removes_the_mapping_this_call_created():
    host = make_host()
    host.fail_next("attach_vhd", "unexpected", "Add-VMHardDiskDrive failed", stage="attach")
    with pytest.raises(exceptions.UnexpectedHostError, match="Add-VMHardDiskDrive failed"):
        attach(host)
    assert host.mappings == ()
    assert host.disks_of("vm2") == ()
    # one-shot: the next call works
    assert attach(host)["mapping_created"]


def test_failure_at_qos_removes_the_disk_the_controller_and_the_mapping():
    host = make_host()
    host.set_running("vm1", False)
    before = host.vm("vm1").scsi_controllers
    host.fail_next("attach_vhd", "unexpected", stage="qos")
    with pytest.raises(exceptions.UnexpectedHostError):
        attach(host, vm="vm1", MaximumIops=100)
    assert host.vm("vm1").scsi_controllers == before == 0
    assert host.disks_of("vm1") == () and host.mappings == ()


def test_attach_vhds_is_all_or_nothing_when_the_second_image_fails():
    host = make_host()
    host.fail_next("attach_vhds", "unexpected", stage="attach", skip=1)
    with pytest.raises(exceptions.UnexpectedHostError):
        run(host, "attach_vhds", VMName="vm2", SharePaths=[SHARE, SHARE],
            DiskNames=["img0.vhdx", "img1.vhdx"], ShareCredentials=[CRED, CRED])
    assert host.disks_of("vm2") == () and host.mappings == ()


def test_fail_next_refuses_what_the_templates_cannot_report():
    host = make_host()
    with pytest.raises(ValueError, match="does not report"):
        host.fail_next("list_attachments", "disk_in_use")
    with pytest.raises(ValueError, match="no stage"):
        host.fail_next("mount_share", "unexpected", stage="attach")
    with pytest.raises(ValueError, match="no operation"):
        host.fail_next("format_disk", "unexpected")


def test_failure_kinds_must_be_in_the_catalog():
    host = make_host()
    # A double answering with a kind the catalog does not list is a bug in the double.
    with pytest.raises(AssertionError, match="catalog"):
        host._check_kind("list_attachments", "host_busy")


# --------------------------------------------------------------------------
# SMB behaviour details
# --------------------------------------------------------------------------

@pytest.mark.parametrize("host_part, local", [
    ("hv01", True), ("HV01", True), ("hv01.example.test", True), ("hv01.example.test.", True),
    ("localhost", True), ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
    ("0--1.ipv6-literal.net", True), ("10.0.0.11", True),
    ("fd00--11.ipv6-literal.net", True), ("fd00-0-0-0-0-0-0-11.ipv6-literal.net", True),
    ("fd00--11s4.ipv6-literal.net", True), ("fs01", False), ("10.0.0.12", False),
    ("fd00--12.ipv6-literal.net", False), ("hv02.example.test", False),
])
def test_which_host_parts_mean_this_host(host_part, local):
    host = HostDouble("hv01", addresses=("10.0.0.11", "fd00::11"))
    assert host.is_local_host(host_part) is local


def test_loopback_share_gives_the_local_path_and_no_mapping():
    host = make_host()
    host.add_share("\\\\hv01\\local", files=["a.vhdx"], local_path="D:\\shares\\local\\")
    res = run(host, "attach_vhd", VMName="vm2", SharePath="\\\\127.0.0.1\\local", DiskName="a.vhdx",
        ShareCredential=CRED).result
    assert res["disk_path"] == "D:\\shares\\local\\a.vhdx"
    assert res["mapping_kind"] == "local" and host.mappings == ()
    again = run(host, "attach_vhd", VMName="vm2", SharePath="\\\\HV01\\LOCAL",
                DiskName="A.VHDX").result
    assert not again["changed"] and again["controller_location"] == res["controller_location"]


def test_global_mapping_unsupported_refuses_credentials_and_makes_no_mapping():
    host = make_host(global_mapping_supported=False)
    for options in ({}, {"mapping_via_task": True}):
        with pytest.raises(exceptions.InvalidParameters) as info:
            run(host, "mount_share", options, SharePath=SHARE, DiskName="img0.vhdx",
                ShareCredential=CRED)
        assert info.value.data["field"] == "ShareCredential"
        assert "computer account" in str(info.value)
        assert host.mappings == ()


def test_double_hop_fails_without_the_task_option_and_works_with_it():
    host = make_host(remote_session=True)
    with pytest.raises(exceptions.LogonSessionMissing) as info:
        run(host, "mount_share", SharePath=SHARE, ShareCredential=CRED)
    assert info.value.native_code == 1312 and "CredSSP" in str(info.value)
    res = run(host, "mount_share", {"mapping_via_task": True}, SharePath=SHARE,
              ShareCredential=CRED)
    assert res.result["mapping_kind"] == "global"
    assert host.calls[-1].options == {"mapping_via_task": True}


def test_conflicting_credentials_for_the_same_server_are_error_1219():
    host = make_host()
    host.add_share("\\\\fs01\\other", credential=Credential("other", Secret("x")))
    host.add_mapping("\\\\FS01\\other", credential=Credential("other", Secret("x")))
    with pytest.raises(exceptions.MappingConflict) as info:
        run(host, "mount_share", SharePath=SHARE, ShareCredential=CRED)
    assert info.value.native_code == 1219
    assert info.value.data["native_code"] == 1219
    assert len(host.mappings) == 1


def test_stale_mapping_is_replaced_and_wrong_password_is_access_denied():
    host = make_host()
    host.add_mapping(SHARE, status="Unavailable", credential=CRED)
    with pytest.raises(exceptions.AccessDenied, match="svc"):
        run(host, "mount_share", SharePath=SHARE,
            ShareCredential=Credential("svc", Secret("nope")))
    assert host.mappings == ()  # the stale one was removed, no new one was made
    run(host, "mount_share", SharePath=SHARE, ShareCredential=CRED)
    assert [(m.status, m.owned) for m in host.mappings] == [("OK", True)]


def test_detach_never_removes_another_disk_and_unmount_refuses_a_share_in_use():
    host = make_host()
    attach(host, image="img0.vhdx")
    attach(host, image="img1.vhdx")
    res = run(host, "detach_vhd", VMName="vm2", SharePath=SHARE, DiskName="img2.vhdx")
    assert not res.result["changed"] and len(host.disks_of("vm2")) == 2
    with pytest.raises(exceptions.DiskInUse) as info:
        run(host, "unmount_share", SharePath=SHARE)
    assert info.value.data["vms"] == ["vm2"]
    for image in ("img0.vhdx", "IMG1.VHDX"):
        assert run(host, "detach_vhd", VMName="vm2", SharePath=SHARE,
                   DiskName=image).result["removed"]
    assert run(host, "unmount_share", SharePath=SHARE).result["removed"]
    assert host.mappings == ()


def test_slot_choice_fills_holes_then_adds_a_controller_only_when_off():
    host = make_host(images=3)
    host.fill_scsi("vm2", except_slots=[(0, 40)])
    assert attach(host, image="img0.vhdx")["controller_location"] == 40
    res = attach(host, image="img1.vhdx")
    assert (res["controller_number"], res["controller_location"]) == (1, 0)
    assert host.vm("vm2").scsi_controllers == 2
    host.add_vm("full", scsi_controllers=4)
    assert host.fill_scsi("full") == 256
    with pytest.raises(exceptions.NoFreeSlot, match="all 4"):
        attach(host, vm="full", image="img2.vhdx")
    assert host.vm("full").scsi_controllers == 4 and host.mappings[0].owned


def test_ide_rules():
    host = make_host()
    with pytest.raises(exceptions.InvalidState, match="Generation 2"):
        attach(host, vm="vm2", DiskBus="ide")
    slots = [attach(host, vm="vm1", image="img%d.vhdx" % i, DiskBus="ide") for i in range(3)]
    assert [(s["controller_number"], s["controller_location"]) for s in slots] == [
        (0, 0), (0, 1), (1, 1)]  # IDE 1:0 is the DVD drive
    with pytest.raises(exceptions.NoFreeSlot):
        attach(host, vm="vm1", image="img3.vhdx", DiskBus="ide")
    host.set_running("vm1", True)
    with pytest.raises(exceptions.InvalidState, match="vm1"):
        run(host, "detach_vhd", VMName="vm1", SharePath=SHARE, DiskName="img0.vhdx")
    with pytest.raises(exceptions.InvalidParameters, match="DiskBus"):
        attach(host, vm="vm1", DiskBus="sata")


def test_results_have_exactly_the_catalog_fields():
    host = make_host()
    host.add_share("\\\\hv01\\local", files=["a.vhdx"], local_path="D:\\local")
    assert set(attach(host)) == set(OPERATIONS["attach_vhd"].result_fields)
    listed = run(host, "list_attachments").result["attachments"]
    assert set(listed[0]) == {"vm_name", "vm_id", "controller_type", "controller_number",
                              "controller_location", "path", "disk_number", "target_iqn",
                              "target_lun", "target_portal", "on_share", "share",
                              "maximum_iops", "minimum_iops"}
    for op, params in (("mount_share", {"SharePath": SHARE}),
                       ("unmount_share", {"SharePath": "\\\\hv01\\local"}),
                       ("detach_vhd", {"VMName": "vm2", "SharePath": SHARE,
                                       "DiskName": "img0.vhdx"}),
                       ("host_info", {})):
        assert set(OPERATIONS[op].result_fields) <= set(run(host, op, **params).result), op


def test_unknown_operation_is_an_unexpected_envelope():
    doc = make_host().handler("format_disk", {})
    with pytest.raises(exceptions.UnexpectedHostError, match="format_disk"):
        envelope.interpret(doc, operation="format_disk")


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

def test_state_round_trips_and_never_holds_a_password():
    host = make_host()
    secret_cred = Credential("other", Secret("a-password-only-here"))
    host.add_share("\\\\fs02\\v", credential=secret_cred)
    host.add_mapping("\\\\fs02\\v", credential=secret_cred, status="Disconnected")
    attach(host, MaximumIops=300)
    host.fail_next("detach_vhd", "access_denied", stage="remove")
    with host.hold_lock("vm:abc"):
        state = host.to_dict()
    text = json.dumps(state)
    assert "a-password-only-here" not in text and PASSWORD not in text
    assert state["locks_held"] == ["vm:abc"]
    again = HostDouble.from_dict(json.loads(text), secrets=host.secrets)
    assert again.to_dict() == state
    assert again.shares["\\\\fs02\\v"].credential == secret_cred


def test_from_dict_rejects_unknown_keys_and_password_refs():
    with pytest.raises(ValueError, match="unknown state key"):
        HostDouble.from_dict({"vm": {}})
    with pytest.raises(ValueError, match="unknown key"):
        HostDouble.from_dict({"vms": {"a": {"generaton": 2}}})
    with pytest.raises(ValueError, match="password_ref 'nope'"):
        HostDouble.from_dict({"shares": {SHARE: {"credential": {"username": "u",
                                                                "password_ref": "nope"}}}})


def test_building_refuses_impossible_hosts():
    host = make_host()
    with pytest.raises(ValueError, match="exists"):
        host.add_vm("VM2")
    with pytest.raises(ValueError, match="IDE"):
        host.attach_disk("vm2", "x.vhdx", "IDE", 0, 0)
    with pytest.raises(ValueError, match="taken"):
        host.attach_disk("vm1", "x.vhdx", "IDE", 1, 0)  # the DVD drive
    with pytest.raises(ValueError, match="no share"):
        host.add_file("\\\\fs09\\x\\a.vhdx")


def test_calls_are_recorded_with_secrets_masked():
    host = make_host()
    attach(host)
    with pytest.raises(exceptions.VMNotFound):
        attach(host, vm="nope")
    calls = host.calls
    assert [c.outcome for c in calls] == ["ok", "vm_not_found"]
    assert calls[0].parameters["ShareCredential"] == {"username": "svc", "password": "***"}
    assert PASSWORD not in repr(calls)


# --------------------------------------------------------------------------
# The extension seam (iSCSI adds operations the same way)
# --------------------------------------------------------------------------

class _EchoMixin:
    STAGES = dict(HostDouble.STAGES, host_info=("probe",))

    def op_echo_vms(self, call, params):
        call.stage(None)
        return {"names": sorted(self.vms)}

    def op_host_info(self, call, params):
        call.stage("probe")
        return super().op_host_info(call, params)


class _ExtendedDouble(_EchoMixin, HostDouble):
    pass


def test_a_mixin_adds_operations_and_stages_without_touching_the_double():
    host = _ExtendedDouble()
    host.add_vm("b")
    host.add_vm("a")
    assert host.handler("echo_vms", {}) == envelope.ok({"names": ["a", "b"]})
    host.fail_next("host_info", "unexpected", stage="probe")
    with pytest.raises(exceptions.UnexpectedHostError):
        host.executor().run(scripts.render("host_info"))
    assert host.executor().run(scripts.render("host_info")).result["host_name"] == "hv01"


# --------------------------------------------------------------------------
# Lock wait, VM state, share users
# --------------------------------------------------------------------------

def test_a_negative_lock_wait_is_invalid_parameters_in_the_double_and_in_python():
    host = make_host()
    doc = host.handler(scripts.render("unmount_share"),
                       {"SharePath": SHARE, "LockTimeoutSeconds": -1})
    assert doc["ok"] is False
    assert doc["error"]["kind"] == "invalid_parameters"
    assert doc["error"]["data"] == {"field": "LockTimeoutSeconds"}
    doc = host.handler(scripts.render("unmount_share"),
                       {"SharePath": SHARE, "LockTimeoutSeconds": 0})
    assert doc["ok"] is True
    with pytest.raises(exceptions.InvalidInput) as caught:
        run(host, "detach_vhd", VMName="vm2", SharePath=SHARE, DiskName="img0.vhdx",
            LockTimeoutSeconds=-5)
    assert caught.value.field == "LockTimeoutSeconds"


@pytest.mark.parametrize("state", ["Saved", "Paused"])
def test_attach_and_detach_refuse_a_vm_that_is_neither_off_nor_running(state):
    host = make_host()
    attach(host)
    host.set_state("vm2", state)
    assert host.vm("vm2").power_state == state and not host.vm("vm2").running
    mappings = host.mappings
    with pytest.raises(exceptions.InvalidState) as caught:
        attach(host, image="img1.vhdx")
    assert "vm2" in str(caught.value) and state in str(caught.value)
    with pytest.raises(exceptions.InvalidState):
        run(host, "detach_vhd", VMName="vm2", SharePath=SHARE, DiskName="img0.vhdx")
    assert [d.path for d in host.disks_of("vm2")] == [SHARE + "\\img0.vhdx"]
    assert host.mappings == mappings
    # nothing to remove: no obstacle
    result = run(host, "detach_vhd", VMName="vm2", SharePath=SHARE, DiskName="img3.vhdx").result
    assert result["changed"] is False
    host.set_state("vm2", "Running")
    assert attach(host, image="img1.vhdx")["changed"] is True
    with pytest.raises(ValueError):
        host.set_state("vm2", "Hibernated")


def test_unmount_sees_dvd_images_checkpoint_images_and_vm_folders_on_the_share():
    host = make_host()
    run(host, "mount_share", SharePath=SHARE, ShareCredential=CRED)
    host.add_vm("vm3", generation=1, dvd_drives=[("IDE", 1, 0, SHARE + "\\iso\\x.iso")])
    host.add_vm("vm4", configuration_location=SHARE.upper() + "\\")
    host.add_vm("vm5", scsi_controllers=1)
    host.attach_disk("vm5", "D:\\vm5\\c.avhdx", image=SHARE + "\\img2.vhdx")
    with pytest.raises(exceptions.DiskInUse) as caught:
        run(host, "unmount_share", SharePath=SHARE)
    assert caught.value.data["vms"] == ["vm3", "vm4", "vm5"]
    state = host.to_dict()
    assert state["vms"]["vm3"]["dvd_drives"][0]["path"] == SHARE + "\\iso\\x.iso"
    assert state["vms"]["vm4"]["configuration_location"] == SHARE.upper() + "\\"
    assert HostDouble.from_dict(state).to_dict() == state
