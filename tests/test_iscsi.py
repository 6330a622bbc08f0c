"""The iscsi driver end to end: VolumeOps and the CLI against the host double's iSCSI part."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from smbvol import VolumeOps, drivers, exceptions, opts, scripts
from smbvol.cli import app as cli_app
from smbvol.drivers.iscsi import IscsiConnection, IscsiDisconnection, ISCSIVolumeDriver
from smbvol.secret import Credential, Secret
from smbvol.testing import HostDouble
from tests import contract_runner as cr
from tests import pscheck

IQN = "iqn.2010-10.org.openstack:volume-7"
PORTAL = "10.0.0.50:3260"
PORTAL2 = "[fd00::50]:3260"
CHAP_USER = "chap-user-7"
CHAP_SECRET = "Qz7'chap$(x)S3c"  # 15 characters: what the Microsoft initiator accepts
VM = "instance-0001"
VM2 = "instance-0002"


@pytest.fixture
def conf():
    return opts.new_conf(hyperv_volume_attach_retry_count=0)


@pytest.fixture
def host():
    double = HostDouble("hv01")
    double.add_vm(VM)
    double.add_vm(VM2)
    double.add_target(IQN, [PORTAL, PORTAL2], {1: 5, 2: 6},
                      credential=Credential(CHAP_USER, Secret(CHAP_SECRET)))
    return double


@pytest.fixture
def ops(host, conf):
    return VolumeOps(host.executor(), conf, sleep=lambda s: None)


def info(lun=1, chap=True, multipath=False, volume_id=None, **data):
    d = {"target_portal": PORTAL, "target_iqn": IQN, "target_lun": lun,
         "volume_id": volume_id or "vol-%d" % lun}
    if multipath:
        d.update(target_portals=[PORTAL, PORTAL2], target_iqns=[IQN, IQN],
                 target_luns=[lun, lun])
    if chap:
        d.update(auth_method="CHAP", auth_username=CHAP_USER, auth_password=CHAP_SECRET)
    d.update(data)
    return {"driver_volume_type": "iscsi", "data": d}


# -- contract coverage --------------------------------------------------------------------

def test_every_error_kind_of_every_iscsi_operation_has_a_vector():
    vectors = cr.load_vectors(operations=cr.ISCSI_OPERATIONS)
    covered = {(v["operation"], v["expect"]["error"]) for v in vectors if "error" in v["expect"]}
    missing = sorted((op, kind) for op in cr.ISCSI_OPERATIONS
                     for kind in scripts.OPERATIONS[op].error_kinds if (op, kind) not in covered)
    assert not missing, "no vector for: %s" % ", ".join("%s/%s" % m for m in missing)
    assert {v["operation"] for v in vectors if "result" in v["expect"]} == set(
        cr.ISCSI_OPERATIONS)


def test_every_iscsi_operation_has_its_template():
    for op in cr.ISCSI_OPERATIONS:
        assert cr.template_exists(op), op


# -- registry and plans ---------------------------------------------------------------------

def test_iscsi_resolves_to_the_iscsi_driver(conf, ops):
    assert drivers.driver_class("iscsi") is ISCSIVolumeDriver
    inv = ops.plan_attach(info(multipath=True), VM)
    assert inv.operation == "iscsi_attach"
    assert inv.parameters["TargetPortals"] == [PORTAL, PORTAL2]
    assert inv.parameters["TargetLuns"] == [1, 1]
    assert inv.parameters["Multipath"] is True
    assert inv.parameters["ChapCredential"].username == CHAP_USER
    assert CHAP_SECRET not in json.dumps(inv.describe()) and CHAP_SECRET not in repr(inv)
    assert ops.plan_detach(info(), VM).operation == "iscsi_detach"
    assert ops.plan_connect(info()).operation == "iscsi_connect"
    assert ops.plan_disconnect(info()).operation == "iscsi_disconnect"


def test_chap_secret_of_the_wrong_length_names_the_field(ops):
    with pytest.raises(exceptions.InvalidConnectionInfo) as err:
        ops.attach_volume(info(auth_password="short-secret!-and-much-too-long"), VM)
    assert err.value.field == "data.auth_password"
    assert "12 to 16" in str(err.value) and "short-secret" not in str(err.value)


def test_read_only_volume_is_refused(ops, host):
    with pytest.raises(exceptions.InvalidInput) as err:
        ops.attach_volume(info(access_mode="ro"), VM)
    assert "read-only" in str(err.value) and VM in str(err.value)
    assert host.sessions == ()


# -- attach / detach ---------------------------------------------------------------------

def test_attach_is_idempotent_and_detach_is_too(ops, host):
    first = ops.attach_volume(info(), VM)
    assert (first.changed, first.disk_path, first.controller_type) == (
        True, "\\\\.\\PHYSICALDRIVE5", "SCSI")
    again = ops.attach_volume(info(), VM)
    assert again.changed is False
    assert (again.controller_number, again.controller_location) == (
        first.controller_number, first.controller_location)
    assert [d.disk_number for d in host.disks_of(VM)] == [5]
    # The LUN arrived offline (SAN policy OfflineShared): nothing was taken offline.
    assert len(host.sessions) == 1 and 5 not in host.offline_disks

    det = ops.detach_volume(info(), VM)
    assert (det.removed, det.changed, det.disk_path) == (True, True, "\\\\.\\PHYSICALDRIVE5")
    assert host.disks_of(VM) == ()
    det2 = ops.detach_volume(info(), VM)
    assert (det2.removed, det2.changed) == (False, False)
    assert len(host.sessions) == 1  # detach never logs out


def test_two_luns_of_one_target_share_one_session(ops, host):
    ops.attach_volume(info(1), VM)
    ops.attach_volume(info(2), VM2)
    assert len(host.sessions) == 1
    assert [d.disk_number for d in host.disks_of(VM2)] == [6]


def test_lun_attached_to_another_vm_is_refused(ops, host):
    ops.attach_volume(info(), VM)
    with pytest.raises(exceptions.DiskInUse) as err:
        ops.attach_volume(info(), VM2)
    assert VM in str(err.value) and err.value.data["vms"] == [VM]
    assert host.disks_of(VM2) == ()


def test_failed_attach_logs_out_of_the_session_it_created(ops, host):
    host.fail_next("iscsi_attach", "unexpected", stage="attach")
    with pytest.raises(exceptions.UnexpectedHostError):
        ops.attach_volume(info(), VM)
    assert host.sessions == () and host.portals == () and host.offline_disks == frozenset()
    assert host.disks_of(VM) == ()


def test_get_disk_resource_path_and_connection(ops, host):
    assert ops.get_disk_resource_path(info(2)) == "\\\\.\\PHYSICALDRIVE6"
    conn = ops.connect_volume(info(2))
    assert isinstance(conn, IscsiConnection)
    assert (conn.disk_number, conn.changed, conn.sessions_created) == (6, False, 0)
    mapping = ops.get_disk_path_mapping({"block_device_mapping": [
        {"connection_info": info(1)}, {"connection_info": info(2)}]})
    assert mapping == {"vol-1": "\\\\.\\PHYSICALDRIVE5", "vol-2": "\\\\.\\PHYSICALDRIVE6"}


def test_list_attachments_reports_the_passthrough_disk_number(ops, host):
    ops.attach_volume(info(), VM)
    res = host.executor().run(scripts.render("list_attachments"), {"VMName": VM})
    (row,) = res.result["attachments"]
    assert row["disk_number"] == 5 and row["path"] == "\\\\.\\PHYSICALDRIVE5"
    assert (row["target_iqn"], row["target_lun"], row["target_portal"]) == (IQN, 1, PORTAL)
    assert row["on_share"] is False and row["share"] is None
    listed = ops.list_attachments(VM)
    assert [(a.vm_name, a.controller_type) for a in listed] == [(VM, "SCSI")]


def test_list_attachments_entries_template_and_double_have_the_catalog_fields(ops, host):
    text = scripts.render("list_attachments").text
    table = re.search(r"\$attachments\.Add\(@\{\n(.*?)\n\s*\}\)", text, re.S).group(1)
    keys = re.findall(r"^\s*([a-z_]+) = ", table, re.M)
    assert sorted(keys) == sorted(scripts.LIST_ATTACHMENTS_ENTRY_FIELDS)
    host.add_share("\\\\fs01\\vols", files=["a.vhdx"])
    host.attach_disk(VM2, "\\\\fs01\\vols\\a.vhdx", "SCSI", 0, 0)
    ops.attach_volume(info(), VM)
    rows = host.executor().run(scripts.render("list_attachments"), {}).result["attachments"]
    assert len(rows) == 2
    for row in rows:
        assert sorted(row) == sorted(scripts.LIST_ATTACHMENTS_ENTRY_FIELDS)

def test_list_attachments_reports_the_iscsi_target_of_a_volume_and_none_for_smb(ops, host):
    share = "\\\\fs01\\vols"
    host.add_share(share, files=["volume-9.vhdx"])
    host.attach_disk(VM, share + "\\volume-9.vhdx", "SCSI", 0, 0)
    att = ops.attach_volume(info(2), VM)
    smb, iscsi = ops.list_attachments(VM)
    assert (smb.disk_path, smb.share_path) == (share + "\\volume-9.vhdx", share)
    assert (smb.disk_number, smb.target_iqn, smb.target_lun, smb.target_portal) == (
        None, None, None, None)
    assert (iscsi.disk_number, iscsi.target_iqn, iscsi.target_lun, iscsi.target_portal) == (
        6, IQN, 2, PORTAL)
    assert iscsi.share_path is None and iscsi.host == "hv01"
    # the path list_attachments reports is the one Nova gets for the volume
    assert iscsi.disk_path == att.disk_path == ops.get_disk_resource_path(info(2))
    assert (iscsi.controller_type, iscsi.controller_location) == ("SCSI", 1)


def test_list_attachments_every_vm_each_passthrough_disk_its_own_lun(ops, host):
    ops.attach_volume(info(1), VM)
    ops.attach_volume(info(2), VM2)
    listed = {a.vm_name: a for a in ops.list_attachments()}
    assert {n: (a.disk_number, a.target_lun) for n, a in listed.items()} == {
        VM: (5, 1), VM2: (6, 2)}


def test_list_attachments_passthrough_disk_no_session_reaches_has_no_target(ops, host):
    host.attach_disk(VM, None, "SCSI", 0, 4, disk_number=2)  # a local disk, not iSCSI
    ops.attach_volume(info(1), VM)  # takes SCSI 0:0, before the local disk at 0:4
    lun, local = ops.list_attachments(VM)
    assert (lun.disk_number, lun.target_iqn, lun.target_lun) == (5, IQN, 1)
    assert (local.disk_number, local.disk_path) == (2, "\\\\.\\PHYSICALDRIVE2")
    assert (local.target_iqn, local.target_lun, local.target_portal) == (None, None, None)


def test_list_attachments_multipath_portal_is_the_first_sessions(ops, host):
    host.set_iscsi(mpio=True)
    ops.attach_volume(info(multipath=True), VM)
    (row,) = ops.list_attachments(VM)
    assert (row.disk_number, row.target_iqn, row.target_lun) == (5, IQN, 1)
    assert row.target_portal == host.sessions[0].portal


def test_list_attachments_lookup_failure_is_a_warning_not_an_error(ops, host):
    ops.attach_volume(info(), VM)
    host.fail_next("list_attachments", "unexpected", stage="iscsi_lookup",
                   message="the iSCSI initiator did not answer")
    res = host.executor().run(scripts.render("list_attachments"), {"VMName": VM})
    (row,) = res.result["attachments"]
    assert row["disk_number"] == 5 and row["path"] == "\\\\.\\PHYSICALDRIVE5"
    assert (row["target_iqn"], row["target_lun"], row["target_portal"]) == (None, None, None)
    assert any("did not answer" in w for w in res.warnings)
    (again,) = ops.list_attachments(VM)  # one-shot: the next listing has the target again
    assert (again.target_iqn, again.target_lun) == (IQN, 1)


def test_list_attachments_initiator_service_stopped_no_target(ops, host):
    ops.attach_volume(info(), VM)
    host.set_iscsi(service_running=False)
    (row,) = ops.list_attachments(VM)
    assert row.disk_number == 5 and row.target_iqn is None and row.target_lun is None


# -- multipath -----------------------------------------------------------------------------

def test_multipath_with_mpio_logs_in_on_both_portals_one_disk(ops, host):
    host.set_iscsi(mpio=True)
    att = ops.attach_volume(info(multipath=True), VM)
    assert att.disk_path == "\\\\.\\PHYSICALDRIVE5" and att.warnings == ()
    assert sorted(s.portal for s in host.sessions) == sorted([PORTAL, PORTAL2])
    conn = ops.connect_volume(info(multipath=True))
    assert conn.multipath is True and conn.sessions_created == 0
    assert len(conn.paths) == 2


def test_multipath_without_mpio_uses_one_path_and_warns(ops, host):
    att = ops.attach_volume(info(multipath=True), VM)
    assert len(host.sessions) == 1
    assert any("MPIO" in w for w in att.warnings)


def test_multipath_falls_back_to_the_next_portal(ops, host):
    ci = info(target_portals=["192.0.2.99:3260", PORTAL], target_iqns=[IQN, IQN],
              target_luns=[1, 1])
    att = ops.attach_volume(ci, VM)
    assert att.changed is True
    assert [s.portal for s in host.sessions] == [PORTAL]
    assert any("192.0.2.99:3260" in w for w in att.warnings)


# -- disconnect ----------------------------------------------------------------------------

def test_disconnect_refused_while_another_lun_of_the_target_is_attached(ops, host, caplog):
    caplog.set_level(logging.INFO)
    ops.attach_volume(info(1), VM)
    ops.attach_volume(info(2), VM2)
    ops.detach_volume(info(1), VM)
    disc = ops.disconnect_volume(info(1))
    assert isinstance(disc, IscsiDisconnection)
    assert (disc.logged_out, disc.removed, disc.changed) == (False, False, False)
    assert disc.in_use_by == (VM2,) and disc.luns_in_use == (2,)
    assert len(host.sessions) == 1
    # the host itself refuses, whatever the caller does
    with pytest.raises(exceptions.DiskInUse) as err:
        host.executor().run(scripts.render("iscsi_disconnect"),
                            {"TargetPortals": [PORTAL], "TargetIqns": [IQN], "TargetLuns": [1]})
    assert err.value.data["vms"] == [VM2] and "LUN 2" in str(err.value)

    ops.detach_volume(info(2), VM2)
    done = ops.disconnect_volume(info(1))
    assert (done.logged_out, done.sessions_removed) == (True, 1)
    assert host.sessions == ()


def test_disconnect_stops_before_any_logout_when_a_disk_lookup_fails(ops, host):
    ops.attach_volume(info(1), VM)  # a running VM's passthrough disk
    host.fail_next("iscsi_disconnect", "unexpected", stage="disk_lookup",
                   message="the storage provider did not answer")
    with pytest.raises(exceptions.UnexpectedHostError) as err:
        ops.disconnect_volume(info(1))
    assert IQN in str(err.value) and "did not answer" in str(err.value)
    assert len(host.sessions) == 1
    assert [d.disk_number for d in host.vm(VM).disks] == [5]


def test_disconnect_refused_while_a_vm_has_an_iscsi_disk_no_session_reaches(ops, host):
    other = "iqn.2010-10.org.openstack:volume-8"
    host.add_target(other, [PORTAL], {0: 9})
    host.attach_disk(VM2, None, "SCSI", 0, 3, disk_number=9)  # its session is gone
    ops.connect_volume(info(1))
    disc = ops.disconnect_volume(info(1))
    assert (disc.logged_out, disc.in_use_by) == (False, (VM2,))
    assert len(host.sessions) == 1
    host.attach_disk(VM, None, "SCSI", 0, 3, disk_number=2)  # a local disk does not block
    with pytest.raises(exceptions.DiskInUse) as err:
        host.executor().run(scripts.render("iscsi_disconnect"),
                            {"TargetPortals": [PORTAL], "TargetIqns": [IQN], "TargetLuns": [1]})
    assert err.value.data["disk_numbers"] == [9]
    assert err.value.data["reason"] == "unmatched_passthrough_disk"


def test_iscsi_templates_never_take_a_silenced_lookup_for_an_empty_one():
    for name in cr.ISCSI_OPERATIONS + ("list_attachments", "host_info"):
        text = scripts.render(name).text
        for line in text.splitlines():
            if "Storage\\" in line or "iSCSI\\" in line:
                assert "SilentlyContinue" not in line, (name, line.strip())
        assert "ConnectionType -eq" not in text, name


def test_post_live_migration_disconnects_each_target_once(ops, host):
    ops.connect_volume(info(1))
    out = ops.post_live_migration({"block_device_mapping": [
        {"connection_info": info(1)}, {"connection_info": info(2)}]})
    assert len(out) == 1 and out[0].logged_out is True
    assert host.sessions == ()


# -- errors --------------------------------------------------------------------------------

def test_chap_failure_and_unreachable_target(ops, host, conf):
    with pytest.raises(exceptions.ChapAuthFailed) as err:
        ops.attach_volume(info(auth_password="Wrong-secret-16c"), VM)
    assert IQN in str(err.value)
    with pytest.raises(exceptions.VolumeOperationFailed) as err2:
        ops.connect_volume(info(target_portal="192.0.2.99:3260"))
    assert isinstance(err2.value.__cause__, exceptions.TargetUnreachable)
    assert err2.value.volume_id == "vol-1"
    assert host.sessions == () and host.portals == ()


def test_chap_secret_never_shown(ops, host, caplog):
    """Not in the script text, the standalone script, logs, exception text or repr()."""
    caplog.set_level(logging.DEBUG)
    seen = []

    inner = host.handler

    def spy(script, params):
        if script.name != "list_attachments":  # attach first reads the VM's disks
            seen.append(script.text)
        return inner(script, params)

    spy_ops = VolumeOps(host.executor().__class__(spy, host="hv01"), ops.conf,
                        sleep=lambda s: None)
    errors = []
    for bad in ("Wrong-secret-16c", "x" * 11):  # before any session exists: a real login
        try:
            spy_ops.attach_volume(info(2, auth_password=bad), VM2)
        except exceptions.SmbvolError as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [exceptions.ChapAuthFailed,
                                         exceptions.InvalidConnectionInfo]
    att = spy_ops.attach_volume(info(), VM)
    assert host.sessions  # the secret did reach the (double) initiator
    props = ISCSIVolumeDriver(ops.conf).parse(info())
    standalone = scripts.render_standalone(
        "iscsi_attach", spy_ops.plan_attach(info(), VM).parameters)
    texts = seen + [standalone, caplog.text, repr(att), repr(props), json.dumps(att.to_dict()),
                    repr(spy_ops.plan_attach(info(), VM)), repr(host.calls),
                    json.dumps(host.to_dict())]
    texts += [str(e) + repr(e) + json.dumps(getattr(e, "data", {}), default=str)
              for e in errors]
    assert seen and all("ChapCredential" in t for t in seen)
    for text in texts:
        assert CHAP_SECRET not in text and "Wrong-secret-16c" not in text
    assert "SMBVOL_CHAP_SECRET" in standalone


# -- connector -----------------------------------------------------------------------------

def test_connector_reports_the_initiator(host):
    res = host.executor().run(scripts.render("iscsi_connector"), {})
    assert res.result["initiator_iqns"] == ["iqn.1991-05.com.microsoft:hv01.example.test"]
    host.set_iscsi(mpio=True)
    assert host.executor().run(scripts.render("iscsi_connector"), {}).result["multipath"] is True


# -- CLI -----------------------------------------------------------------------------------

def _cli(argv, double, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    rc = cli_app.main(list(argv), executor_factory=lambda conf, h: double.executor(h),
                      stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_attach_and_detach_with_an_iscsi_connection_info_file(host, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "ci.json"
    path.write_text(json.dumps(info(volume_id="vol-77")))
    rc, out, err = _cli(["volume", "attach", VM, "--connection-info", str(path), "-f", "json"],
                        host)
    assert rc == 0, err
    (row,) = json.loads(out)
    assert row["volume_id"] == "vol-77" and row["disk_path"] == "\\\\.\\PHYSICALDRIVE5"
    assert [d.disk_number for d in host.disks_of(VM)] == [5]
    rc, out, err = _cli(["volume", "attach", VM, "--connection-info", str(path), "-f", "json"],
                        host)
    assert rc == 0 and json.loads(out)[0]["changed"] is False
    rc, out, err = _cli(["volume", "detach", VM, "--connection-info", "-", "-f", "json"], host,
                        stdin=json.dumps({"connection_info": info(volume_id="vol-77")}))
    assert rc == 0, err
    assert host.disks_of(VM) == ()
    assert CHAP_SECRET not in out + err + caplog.text


def test_cli_volume_list_shows_the_passthrough_disk_and_its_target(host, tmp_path):
    path = tmp_path / "ci.json"
    path.write_text(json.dumps(info(volume_id="vol-78")))
    rc, out, err = _cli(["volume", "attach", VM, "--connection-info", str(path)], host)
    assert rc == 0, err
    rc, out, err = _cli(["volume", "list", VM, "-f", "json"], host)
    assert rc == 0, err
    (row,) = json.loads(out)
    assert (row["disk_number"], row["disk_path"]) == (5, "\\\\.\\PHYSICALDRIVE5")
    assert (row["target_iqn"], row["target_lun"], row["target_portal"]) == (IQN, 1, PORTAL)
    rc, out, err = _cli(["volume", "list", VM, "-f", "csv"], host)
    assert rc == 0, err
    header = out.splitlines()[0]
    for column in ("disk_number", "target_iqn", "target_lun", "target_portal"):
        assert column in header


# -- error classification, host-side use, addresses (template structure) -----------------

#: The modules of CDXML commands: they do not honour the script's $ErrorActionPreference
#: (PowerShell issue #4568), so each call needs its own -ErrorAction Stop.
CDXML_MODULES = ("iscsi", "storage", "nettcpip")


def _function(src, name):
    for node in src.nodes("function_statement"):
        fname = next(c for c in node.named_children if c.type == "function_name")
        if src.node_text(fname).lower() == name.lower():
            return node
    raise AssertionError("no function %s" % name)


def _walk(node):
    """``node`` and every named node under it, in text order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.named_children))


def _command_names(src, node):
    return [pscheck._command_parts(src, n)[0] or "" for n in _walk(node) if n.type == "command"]


def _ancestor(node, kind):
    node = node.parent
    while node is not None and node.type != kind:
        node = node.parent
    return node


def _try_block(try_statement):
    return next(c for c in try_statement.named_children if c.type == "statement_block")


def _classified_in_catch(src, node):
    """True when ``node`` sits in the try block of a try statement whose catch clause hands the
    caught record to Stop-SmbvolIscsiError."""
    try_statement = _ancestor(node, "try_statement")
    while try_statement is not None:
        block = _try_block(try_statement)
        if block.start_byte <= node.start_byte and node.end_byte <= block.end_byte:
            catches = next(c for c in try_statement.named_children if c.type == "catch_clauses")
            if "Stop-SmbvolIscsiError" in _command_names(src, catches):
                return True
        try_statement = _ancestor(try_statement, "try_statement")
    return False


@pytest.mark.parametrize("name", ["iscsi_connect", "iscsi_attach"])
def test_each_path_failure_is_classified_before_it_is_kept(name):
    """Connect-SmbvolIscsi rethrows the first path's failure: each kept failure must be the
    error record Stop-SmbvolIscsiError threw (an unreachable portal is target_unreachable,
    which the retry policy treats as transient), never the raw record of the iSCSI cmdlet."""
    src = pscheck._source(scripts.render(name).text)
    connect = _function(src, "Connect-SmbvolIscsi")
    adds = [n for n in _walk(connect) if n.type == "invokation_expression"
            and src.node_text(n).replace(" ", "").startswith("$failures.Add(")]
    assert adds, "Connect-SmbvolIscsi keeps no per-path failure"
    for add in adds:
        catch = _ancestor(add, "catch_clause")
        assert catch is not None, src.node_text(add)
        try_statement = _ancestor(catch, "try_statement")
        classify = [n for n in _walk(_try_block(try_statement)) if n.type == "command"
                    and pscheck._command_parts(src, n)[0] == "Stop-SmbvolIscsiError"]
        assert classify, "a per-path failure is kept without Stop-SmbvolIscsiError"
        args = pscheck._arguments(src, pscheck._command_parts(src, classify[0])[1])
        assert "errorrecord" in [a for a, _ in args]
    assert "throw $failures[0]" in src.node_text(connect)


@pytest.mark.parametrize("function", ["Add-SmbvolIscsiPortal", "Invoke-SmbvolIscsiLoginOnce"])
def test_portal_and_login_failures_are_classified(function):
    """Every initiator call of the portal and login steps (the target_unreachable,
    lun_not_found and chap_auth_failed paths) is in a try whose catch classifies the error."""
    src = pscheck._source(scripts.render("iscsi_connect").text)
    body = _function(src, function)
    calls = [n for n in _walk(body) if (n.type == "command" and (
        pscheck._command_parts(src, n)[0] or "").lower().startswith("iscsi\\")
        and "Remove-IscsiTargetPortal" not in src.node_text(n))
        or (n.type == "command"
            and pscheck._command_parts(src, n)[0] == "Invoke-SmbvolCimMethod")
        or (n.type == "invokation_expression" and ".InvokeMethod(" in src.node_text(n))]
    assert calls, function
    for call in calls:
        assert _classified_in_catch(src, call), src.node_text(call)[:80]


def test_a_portal_added_before_a_failed_discovery_is_removed_again():
    src = pscheck._source(scripts.render("iscsi_connect").text)
    body = _function(src, "Add-SmbvolIscsiPortal")
    # The outermost try (an inner one only takes "the portal exists already" for present).
    try_statement = [n for n in _walk(body) if n.type == "try_statement"][0]
    catches = next(c for c in try_statement.named_children if c.type == "catch_clauses")
    names = _command_names(src, catches)
    assert names.index("Remove-SmbvolIscsiPortal") < names.index("Stop-SmbvolIscsiError")


@pytest.mark.parametrize("name", cr.ISCSI_OPERATIONS + ("host_info",))
def test_every_cdxml_call_stops_on_error(name):
    """iSCSI, Storage and NetTCPIP commands are CDXML: without -ErrorAction Stop a failure is
    a non-terminating error and the script goes on with an empty answer."""
    index = pscheck.load_index()
    src = pscheck._source(scripts.render(name).text)
    checked = 0
    for node in src.nodes("command"):
        command, elements = pscheck._command_parts(src, node)
        info = index.cmdlets.get((command or "").rpartition("\\")[2].lower())
        if info is None or info.module.lower() not in CDXML_MODULES:
            continue
        checked += 1
        actions = [values for pname, values in pscheck._arguments(src, elements)
                   if pname in ("erroraction", "ea")]
        assert actions == [["Stop"]], (name, src.node_text(node)[:100])
    assert checked


@pytest.mark.parametrize("name", ["host_info", "iscsi_connector"])
def test_addresses_are_classified_by_their_text(name):
    src = pscheck._source(scripts.render(name).text)
    assert "AddressFamily" not in pscheck._code_only(src)  # comments and strings masked
    loop = re.search(r"foreach \(\$address in @\(NetTCPIP\\Get-NetIPAddress [^)]*\)\) \{\n"
                     r"(.*?)\n    \}\n", src.text, re.S)
    assert loop and "if (-not $text.Contains(':')) {\n            $ipv4.Add($text)" in loop.group(1)


def test_disconnect_checks_the_disks_online_on_the_host_before_any_logout():
    text = scripts.render("iscsi_disconnect").text
    src = pscheck._source(text)
    disks = src.node_text(_function(src, "Get-SmbvolIscsiDisks"))
    assert "offline = [bool]$disk.IsOffline" in disks
    assert "clustered = [bool]$disk.IsClustered" in disks
    body = src.node_text(_function(src, "Invoke-SmbvolOperation"))
    online = body.index("reason = 'online_on_host'")
    assert online < body.index("Disconnect-SmbvolIscsiSession")
    assert re.search(r"if \(\[bool\]\$disk\.offline -and -not \[bool\]\$disk\.clustered\)",
                     body)


def test_disconnect_refused_while_a_disk_of_the_target_is_online_on_the_host(ops, host):
    ops.connect_volume(info(1))
    host.set_disk_online(5)
    disc = ops.disconnect_volume(info(1))
    assert (disc.logged_out, disc.changed, disc.in_use_by, disc.luns_in_use) == (
        False, False, (), (1,))
    assert len(host.sessions) == 1
    with pytest.raises(exceptions.DiskInUse) as err:
        host.executor().run(scripts.render("iscsi_disconnect"),
                            {"TargetPortals": [PORTAL], "TargetIqns": [IQN], "TargetLuns": [1]})
    assert err.value.data["reason"] == "online_on_host"
    assert err.value.data["disk_numbers"] == [5] and "disk 5" in str(err.value)
    host.set_disk_online(5, False)
    assert ops.disconnect_volume(info(1)).logged_out is True
    assert host.sessions == ()


def test_attach_takes_an_online_disk_offline_and_gives_it_back_on_failure(ops, host):
    host.set_disk_online(5)
    host.fail_next("iscsi_attach", "unexpected", stage="attach")
    with pytest.raises(exceptions.UnexpectedHostError):
        ops.attach_volume(info(1), VM)
    assert host.online_disks == frozenset({5}) and host.offline_disks == frozenset()
    assert host.sessions == () and host.disks_of(VM) == ()
    ops.attach_volume(info(1), VM)
    assert 5 in host.offline_disks and host.online_disks == frozenset()
    assert ops.disconnect_volume(info(1)).in_use_by == (VM,)


def test_known_portal_that_no_longer_answers_is_target_unreachable(ops, host):
    host.add_portal(PORTAL)
    host.add_target(IQN, [PORTAL, PORTAL2], {1: 5}, reachable=False)
    with pytest.raises(exceptions.VolumeOperationFailed) as failed:
        ops.attach_volume(info(chap=False), VM)
    err = failed.value.__cause__
    assert isinstance(err, exceptions.TargetUnreachable) and exceptions.is_transient(err)
    assert PORTAL in str(err) and err.data["status_code"] == "0xEFFF0003"
    assert host.portals == (PORTAL,) and host.sessions == () and host.disks_of(VM) == ()


# -- attach_volumes: one by one (no many-volume script), with rollback --------------------

def test_attach_volumes_one_by_one_detaches_what_it_attached_when_a_later_one_fails(ops, host):
    ops.attach_volume(info(2), VM)  # a disk of the VM the call is not about: it stays
    with pytest.raises(exceptions.LunNotFound) as err:
        ops.attach_volumes([info(1), info(3)], VM)  # LUN 3 does not exist on the target
    assert not exceptions.is_transient(err.value)
    assert "vol-3" in str(err.value) and VM in str(err.value) and "LUN 3" in str(err.value)
    assert [d.disk_number for d in host.disks_of(VM)] == [6]  # LUN 1's disk 5 detached again
    detaches = [c for c in host.calls if c.operation == "iscsi_detach"]
    assert [(c.parameters["VMName"], c.parameters["TargetLuns"]) for c in detaches] == [
        (VM, [1])]
    assert len(host.sessions) == 1  # the target's session stays: LUN 2 is still attached


def test_attach_volumes_one_by_one_keeps_a_volume_attached_before_the_call(ops, host):
    before = ops.attach_volume(info(1), VM)
    with pytest.raises(exceptions.LunNotFound) as err:
        ops.attach_volumes([info(1), info(3)], VM)
    assert "vol-3" in str(err.value) and VM in str(err.value)
    disks = host.disks_of(VM)
    assert [d.disk_number for d in disks] == [5]
    assert (disks[0].controller_number, disks[0].controller_location) == (
        before.controller_number, before.controller_location)
    assert "iscsi_detach" not in [c.operation for c in host.calls]


def test_attach_volumes_one_by_one_logs_out_the_session_it_created(ops, host):
    with pytest.raises(exceptions.LunNotFound):
        ops.attach_volumes([info(1), info(3)], VM)
    assert host.disks_of(VM) == ()
    assert host.sessions == ()  # the session the failed call logged in to is gone again
