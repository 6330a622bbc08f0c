"""The driver registry and the SMB driver's plans (no host involved)."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest

from smbvol import drivers, exceptions, opts, scripts
from smbvol.drivers.base import VolumeDriver
from smbvol.drivers.smb import SMBVolumeDriver
from smbvol.secret import Credential

PASSWORD = "Zq7-distinctive-S3cret"


def smb_info(export="//fs01/vols", name="volume-1.vhdx", **data):
    data.setdefault("volume_id", "vol-1")
    return {"driver_volume_type": "smbfs", "data": dict(export=export, name=name, **data),
            "serial": data["volume_id"]}


@pytest.fixture
def conf():
    return opts.new_conf()


@pytest.fixture
def driver(conf):
    return SMBVolumeDriver(conf)


# -- registry ---------------------------------------------------------------------------

def test_table_names_both_drivers():
    assert drivers.DRIVERS["smbfs"] == "smbvol.drivers.smb:SMBVolumeDriver"
    assert drivers.DRIVERS["iscsi"] == "smbvol.drivers.iscsi:ISCSIVolumeDriver"
    assert {"smbfs", "iscsi"} <= set(drivers.known_types())


def test_smbfs_resolves_to_the_smb_driver(conf):
    assert drivers.driver_class("smbfs") is SMBVolumeDriver
    assert drivers.driver_class(" SMBFS ") is SMBVolumeDriver
    d = drivers.get_driver("smbfs", conf)
    assert isinstance(d, VolumeDriver) and d.conf is conf


def test_unknown_type_names_the_known_types():
    with pytest.raises(exceptions.UnknownDriverType) as err:
        drivers.driver_class("nfs")
    text = str(err.value)
    assert "'nfs'" in text and "smbfs" in text and "iscsi" in text
    assert err.value.field == "driver_volume_type"


@pytest.mark.parametrize("info", [{}, {"driver_volume_type": ""}, {"driver_volume_type": None},
                                  {"driver_volume_type": 3}])
def test_missing_type_names_the_known_types(info):
    with pytest.raises(exceptions.UnknownDriverType) as err:
        drivers.driver_type_of(info)
    assert "smbfs" in str(err.value) and "driver_volume_type" in str(err.value)


def test_connection_info_must_be_a_dict():
    with pytest.raises(exceptions.InvalidConnectionInfo) as err:
        drivers.driver_type_of(["smbfs"])
    assert err.value.field == "connection_info"


def test_registered_but_unloadable_driver_fails_clearly(monkeypatch):
    monkeypatch.setitem(drivers.DRIVERS, "broken", "smbvol.drivers.no_such_module:Driver")
    monkeypatch.setitem(drivers.DRIVERS, "noclass", "smbvol.drivers.smb:NoSuchClass")
    with pytest.raises(exceptions.UnknownDriverType) as err:
        drivers.driver_class("broken")
    assert "smbvol.drivers.no_such_module:Driver" in str(err.value)
    assert "cannot be loaded" in str(err.value) and "smbfs" in str(err.value)
    assert isinstance(err.value.__cause__, ImportError)
    with pytest.raises(exceptions.UnknownDriverType) as err:
        drivers.driver_class("noclass")
    assert "NoSuchClass" in str(err.value)


def test_entry_point_group_adds_a_driver(tmp_path, monkeypatch, conf):
    """A distribution on sys.path declaring an ``smbvol.drivers`` entry point is found."""
    (tmp_path / "smbvol_ep_demo.py").write_text(textwrap.dedent("""
        from smbvol.drivers.smb import SMBVolumeDriver

        class DemoDriver(SMBVolumeDriver):
            driver_volume_type = "demo"
    """))
    dist = tmp_path / "smbvol_ep_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smbvol-ep-demo\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[smbvol.drivers]\ndemo = smbvol_ep_demo:DemoDriver\n"
        "smbfs = smbvol_ep_demo:DemoDriver\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "smbvol_ep_demo", raising=False)
    assert "demo" in drivers.known_types()
    cls = drivers.driver_class("demo")
    assert cls.__name__ == "DemoDriver" and cls.driver_volume_type == "demo"
    # The built-in table wins over an entry point of the same name.
    assert drivers.driver_class("smbfs") is SMBVolumeDriver


# -- SMB driver plans ----------------------------------------------------------------------

def test_attach_plan(driver):
    props = driver.parse(smb_info(export="//fs01/vols/sub", options="-o username=svc,password="
                                  + PASSWORD))
    inv = driver.plan_attach(props, "instance-1")
    assert inv.operation == "attach_vhd"
    assert inv.volume_id == "vol-1"
    assert inv.options == {"mapping_via_task": False}
    p = inv.parameters
    assert p["VMName"] == "instance-1"
    assert p["SharePath"] == r"\\fs01\vols\sub"
    assert p["DiskName"] == "volume-1.vhdx"
    assert p["DiskBus"] == "scsi"
    assert (p["MaximumIops"], p["MinimumIops"]) == (0, 0)
    assert p["LockTimeoutSeconds"] == 60
    assert isinstance(p["ShareCredential"], Credential)
    assert p["ShareCredential"].username == "svc"
    # The plan is valid for its operation's contract, and shows no secret.
    assert PASSWORD not in repr(inv) and PASSWORD not in str(inv.to_dict())
    assert inv.describe()["ShareCredential"] == "svc/***"


def test_plans_match_the_catalog(driver):
    """Every parameter a plan sets is declared by its operation, with the declared type."""
    props = driver.parse(smb_info(options="-o username=svc,password=" + PASSWORD))
    plans = [driver.plan_connect(props), driver.plan_disconnect(props, force=True),
             driver.plan_attach(props, "vm"), driver.plan_detach(props, "vm"),
             driver.plan_attach_many([props, props], "vm")]
    for inv in plans:
        op = scripts.OPERATIONS[inv.operation]
        declared = {p.name for p in op.params}
        assert set(inv.parameters) <= declared, inv.operation
        assert set(inv.options) <= set(op.options), inv.operation
        for p in op.params:
            if p.required:
                assert p.name in inv.parameters, (inv.operation, p.name)


def test_no_credentials_means_no_credential_parameter(driver):
    props = driver.parse(smb_info())
    assert "ShareCredential" not in driver.plan_attach(props, "vm").parameters
    assert "ShareCredential" not in driver.plan_connect(props).parameters
    assert "ShareCredentials" not in driver.plan_attach_many([props], "vm").parameters


def test_connect_disconnect_detach_plans(driver):
    props = driver.parse(smb_info(export=r"\\fs01\vols\a\b"))
    c = driver.plan_connect(props)
    assert (c.operation, c.parameters["SharePath"], c.parameters["DiskName"]) == (
        "mount_share", r"\\fs01\vols\a\b", "volume-1.vhdx")
    d = driver.plan_disconnect(props)
    assert d.operation == "unmount_share"
    assert d.parameters["SharePath"] == r"\\fs01\vols"  # the mapping is of the share root
    assert d.parameters["Force"] is False
    assert driver.plan_disconnect(props, force=True).parameters["Force"] is True
    t = driver.plan_detach(props, "instance-9")
    assert t.operation == "detach_vhd" and t.parameters["VMName"] == "instance-9"
    assert t.options == {}


def test_mapping_via_task_option(conf):
    conf.set_override("smb_mapping_via_scheduled_task", True, group="hyperv")
    d = SMBVolumeDriver(conf)
    props = d.parse(smb_info())
    assert d.plan_connect(props).options == {"mapping_via_task": True}
    assert d.plan_attach(props, "vm").options == {"mapping_via_task": True}
    assert d.plan_attach_many([props], "vm").options == {"mapping_via_task": True}
    assert d.plan_disconnect(props).options == {}


def test_lock_timeout_from_conf(conf):
    conf.set_override("host_lock_timeout", 7, group="hyperv")
    d = SMBVolumeDriver(conf)
    props = d.parse(smb_info())
    assert d.plan_attach(props, "vm").parameters["LockTimeoutSeconds"] == 7
    assert d.plan_disconnect(props).parameters["LockTimeoutSeconds"] == 7


def test_ipv6_export_becomes_the_literal_name(driver):
    props = driver.parse(smb_info(export="//[fd00::1]/vols"))
    inv = driver.plan_attach(props, "vm")
    assert inv.parameters["SharePath"] == r"\\fd00--1.ipv6-literal.net\vols"
    assert driver.lock_keys(props) == (r"\\fd00--1.ipv6-literal.net\vols",)


def test_read_only_is_refused_by_default(driver):
    props = driver.parse(smb_info(access_mode="ro"))
    with pytest.raises(exceptions.InvalidInput) as err:
        driver.plan_attach(props, "instance-7")
    e = err.value
    assert e.field == "access_mode"
    text = str(e)
    assert "read-only" in text and "allow_read_only_as_read_write" in text
    assert "instance-7" in text and "vol-1" in text
    with pytest.raises(exceptions.InvalidInput):
        driver.plan_attach_many([driver.parse(smb_info()), props], "instance-7")
    # Connecting (mounting) a read-only volume writes nothing: allowed.
    assert driver.plan_connect(props).operation == "mount_share"


def test_read_only_allowed_by_option_is_logged_loudly(conf, caplog):
    conf.set_override("allow_read_only_as_read_write", True, group="hyperv")
    d = SMBVolumeDriver(conf)
    props = d.parse(smb_info(access_mode="ro"))
    with caplog.at_level(logging.WARNING):
        inv = d.plan_attach(props, "instance-7")
    assert inv.operation == "attach_vhd"
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING
            and "read-only" in r.getMessage().lower()]
    assert len(loud) == 1
    assert "instance-7" in loud[0].getMessage() and "vol-1" in loud[0].getMessage()


def test_qos_normalisation(driver, caplog):
    specs = {"total_bytes_sec": 8192 * 100 + 1, "total_iops_sec": 50, "min_iops_sec": 10,
             "read_iops_sec": 5, "burst": 1}
    with caplog.at_level(logging.WARNING):
        props = driver.parse(smb_info(qos_specs=specs))
        inv = driver.plan_attach(props, "vm")
    assert inv.parameters["MaximumIops"] == 101  # ceil(bytes / 8 KB) beats 50 IOPS
    assert inv.parameters["MinimumIops"] == 10
    warned = [r for r in caplog.records if "read_iops_sec" in r.getMessage()]
    assert len(warned) == 1 and "burst" in warned[0].getMessage()
    many = driver.plan_attach_many([props, driver.parse(smb_info(name="v2.vhdx"))], "vm")
    assert many.parameters["MaximumIops"] == [101, 0]
    assert many.parameters["MinimumIops"] == [10, 0]


@pytest.mark.parametrize("bus,field", [("sata", "disk_bus"), (None, "disk_bus")])
def test_bad_disk_bus(driver, bus, field):
    with pytest.raises(exceptions.InvalidInput) as err:
        driver.plan_attach(driver.parse(smb_info()), "instance-3", bus)
    assert err.value.field == field and "instance-3" in str(err.value)


def test_ide_can_be_disabled(conf):
    d = SMBVolumeDriver(conf)
    props = d.parse(smb_info())
    assert d.plan_attach(props, "vm", "IDE").parameters["DiskBus"] == "ide"
    conf.set_override("allow_ide_attach", False, group="hyperv")
    with pytest.raises(exceptions.InvalidInput) as err:
        d.plan_attach(props, "vm", "ide")
    assert "allow_ide_attach" in str(err.value)


@pytest.mark.parametrize("name", ["", "  ", None, 5])
def test_instance_name_required(driver, name):
    with pytest.raises(exceptions.InvalidInput) as err:
        driver.plan_attach(driver.parse(smb_info()), name)
    assert err.value.field == "instance_name"


def test_attach_many_plan(driver):
    a = driver.parse(smb_info(options="-o username=svc,password=" + PASSWORD))
    b = driver.parse(smb_info(export="//fs02/other", name="v2", format="vhd", volume_id="vol-2"))
    inv = driver.plan_attach_many([a, b], "instance-1")
    p = inv.parameters
    assert inv.operation == "attach_vhds"
    assert p["SharePaths"] == [r"\\fs01\vols", r"\\fs02\other"]
    assert p["DiskNames"] == ["volume-1.vhdx", "v2.vhd"]
    assert p["ShareCredentials"][0].username == "svc" and p["ShareCredentials"][1] is None
    assert inv.volume_id == "vol-1,vol-2"
    assert PASSWORD not in repr(inv)


def test_describe_names_volume_and_share(driver):
    props = driver.parse(smb_info(options="-o username=svc,password=" + PASSWORD))
    text = driver.describe(props)
    assert "vol-1" in text and r"\\fs01\vols\volume-1.vhdx" in text
    assert PASSWORD not in text


# -- what a failed attach may detach --------------------------------------------------------

def _disk(path, disk_number=None, iqn=None, lun=None):
    from smbvol.results import DiskAttachment
    return DiskAttachment(vm_name="vm", vm_id=None, controller_type="SCSI", controller_number=0,
                          controller_location=0, disk_path=path, disk_number=disk_number,
                          target_iqn=iqn, target_lun=lun)


def test_smb_was_attached_matches_the_image_by_unc_or_local_path(driver):
    props = driver.parse(smb_info())
    assert not driver.was_attached(props, [])
    assert not driver.was_attached(props, [_disk(r"\\fs01\vols\volume-2.vhdx"),
                                           _disk(r"\\.\PHYSICALDRIVE3", disk_number=3)])
    assert driver.was_attached(props, [_disk(r"\\FS01\Vols\VOLUME-1.vhdx")])
    # a share on the host itself is attached by its local path
    assert driver.was_attached(props, [_disk(r"C:\Shares\vols\volume-1.vhdx")])


def test_iscsi_was_attached_by_target_and_lun_and_doubt_answers_true(conf):
    from smbvol.drivers.iscsi import ISCSIVolumeDriver
    d = ISCSIVolumeDriver(conf)
    iqn = "iqn.2010-10.org.openstack:volume-7"
    props = d.parse({"driver_volume_type": "iscsi", "data": {
        "target_portal": "10.0.0.50:3260", "target_iqn": iqn, "target_lun": 1}})
    assert not d.was_attached(props, [_disk(r"\\fs01\vols\volume-1.vhdx")])
    assert not d.was_attached(props, [_disk(r"\\.\PHYSICALDRIVE4", 4, iqn, 2)])
    assert d.was_attached(props, [_disk(r"\\.\PHYSICALDRIVE5", 5, iqn.upper(), 1)])
    # a passthrough disk whose LUN the host could not tell may be this one
    assert d.was_attached(props, [_disk(r"\\.\PHYSICALDRIVE6", 6)])
