"""Real scenarios against a live Hyper-V host (skipped unless configured)."""

from __future__ import annotations

import ntpath
import threading

import pytest

from smbvol import VolumeOps, exceptions


def connection_info(live, image_path, **extra):
    data = {"export": live.export, "name": ntpath.basename(image_path),
            "volume_id": "live-" + ntpath.basename(image_path)}
    if live.share_credential is not None:
        data["options"] = "-o username=%s,password=%s" % (
            live.share_credential.username, live.share_credential.password.reveal())
    data.update(extra)
    return {"driver_volume_type": "smbfs", "data": data, "serial": data["volume_id"]}


@pytest.fixture
def ops(live, executors, transport):
    return VolumeOps(executors[transport], live.conf(transport))


def vhdx_images(lab_state):
    return [p for p in lab_state["images"] if p.endswith(".vhdx")]


@pytest.mark.parametrize("generation", ["gen2", "gen1"])
def test_attach_detach_idempotent(ops, live, lab_state, generation):
    vm = lab_state["vms"][generation]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[0])
    first = ops.attach_volume(ci, vm)
    again = ops.attach_volume(ci, vm)
    assert first.changed and not again.changed
    assert (again.controller_number, again.controller_location) == \
        (first.controller_number, first.controller_location)
    paths = [a.disk_path.lower() for a in ops.list_attachments(vm)]
    assert first.disk_path.lower() in paths
    assert ops.detach_volume(ci, vm).changed
    assert not ops.detach_volume(ci, vm).changed
    assert first.disk_path.lower() not in [a.disk_path.lower() for a in ops.list_attachments(vm)]


def test_qos_visible_through_get_vmharddiskdrive(ops, live, lab_state):
    vm = lab_state["vms"]["gen2"]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[1],
                         qos_specs={"total_iops_sec": 500, "min_iops_sec": 100})
    att = ops.attach_volume(ci, vm)
    try:
        listed = [a for a in ops.list_attachments(vm)
                  if a.disk_path.lower() == att.disk_path.lower()]
        assert listed and listed[0].maximum_iops == 500 and listed[0].minimum_iops == 100
    finally:
        ops.detach_volume(ci, vm)


def test_unmount_refused_while_in_use(ops, live, lab_state):
    vm = lab_state["vms"]["gen2"]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[2])
    ops.attach_volume(ci, vm)
    try:
        for force in (False, True):  # even forced, a share in use stays mapped
            res = ops.disconnect_volume(ci, force=force)
            assert not res.removed and vm in res.in_use_by
    finally:
        ops.detach_volume(ci, vm)


def test_failed_attach_changes_nothing(ops, live, lab_state):
    gen2, gen1 = lab_state["vms"]["gen2"]["name"], lab_state["vms"]["gen1"]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[3])
    ops.attach_volume(ci, gen2)
    before = sorted(a.disk_path for a in ops.list_attachments(gen1))
    try:
        with pytest.raises(exceptions.SmbvolError):
            ops.attach_volume(ci, gen1, disk_bus="ide")  # the image is held by gen2
        assert sorted(a.disk_path for a in ops.list_attachments(gen1)) == before
    finally:
        ops.detach_volume(ci, gen2)


def test_two_clients_attach_to_one_vm_at_once(live, lab_state, transport):
    from smbvol.executors import get_executor

    vm = lab_state["vms"]["gen2"]["name"]
    images = vhdx_images(lab_state)[:2]
    results, errors = {}, []

    def client(i):
        with get_executor(live.conf(transport), host=live.host) as ex:
            try:
                results[i] = VolumeOps(ex, live.conf(transport)).attach_volume(
                    connection_info(live, images[i]), vm)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        slots = {(r.controller_number, r.controller_location) for r in results.values()}
        assert len(slots) == 2
    finally:
        with get_executor(live.conf(transport), host=live.host) as ex:
            ops = VolumeOps(ex, live.conf(transport))
            for i in range(2):
                ops.detach_volume(connection_info(live, images[i]), vm)


def test_hot_add_to_running_gen2_and_global_mapping(ops, live, lab_state, executors, transport):
    from smbvol import scripts
    from tests.integration import lab

    ex = executors[transport]
    vm = lab_state["vms"]["gen2"]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[0])
    info = ex.run(scripts.render("host_info")).result
    assert ex.run(lab.render_lab("lab_power"), {"VMName": vm, "Running": True}
                  ).result["state"] == "Running"
    try:
        att = ops.attach_volume(ci, vm)
        assert att.controller_type == "SCSI" and att.changed
        if info["smb_global_mapping"] and att.mapping_kind != "none":
            assert att.mapping_kind == "global"
        assert ops.detach_volume(ci, vm).changed
    finally:
        ex.run(lab.render_lab("lab_power"), {"VMName": vm, "Running": False})


# --------------------------------------------------------------------------
# What only a Windows host can settle (host-side defects: task runner, Server 2016, the
# anonymous probe of a network logon, checkpoints, read-only LUNs)
# --------------------------------------------------------------------------

def _smb_global_mapping(ex) -> bool:
    from smbvol import scripts

    return bool(ex.run(scripts.render("host_info")).result["smb_global_mapping"])


def _unmount(ex, share_path):
    from smbvol import scripts

    return ex.run(scripts.render("unmount_share"), {"SharePath": share_path}).result


def test_mapping_via_scheduled_task_creates_the_global_mapping(live, lab_state, executors,
                                                               transport):
    """The task runner starts in a fresh powershell.exe as SYSTEM: it must load System.Security
    for ProtectedData, read its job through Get-Acl and make the global mapping, over a remote
    session without CredSSP (the double-hop workaround)."""
    from smbvol import scripts

    ex = executors[transport]
    if live.share_credential is None:
        pytest.skip("needs SMBVOL_TEST_SHARE_USERNAME/PASSWORD: the task maps with credentials")
    if not _smb_global_mapping(ex):
        pytest.skip("the host has no New-SmbGlobalMapping (Windows Server 2016)")
    _unmount(ex, live.share_path)
    image = ntpath.basename(vhdx_images(lab_state)[0])
    try:
        made = ex.run(scripts.render("mount_share", mapping_via_task=True),
                      {"SharePath": live.share_path, "DiskName": image,
                       "ShareCredential": live.share_credential}, timeout=300).result
        assert made["mapping_kind"] == "global" and made["mapping_created"], made
        again = ex.run(scripts.render("mount_share"), {"SharePath": live.share_path}).result
        assert again["mapping_kind"] == "global" and not again["mapping_created"]
    finally:
        removed = _unmount(ex, live.share_path)
    assert removed["removed"] and removed["owned"], removed


def test_windows_server_2016_refuses_credentials_and_leaves_no_mapping(live, lab_state,
                                                                       executors, transport):
    """Where New-SmbGlobalMapping is missing, a mapping made with credentials would live only
    in the remote session: credentials are refused and no mapping is left behind."""
    from smbvol import scripts

    ex = executors[transport]
    if _smb_global_mapping(ex):
        pytest.skip("the host has New-SmbGlobalMapping: only Windows Server 2016 refuses")
    if live.share_credential is None:
        pytest.skip("needs SMBVOL_TEST_SHARE_USERNAME/PASSWORD")
    for task in (False, True):
        with pytest.raises(exceptions.InvalidParameters) as info:
            ex.run(scripts.render("mount_share", mapping_via_task=task),
                   {"SharePath": live.share_path, "ShareCredential": live.share_credential})
        assert info.value.data.get("field") == "ShareCredential"
    after = ex.run(scripts.render("mount_share"), {"SharePath": live.share_path}).result
    assert after["mapping_kind"] == "none" and not after["mapping_created"]


def test_network_logon_without_credentials_leaves_the_image_check_to_hyper_v(
        ops, live, lab_state, executors, transport):
    """A WinRM/PSRP session is a network logon: without a mapping or credentials it reaches
    the share anonymously. The probe's refusal must be a warning, and the attach works when
    the host's computer account (VMMS) has access, as the README recommends."""
    if live.share_credential is not None:
        pytest.skip("the lab share needs credentials; this scenario needs a share open to the "
                    "host's computer account (SMBVOL_TEST_SHARE_USERNAME unset)")
    ex = executors[transport]
    _unmount(ex, live.share_path)
    vm = lab_state["vms"]["gen2"]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[1])
    att = ops.attach_volume(ci, vm)
    try:
        assert att.mapping_kind == "none"
        assert att.disk_path.lower() in [a.disk_path.lower() for a in ops.list_attachments(vm)]
    finally:
        ops.detach_volume(ci, vm)


def test_a_checkpoint_keeps_the_share_in_use_after_the_image_is_detached(
        ops, live, lab_state, executors, transport):
    from tests.integration import lab

    ex = executors[transport]
    vm = lab_state["vms"]["gen2"]["name"]
    ci = connection_info(live, vhdx_images(lab_state)[2])
    ops.attach_volume(ci, vm)
    name = live.prefix + "-checkpoint"
    ex.run(lab.render_lab("lab_checkpoint"), {"VMName": vm, "Name": name}, timeout=300)
    try:
        ops.detach_volume(ci, vm)
        res = ops.disconnect_volume(ci)
        assert not res.removed and vm in res.in_use_by, res
    finally:
        ex.run(lab.render_lab("lab_checkpoint"), {"VMName": vm, "Name": name, "Remove": True},
               timeout=600)
        ops.detach_volume(ci, vm)


def test_a_passthrough_lun_reaches_the_vm_writable(live, lab_state, executors, transport):
    """Under the default SAN policy (OfflineShared) a new LUN is offline and read-only; the
    attach must clear the read-only flag. Needs SMBVOL_TEST_ISCSI_PORTAL, _IQN and _LUN."""
    import os

    from smbvol import scripts
    from tests.integration import lab

    missing = [n for n in lab.ISCSI_VARIABLES if not os.environ.get(n)]
    if missing:
        pytest.skip("no iSCSI LUN for the live suite: set %s" % ", ".join(missing))
    ex = executors[transport]
    vm = lab_state["vms"]["gen2"]["name"]
    target = {"TargetPortals": [os.environ["SMBVOL_TEST_ISCSI_PORTAL"]],
              "TargetIqns": [os.environ["SMBVOL_TEST_ISCSI_IQN"]],
              "TargetLuns": [int(os.environ["SMBVOL_TEST_ISCSI_LUN"])]}
    att = ex.run(scripts.render("iscsi_attach"), dict(target, VMName=vm), timeout=300).result
    try:
        disk = ex.run(lab.render_lab("lab_disk"), {"Number": att["disk_number"]}).result
        assert disk["is_offline"] and not disk["is_read_only"], disk
    finally:
        ex.run(scripts.render("iscsi_detach"), dict(target, VMName=vm))
        ex.run(scripts.render("iscsi_disconnect"), target)
