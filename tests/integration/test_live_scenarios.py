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
