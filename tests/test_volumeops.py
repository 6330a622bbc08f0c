"""VolumeOps against the host double: the Nova-facing API end to end (envelopes and all)."""

from __future__ import annotations

import contextlib
import logging
import threading

import pytest

import smbvol
from smbvol import exceptions, opts, results
from smbvol.executors.fake import FakeExecutor
from smbvol.secret import Credential
from smbvol.testing import HostDouble

PASSWORD = "Xy9!distinctive-share-pw"
OTHER_PASSWORD = "Qw3!other-server-pw"
SHARE = r"\\fs01\vols"
CRED = Credential("svc", PASSWORD)


def ci(name="volume-1.vhdx", export="//fs01/vols", volume_id=None, password=PASSWORD,
       user="svc", **data):
    """A Cinder SMB connection_info (with Nova's serial)."""
    volume_id = volume_id or "vol-" + name.split(".")[0]
    if password is not None:
        data.setdefault("options", "-o username=%s,password=%s" % (user, password))
    return {"driver_volume_type": "smbfs",
            "data": dict(export=export, name=name, volume_id=volume_id, **data),
            "serial": volume_id}


def bdi(*infos):
    return {"block_device_mapping": [{"connection_info": i, "mount_device": "/dev/sd%s" % c}
                                     for i, c in zip(infos, "bcdefgh")]}


@pytest.fixture
def conf():
    return opts.new_conf(hyperv_volume_attach_retry_count=2,
                         hyperv_volume_attach_retry_interval=3)


@pytest.fixture
def host():
    h = HostDouble("hv01")
    h.add_vm("instance-1")
    h.add_vm("instance-2")
    h.add_share(SHARE, files=["volume-%d.vhdx" % i for i in range(1, 70)], credential=CRED)
    return h


class Sleeps:
    """An injected sleep: records the intervals, never waits."""

    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def ops(host, conf, sleeps):
    return smbvol.VolumeOps(host.executor(), conf, sleep=sleeps)


def mapped(host, root=SHARE):
    return [m for m in host.mappings if m.remote_path.lower() == root.lower()]


def ops_of(host):
    return [c.operation for c in host.calls]


# -- attach / detach --------------------------------------------------------------------------

def test_volumeops_is_exported():
    from smbvol.volumeops import VolumeOps
    assert smbvol.VolumeOps is VolumeOps


def test_attach_creates_mapping_and_uses_first_slot(ops, host):
    att = ops.attach_volume(ci(), "instance-1")
    assert isinstance(att, results.Attachment)
    assert (att.controller_type, att.controller_number, att.controller_location) == ("SCSI", 0, 0)
    assert att.disk_path == SHARE + r"\volume-1.vhdx"
    assert att.changed and att.mapping_created and att.mapping_kind == "global"
    assert att.volume_id == "vol-volume-1" and att.vm_name == "instance-1" and att.host == "hv01"
    assert [d.path for d in host.disks_of("instance-1")] == [SHARE + r"\volume-1.vhdx"]
    (m,) = mapped(host)
    assert m.owned and m.credential.username == "svc"
    # One read-only look at the VM's disks first (what a failed attach must never detach).
    assert ops_of(host) == ["list_attachments", "attach_vhd"]


def test_attach_and_detach_are_idempotent(ops, host):
    first = ops.attach_volume(ci(), "instance-1")
    again = ops.attach_volume(ci(), "instance-1")
    assert not again.changed and not again.mapping_created
    assert (again.controller_number, again.controller_location) == (
        first.controller_number, first.controller_location)
    assert len(host.disks_of("instance-1")) == 1
    det = ops.detach_volume(ci(), "instance-1")
    assert isinstance(det, results.Detachment)
    assert det.changed and det.removed and det.controller_location == 0
    assert host.disks_of("instance-1") == ()
    det2 = ops.detach_volume(ci(), "instance-1")
    assert not det2.changed and not det2.removed
    # Detach leaves the share connected; disconnect removes the mapping smbvol made.
    assert len(mapped(host)) == 1
    disc = ops.disconnect_volume(ci())
    assert isinstance(disc, results.ShareDisconnection)
    assert disc.removed and disc.in_use_by == () and mapped(host) == []
    assert not ops.disconnect_volume(ci()).removed


def test_detach_only_removes_the_asked_disk(ops, host):
    ops.attach_volume(ci("volume-1.vhdx"), "instance-1")
    ops.attach_volume(ci("volume-2.vhdx"), "instance-1")
    ops.detach_volume(ci("volume-1.vhdx"), "instance-1")
    assert [d.path for d in host.disks_of("instance-1")] == [SHARE + r"\volume-2.vhdx"]


def test_slot_choice_fills_gaps_then_next_controller(ops, host, conf):
    host.add_vm("big", scsi_controllers=2, running=True)
    host.fill_scsi("big", except_slots=[(0, 17)] + [(1, n) for n in range(64)])
    a = ops.attach_volume(ci("volume-1.vhdx"), "big")
    assert (a.controller_type, a.controller_number, a.controller_location) == ("SCSI", 0, 17)
    b = ops.attach_volume(ci("volume-2.vhdx"), "big")
    assert (b.controller_number, b.controller_location) == (1, 0)


def test_no_free_slot_on_a_full_running_vm(ops, host):
    host.add_vm("full", scsi_controllers=1, running=True)
    host.fill_scsi("full")
    before = host.to_dict()
    with pytest.raises(exceptions.NoFreeSlot) as err:
        ops.attach_volume(ci("volume-3.vhdx"), "full")
    text = str(err.value)
    assert "full" in text and "vol-volume-3" in text and SHARE in text
    assert "detach a disk" in text
    assert host.to_dict() == before  # the mapping this attach created was removed again
    # A host error: not retried, and no client clean-up (the script rolled back itself).
    assert ops_of(host) == ["list_attachments", "attach_vhd"]


def test_a_controller_is_added_to_a_vm_that_is_off_until_four(ops, host):
    host.add_vm("off", scsi_controllers=3, running=False)
    host.fill_scsi("off")
    a = ops.attach_volume(ci("volume-1.vhdx"), "off")
    assert (a.controller_number, a.controller_location) == (3, 0)
    host.fill_scsi("off")
    with pytest.raises(exceptions.NoFreeSlot):
        ops.attach_volume(ci("volume-2.vhdx"), "off")


def test_64_threads_attach_64_volumes_to_one_vm(conf):
    """smbvol's own VM lock keeps the slots apart: the double runs without a host mutex
    (``serialize=False``) and lets other threads run between choosing a free slot and adding
    the disk there, so without the lock two attaches would take the same slot.  (The
    templates' host-side named mutex, which only Windows has, is not exercised.)"""
    host = HostDouble("hv01", serialize=False)
    host.add_vm("instance-1")
    host.add_share(SHARE, files=["volume-%d.vhdx" % i for i in range(1, 65)], credential=CRED)
    ops = smbvol.VolumeOps(host.executor(), conf, sleep=Sleeps())
    barrier = threading.Barrier(64)
    found, errors = [], []

    def worker(i):
        barrier.wait()
        try:
            found.append(ops.attach_volume(ci("volume-%d.vhdx" % (i + 1)), "instance-1"))
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    slots = {(a.controller_type, a.controller_number, a.controller_location) for a in found}
    assert len(found) == 64 and len(slots) == 64
    assert slots == {("SCSI", 0, n) for n in range(64)}
    assert len({a.disk_path for a in found}) == 64
    disks = host.disks_of("instance-1")  # none overwritten by another on the same slot
    assert len(disks) == 64 and len({d.slot for d in disks}) == 64
    assert len(mapped(host)) == 1  # one mapping for the share, not 64
    assert sum(1 for a in found if a.mapping_created) == 1


def test_attach_volumes_runs_one_invocation(ops, host):
    infos = [ci("volume-1.vhdx"), ci("volume-2.vhdx"), ci("volume-3.vhdx")]
    atts = ops.attach_volumes(infos, "instance-1")
    assert ops_of(host) == ["list_attachments", "attach_vhds"]
    assert [a.volume_id for a in atts] == ["vol-volume-1", "vol-volume-2", "vol-volume-3"]
    assert [a.controller_location for a in atts] == [0, 1, 2]
    assert all(a.changed for a in atts)
    assert ops.attach_volumes([], "instance-1") == []


def test_attach_volumes_is_all_or_nothing(ops, host):
    before = host.to_dict()
    host.fail_next("attach_vhds", "unexpected", stage="attach", skip=1)
    with pytest.raises(exceptions.UnexpectedHostError) as err:
        ops.attach_volumes([ci("volume-1.vhdx"), ci("volume-2.vhdx")], "instance-1")
    assert "instance-1" in str(err.value) and "vol-volume-2" in str(err.value)
    assert host.to_dict() == before


def test_attach_volumes_refuses_mixed_driver_types(ops, host):
    iscsi = {"driver_volume_type": "iscsi", "data": {}}
    with pytest.raises(exceptions.InvalidInput) as err:
        ops.attach_volumes([ci(), iscsi], "instance-1")
    assert err.value.field == "driver_volume_type"
    assert host.calls == ()


# -- sharing a share between volumes and VMs --------------------------------------------------

def test_unmount_refused_while_another_vm_uses_the_share(ops, host):
    ops.attach_volume(ci("volume-1.vhdx"), "instance-1")
    ops.attach_volume(ci("volume-2.vhdx"), "instance-2")
    ops.detach_volume(ci("volume-1.vhdx"), "instance-1")
    for force in (False, True):
        disc = ops.disconnect_volume(ci("volume-1.vhdx"), force=force)
        assert not disc.removed and not disc.changed
        assert disc.in_use_by == ("instance-2",)
        assert disc.share_path.lower() == SHARE.lower()
        assert len(mapped(host)) == 1
    assert [d.path for d in host.disks_of("instance-2")] == [SHARE + r"\volume-2.vhdx"]


def test_nova_bug_1461081_share_not_unmounted_during_attach(host, conf):
    """A disconnect of the share while a volume on it is being attached waits for the attach,
    then keeps the share; it never unmaps it under the attach."""
    entered, release = threading.Event(), threading.Event()
    waiting = threading.Event()

    def handler(script, params):
        if script.name == "attach_vhd":
            entered.set()
            assert release.wait(20), "the test never released the attach"
        return host.handler(script, params)

    ops = smbvol.VolumeOps(FakeExecutor(handler, host="hv01"), conf, sleep=Sleeps())
    ops.connect_volume(ci("volume-1.vhdx"))  # the share is mapped, nothing attached yet

    class LockWatch(logging.Handler):
        def emit(self, record):
            if (record.threadName == "disconnect" and "waiting for the share lock"
                    in record.getMessage()):
                waiting.set()

    watch = LockWatch(level=logging.DEBUG)
    lock_log = logging.getLogger("smbvol.locks")
    old_level = lock_log.level
    lock_log.addHandler(watch)
    lock_log.setLevel(logging.DEBUG)
    out = {}
    try:
        attach = threading.Thread(target=lambda: out.setdefault(
            "att", ops.attach_volume(ci("volume-2.vhdx"), "instance-1")), name="attach")
        attach.start()
        assert entered.wait(20)
        disconnect = threading.Thread(target=lambda: out.setdefault(
            "disc", ops.disconnect_volume(ci("volume-1.vhdx"))), name="disconnect")
        disconnect.start()
        assert waiting.wait(20)
        release.set()
        attach.join(20)
        disconnect.join(20)
    finally:
        release.set()
        lock_log.removeHandler(watch)
        lock_log.setLevel(old_level)
    calls = [(c.operation, c.outcome) for c in host.calls]
    assert calls == [("mount_share", "ok"), ("list_attachments", "ok"), ("attach_vhd", "ok"),
                     ("unmount_share", "disk_in_use")]
    assert out["att"].changed
    assert not out["disc"].removed and out["disc"].in_use_by == ("instance-1",)
    assert len(mapped(host)) == 1


def test_detach_racing_attach_on_the_same_share(host, conf):
    """Nova's detach (detach + disconnect) of one volume racing the attach of another on the
    same share: whatever the order, the share is mapped whenever a disk lies on it."""
    ops = smbvol.VolumeOps(host.executor(), conf, sleep=Sleeps())
    for round_ in range(20):
        a, b = ci("volume-1.vhdx"), ci("volume-%d.vhdx" % (round_ + 2))
        ops.attach_volume(a, "instance-1")
        errors = _race(lambda a=a: (ops.detach_volume(a, "instance-1"),
                                    ops.disconnect_volume(a)),
                       lambda b=b: ops.attach_volume(b, "instance-2"))
        assert errors == []
        assert [d.path for d in host.disks_of("instance-2")][-1].endswith(b["data"]["name"])
        assert len(mapped(host)) == 1 and mapped(host)[0].status == "OK"
        ops.detach_volume(b, "instance-2")


def _race(*bodies):
    """Run ``bodies`` in threads released at once; the exceptions they raised."""
    barrier = threading.Barrier(len(bodies))
    errors = []

    def run(body):
        barrier.wait()
        try:
            body()
        except Exception as exc:  # collected for the caller to assert on
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return errors


# -- SMB semantics ----------------------------------------------------------------------------

def test_read_only_volume_is_refused_before_anything_runs(ops, host):
    with pytest.raises(exceptions.InvalidInput) as err:
        ops.attach_volume(ci(access_mode="ro"), "instance-1")
    assert err.value.field == "access_mode"
    assert "allow_read_only_as_read_write" in str(err.value)
    assert "instance-1" in str(err.value) and "vol-volume-1" in str(err.value)
    assert host.calls == ()
    with pytest.raises(exceptions.InvalidInput):
        ops.plan_attach(ci(access_mode="ro"), "instance-1")


def test_read_only_allowed_by_option(host, conf, caplog):
    conf.set_override("allow_read_only_as_read_write", True, group="hyperv")
    ops = smbvol.VolumeOps(host.executor(), conf, sleep=Sleeps())
    with caplog.at_level(logging.WARNING):
        att = ops.attach_volume(ci(access_mode="ro"), "instance-1")
    assert att.changed
    assert any(r.levelno == logging.WARNING and "READ-ONLY" in r.getMessage()
               for r in caplog.records)


def test_qos_is_normalised_and_applied(ops, host, caplog):
    specs = {"total_bytes_sec": 819200, "min_iops_sec": "20", "read_bytes_sec": 1}
    with caplog.at_level(logging.WARNING):
        ops.attach_volume(ci(qos_specs=specs), "instance-1")
    (disk,) = host.disks_of("instance-1")
    assert (disk.maximum_iops, disk.minimum_iops) == (100, 20)
    assert len([r for r in caplog.records if "read_bytes_sec" in r.getMessage()]) == 1
    # Attaching again with other QoS updates it in place.
    again = ops.attach_volume(ci(qos_specs={"total_iops_sec": 500, "min_iops_sec": 5}),
                              "instance-1")
    assert again.changed
    (disk,) = host.disks_of("instance-1")
    assert (disk.maximum_iops, disk.minimum_iops) == (500, 5)
    listed = ops.list_attachments("instance-1")
    assert listed[0].maximum_iops == 500


def test_rollback_after_a_failed_attach(ops, host):
    before = host.to_dict()
    host.fail_next("attach_vhd", "unexpected", "Add-VMHardDiskDrive failed", stage="attach")
    with pytest.raises(exceptions.UnexpectedHostError) as err:
        ops.attach_volume(ci(), "instance-1")
    assert "Add-VMHardDiskDrive failed" in str(err.value)
    assert host.to_dict() == before
    assert mapped(host) == []
    # A failure at the QoS step removes the disk it added, and the mapping.
    host.fail_next("attach_vhd", "unexpected", stage="qos")
    with pytest.raises(exceptions.UnexpectedHostError):
        ops.attach_volume(ci(qos_specs={"total_iops_sec": 10}), "instance-1")
    assert host.to_dict() == before


def test_ipv6_share(ops, host):
    root = r"\\fd00--1.ipv6-literal.net\vols"
    host.add_share(root, files=["v6.vhdx"])
    info = ci("v6.vhdx", export="//[fd00::1]/vols", password=None)
    att = ops.attach_volume(info, "instance-1")
    assert att.disk_path == root + r"\v6.vhdx"
    assert ops.get_disk_resource_path(info) == root + r"\v6.vhdx"
    ops.detach_volume(info, "instance-1")
    assert host.disks_of("instance-1") == ()


@pytest.mark.parametrize("server", ["localhost", "127.0.0.1", "hv01", "[::1]"])
def test_loopback_share_uses_the_local_path(ops, host, server):
    host.add_share(r"\\hv01\local", files=["lo.vhdx"], local_path=r"D:\Shares\local")
    info = ci("lo.vhdx", export="//%s/local" % server, password=None)
    conn = ops.connect_volume(info)
    assert conn.local and conn.disk_path == r"D:\Shares\local\lo.vhdx"
    assert not conn.mapping_created
    att = ops.attach_volume(info, "instance-1")
    assert att.disk_path == r"D:\Shares\local\lo.vhdx" and not att.mapping_created
    assert ops.get_disk_resource_path(info) == r"D:\Shares\local\lo.vhdx"
    assert ops.get_disk_path_mapping(bdi(info)) == {"vol-lo": r"D:\Shares\local\lo.vhdx"}
    assert ops.detach_volume(info, "instance-1").removed
    assert host.mappings == ()
    assert not ops.disconnect_volume(info).removed


def test_stale_mapping_is_recreated(ops, host):
    host.add_mapping(SHARE, status="Disconnected", credential=CRED, owned=True)
    conn = ops.connect_volume(ci())
    assert conn.mapping_created and conn.changed
    assert any("Disconnected" in w for w in conn.warnings)
    (m,) = mapped(host)
    assert m.status == "OK" and m.owned


def test_healthy_foreign_mapping_is_reused_and_kept(ops, host):
    host.add_mapping(SHARE, credential=CRED, owned=False)
    assert not ops.connect_volume(ci()).mapping_created
    disc = ops.disconnect_volume(ci())
    assert not disc.removed and disc.owned is False
    assert len(mapped(host)) == 1
    assert ops.disconnect_volume(ci(), force=True).removed


def test_1219_conflict(ops, host, caplog):
    host.add_share(r"\\fs01\other", credential=Credential("other", OTHER_PASSWORD))
    host.add_mapping(r"\\fs01\other", credential=Credential("other", OTHER_PASSWORD))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(exceptions.MappingConflict) as err:
            ops.attach_volume(ci(), "instance-1")
    text = str(err.value)
    assert "1219" in text and "same credentials" in text
    assert "instance-1" in text and SHARE in text and "vol-volume-1" in text
    assert err.value.native_code == 1219
    for secret in (PASSWORD, OTHER_PASSWORD):
        assert secret not in text and secret not in caplog.text
    assert ops_of(host) == ["list_attachments", "attach_vhd"]


def test_double_hop(host, conf, caplog):
    remote = HostDouble("hv01", remote_session=True)
    remote.add_vm("instance-1")
    remote.add_share(SHARE, files=["volume-1.vhdx"], credential=CRED)
    ops = smbvol.VolumeOps(remote.executor(), conf, sleep=Sleeps())
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(exceptions.LogonSessionMissing) as err:
            ops.attach_volume(ci(), "instance-1")
    text = str(err.value)
    for what in ("CredSSP", "Kerberos", "smb_mapping_via_scheduled_task", "instance-1",
                 SHARE, "vol-volume-1"):
        assert what in text
    assert PASSWORD not in text and PASSWORD not in caplog.text
    assert remote.mappings == ()
    conf.set_override("smb_mapping_via_scheduled_task", True, group="hyperv")
    ops = smbvol.VolumeOps(remote.executor(), conf, sleep=Sleeps())
    assert ops.plan_attach(ci(), "instance-1").options == {"mapping_via_task": True}
    att = ops.attach_volume(ci(), "instance-1")
    assert att.changed and att.mapping_kind == "global"
    assert remote.calls[-1].options == {"mapping_via_task": True}


# -- retries ----------------------------------------------------------------------------------

def test_transient_errors_are_retried_then_volume_operation_failed(host, conf, sleeps, caplog):
    unreachable = HostDouble("hv01")
    unreachable.add_vm("instance-1")
    unreachable.add_share(SHARE, files=["volume-1.vhdx"], credential=CRED, reachable=False)
    ops = smbvol.VolumeOps(unreachable.executor(), conf, sleep=sleeps)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(exceptions.VolumeOperationFailed) as err:
            ops.attach_volume(ci(), "instance-1")
    e = err.value
    assert e.volume_id == "vol-volume-1"
    assert isinstance(e.__cause__, exceptions.ShareUnreachable)
    text = str(e)
    assert "3 attempt" in text and "instance-1" in text and SHARE in text
    assert sleeps.calls == [3, 3]
    assert [c.operation for c in unreachable.calls] == ["list_attachments"] + ["attach_vhd"] * 3
    assert unreachable.mappings == () and unreachable.disks_of("instance-1") == ()
    assert PASSWORD not in caplog.text


def test_host_busy_is_retried_until_the_lock_is_free(host, conf):
    held = host.hold_lock(host.vm_lock_key("instance-1"))
    held.__enter__()
    seen = []

    def sleep(seconds):
        seen.append(seconds)
        held.__exit__(None, None, None)  # the other client finishes while we wait

    ops = smbvol.VolumeOps(host.executor(), conf, sleep=sleep)
    att = ops.attach_volume(ci(), "instance-1")
    assert att.changed and seen == [3]
    assert [(c.operation, c.outcome) for c in host.calls] == [
        ("list_attachments", "ok"), ("attach_vhd", "host_busy"), ("attach_vhd", "ok")]


def test_permanent_errors_are_not_retried(ops, host, sleeps):
    with pytest.raises(exceptions.VMNotFound) as err:
        ops.attach_volume(ci(), "no-such-vm")
    assert "no-such-vm" in str(err.value) and "vol-volume-1" in str(err.value)
    # The look at the VM's disks already finds no VM: nothing is attempted on the host.
    assert sleeps.calls == [] and ops_of(host) == ["list_attachments"]


def test_retry_count_zero_means_one_try(host, sleeps):
    conf = opts.new_conf(hyperv_volume_attach_retry_count=0)
    ops = smbvol.VolumeOps(host.executor(), conf, sleep=sleeps)
    host.fail_next("mount_share", "host_busy")
    with pytest.raises(exceptions.VolumeOperationFailed) as err:
        ops.connect_volume(ci())
    assert err.value.volume_id == "vol-volume-1" and sleeps.calls == []


# -- a lost answer: the host did the work, the client saw a reset ----------------------------

def lost_answer(host, operations, error="reset", fail_also=()):
    """An executor over ``host`` that lets the host run ``operations``, then loses the answer
    (a connection reset, or a timeout), as when the network fails after the host did the
    work.  Operations in ``fail_also`` fail before reaching the host."""

    def handler(script, params):
        if script.name in fail_also:
            raise exceptions.TransportError(host=host.host_name, reason="connection refused")
        answer = host.handler(script, params)
        if script.name in operations:
            if error == "timeout":
                raise exceptions.ExecutorTimeout(host=host.host_name, elapsed=301.0,
                                                 timeout=300)
            raise exceptions.TransportError(host=host.host_name,
                                            reason="connection reset by the host or the network")
        return answer

    return FakeExecutor(handler, host=host.host_name)


@pytest.mark.parametrize("error, cause", [("reset", exceptions.TransportError),
                                          ("timeout", exceptions.ExecutorTimeout)])
def test_attach_whose_answers_are_lost_cleans_up_what_it_did(host, conf, sleeps, caplog,
                                                              error, cause):
    before = host.to_dict()
    ops = smbvol.VolumeOps(lost_answer(host, {"attach_vhd"}, error), conf, sleep=sleeps)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(exceptions.VolumeOperationFailed) as err:
            ops.attach_volume(ci(), "instance-1")
    e = err.value
    assert e.volume_id == "vol-volume-1" and isinstance(e.__cause__, cause)
    assert "3 attempt" in str(e) and "detached volume vol-volume-1" in str(e)
    assert "disconnected volume vol-volume-1" in str(e)
    # Every try attached (the first) or found attached (the others); the clean-up undid it.
    assert ops_of(host) == ["list_attachments"] + ["attach_vhd"] * 3 + [
        "detach_vhd", "unmount_share"]
    assert host.to_dict() == before
    assert host.disks_of("instance-1") == () and mapped(host) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("clean-up" in w and "detached" in w for w in warnings)
    assert any("clean-up" in w and "disconnected" in w for w in warnings)
    assert PASSWORD not in caplog.text and PASSWORD not in str(e)


def test_attach_clean_up_never_detaches_a_disk_attached_before(host, conf, sleeps, caplog):
    host.add_mapping(SHARE, credential=CRED, owned=True)
    host.attach_disk("instance-1", SHARE + r"\volume-1.vhdx", "SCSI", 0, 3)
    before = host.to_dict()
    ops = smbvol.VolumeOps(lost_answer(host, {"attach_vhd"}), conf, sleep=sleeps)
    with caplog.at_level(logging.INFO):
        with pytest.raises(exceptions.VolumeOperationFailed) as err:
            ops.attach_volume(ci(), "instance-1")
    assert err.value.volume_id == "vol-volume-1"
    assert isinstance(err.value.__cause__, exceptions.TransportError)
    assert "detach_vhd" not in ops_of(host) and "unmount_share" not in ops_of(host)
    assert host.to_dict() == before
    assert [(d.path, d.controller_location) for d in host.disks_of("instance-1")] == [
        (SHARE + r"\volume-1.vhdx", 3)]
    assert "was attached before" in caplog.text


def test_attach_volumes_clean_up_keeps_the_disks_attached_before(host, conf, sleeps):
    host.add_mapping(SHARE, credential=CRED, owned=True)
    host.attach_disk("instance-1", SHARE + r"\volume-1.vhdx")
    before = host.to_dict()
    ops = smbvol.VolumeOps(lost_answer(host, {"attach_vhds"}), conf, sleep=sleeps)
    infos = [ci("volume-1.vhdx"), ci("volume-2.vhdx"), ci("volume-3.vhdx")]
    with pytest.raises(exceptions.VolumeOperationFailed) as err:
        ops.attach_volumes(infos, "instance-1")
    assert "vol-volume-2" in err.value.volume_id and "vol-volume-3" in err.value.volume_id
    detached = [c.parameters["DiskName"] for c in host.calls if c.operation == "detach_vhd"]
    assert detached == ["volume-2.vhdx", "volume-3.vhdx"]
    # The share stays: volume-1, attached before, still lies on it.
    assert host.to_dict() == before


def test_attach_clean_up_that_fails_says_what_is_left(host, conf, sleeps, caplog):
    ops = smbvol.VolumeOps(lost_answer(host, {"attach_vhd"}, fail_also={"detach_vhd"}), conf,
                           sleep=sleeps)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(exceptions.VolumeOperationFailed) as err:
            ops.attach_volume(ci(), "instance-1")
    text = str(err.value)
    assert "NOT cleaned up: detach of volume vol-volume-1" in text
    assert "could not detach volume vol-volume-1" in caplog.text
    # The disk is still attached, so its share is not even tried.
    assert [d.path for d in host.disks_of("instance-1")] == [SHARE + r"\volume-1.vhdx"]
    assert "unmount_share" not in ops_of(host) and len(mapped(host)) == 1


# -- error messages: what, where, and never a secret ------------------------------------------

LOCKED = r"\\fs01\locked"


def _scenarios():
    """(action, VM, connection_info, share) after preparing the host for one failure."""

    def vm_missing(h, stack):
        return "attach", "ghost", ci(), SHARE

    def wrong_password(h, stack):
        h.add_share(LOCKED, files=["volume-1.vhdx"], credential=Credential("svc", "Nope-123"))
        return "attach", "instance-1", ci(export="//fs01/locked"), LOCKED

    def image_missing(h, stack):
        return "attach", "instance-1", ci("missing.vhdx"), SHARE

    def busy_share(h, stack):
        stack.enter_context(h.hold_lock(HostDouble.share_lock_key(SHARE)))
        return "attach", "instance-1", ci(), SHARE

    def in_use_elsewhere(h, stack):
        h.attach_disk("instance-2", SHARE + r"\volume-1.vhdx", "SCSI", 0, 5)
        return "attach", "instance-1", ci(), SHARE

    def ide_on_gen2(h, stack):
        return "attach-ide", "instance-1", ci(), SHARE

    def detach_busy_vm(h, stack):
        stack.enter_context(h.hold_lock(h.vm_lock_key("instance-1")))
        return "detach", "instance-1", ci(), SHARE

    def connect_denied(h, stack):
        h.fail_next("mount_share", "access_denied", "access to %s is denied" % SHARE)
        return "connect", None, ci(), SHARE

    def unmount_denied(h, stack):
        h.fail_next("unmount_share", "access_denied", "Remove-SmbGlobalMapping: denied")
        return "disconnect", None, ci(), SHARE

    return [vm_missing, wrong_password, image_missing, busy_share, in_use_elsewhere,
            ide_on_gen2, detach_busy_vm, connect_denied, unmount_denied]


@pytest.mark.parametrize("scenario", _scenarios(), ids=lambda f: f.__name__)
def test_every_error_names_what_and_hides_the_secret(host, conf, scenario, caplog):
    with contextlib.ExitStack() as stack:
        _check_error_scenario(host, conf, scenario(host, stack), caplog)


def _check_error_scenario(host, conf, scenario, caplog):
    action, vm, info, share = scenario
    ops = smbvol.VolumeOps(host.executor(), conf, sleep=Sleeps())
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(exceptions.SmbvolError) as err:
            if action.startswith("attach"):
                ops.attach_volume(info, vm, "ide" if action == "attach-ide" else "scsi")
            elif action == "detach":
                ops.detach_volume(info, vm)
            elif action == "disconnect":
                ops.disconnect_volume(info)
            else:
                ops.connect_volume(info)
    exc = err.value
    texts = [str(exc), repr(exc)]
    cause = exc.__cause__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__
    texts += [r.getMessage() for r in caplog.records]
    texts.append(caplog.text)
    for text in texts:
        assert PASSWORD not in text
    message = str(exc)
    assert info["serial"] in message
    assert share in message
    if vm:
        assert vm in message
    assert "hv01" in message


def test_list_attachments_and_connector(ops, host):
    ops.attach_volume(ci("volume-1.vhdx"), "instance-1")
    ops.attach_volume(ci("volume-2.vhdx"), "instance-2")
    every = ops.list_attachments()
    assert {(d.vm_name, d.disk_path) for d in every} == {
        ("instance-1", SHARE + r"\volume-1.vhdx"), ("instance-2", SHARE + r"\volume-2.vhdx")}
    assert all(isinstance(d, results.DiskAttachment) and d.share_path == SHARE for d in every)
    one = ops.list_attachments("instance-2")
    assert [d.controller_location for d in one] == [0]
    with pytest.raises(exceptions.VMNotFound) as err:
        ops.list_attachments("ghost")
    assert "ghost" in str(err.value)
    conn = ops.get_volume_connector()
    assert conn.host == "hv01" and conn.ip == "10.0.0.11"
    assert conn.initiator.startswith("iqn.1991-05.com.microsoft:")
    c = conn.to_connector()
    assert c["host"] == "hv01" and c["os_type"] == "nt" and c["multipath"] is False


# -- block_device_info, live migration --------------------------------------------------------

def test_block_device_info_helpers(ops, host):
    infos = bdi(ci("volume-1.vhdx"), ci("volume-2.vhdx"))
    assert ops.get_disk_path_mapping(infos) == {
        "vol-volume-1": SHARE + r"\volume-1.vhdx", "vol-volume-2": SHARE + r"\volume-2.vhdx"}
    conns = ops.connect_volumes(infos)
    assert len(conns) == 2 and all(isinstance(c, results.ShareConnection) for c in conns)
    discs = ops.disconnect_volumes(infos)
    assert len(discs) == 1 and discs[0].removed  # one share, unmounted once
    assert ops.connect_volumes(None) == [] and ops.connect_volumes({}) == []
    with pytest.raises(exceptions.InvalidInput) as err:
        ops.connect_volumes({"block_device_mapping": [{"mount_device": "/dev/sdb"}]})
    assert "block_device_mapping[0].connection_info" in str(err.value)


def test_live_migration_flow(conf):
    source, dest = HostDouble("hv01"), HostDouble("hv02", addresses=("10.0.0.12",))
    for h in (source, dest):
        h.add_share(SHARE, files=["volume-1.vhdx"], credential=CRED)
    source.add_vm("instance-1")
    src = smbvol.VolumeOps(source.executor(), conf, sleep=Sleeps())
    dst = smbvol.VolumeOps(dest.executor(), conf, sleep=Sleeps())
    info = bdi(ci())
    src.attach_volume(ci(), "instance-1")
    conns = dst.pre_live_migration(info)
    assert conns[0].mapping_created and len(mapped(dest)) == 1
    # The VM still runs on the source: its share stays.
    assert src.post_live_migration(info)[0].in_use_by == ("instance-1",)
    src.detach_volume(ci(), "instance-1")  # the VM left the source
    assert src.post_live_migration(info)[0].removed and mapped(source) == []
    assert len(mapped(dest)) == 1
    # After a reboot of the destination its mappings are gone: ensure_volumes_connected
    # maps the share again.
    state = dest.to_dict()
    state["mappings"] = []
    rebooted = HostDouble.from_dict(state, secrets=dest.secrets)
    again = smbvol.VolumeOps(rebooted.executor(), conf, sleep=Sleeps())
    assert again.ensure_volumes_connected(info)[0].mapping_created
    assert len(mapped(rebooted)) == 1


# -- plans: the same code path as execution ---------------------------------------------------

def test_execution_runs_exactly_the_plan(ops, host):
    plan = ops.plan_attach(ci(qos_specs={"total_iops_sec": 7}), "instance-1")
    ops.attach_volume(ci(qos_specs={"total_iops_sec": 7}), "instance-1")
    call = host.calls[-1]
    assert call.operation == plan.operation
    shown = dict(plan.parameters)
    shown["ShareCredential"] = {"username": "svc", "password": "***"}
    assert call.parameters == shown
    assert call.options == plan.options
    for planned, op in ((ops.plan_detach(ci(), "instance-1"), "detach_vhd"),
                        (ops.plan_connect(ci()), "mount_share"),
                        (ops.plan_disconnect(ci(), force=True), "unmount_share")):
        assert planned.operation == op and planned.volume_id == "vol-volume-1"
    assert ops.plan_disconnect(ci(), force=True).parameters["Force"] is True
    # planning ran nothing (attach ran the plan after one read-only list_attachments)
    assert ops_of(host) == ["list_attachments", "attach_vhd"]


def test_unknown_driver_type_through_volumeops(ops, host):
    with pytest.raises(exceptions.UnknownDriverType) as err:
        ops.attach_volume({"driver_volume_type": "nfs", "data": {}}, "instance-1")
    assert "smbfs" in str(err.value)
    assert host.calls == ()
