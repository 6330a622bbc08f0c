"""Tests for smbvol.connection: typed connection_info for SMB and iSCSI."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbvol import connection
from smbvol.connection import (
    IscsiConnectionInfo,
    IscsiTarget,
    QoS,
    SmbConnectionInfo,
    normalise_export,
    parse_iscsi,
    parse_options,
    parse_qos,
    parse_smb,
    unc_path,
)
from smbvol.exceptions import InvalidConnectionInfo, InvalidInput
from smbvol.secret import Credential, RedactingJSONEncoder, Secret

PASSWORD = "S3cret-pw!"
CHAP_SECRET = "ChapSecret1234"
IQN = "iqn.2010-10.org.openstack:volume-1"


def smb_info(**data):
    base = {"export": "//fs1/vols", "name": "volume-1.vhdx", "format": "vhdx"}
    base.update(data)
    return {"driver_volume_type": "smbfs", "data": base}


def iscsi_info(**data):
    base = {"target_portal": "192.0.2.10:3260", "target_iqn": IQN, "target_lun": 0}
    base.update(data)
    return {"driver_volume_type": "iscsi", "data": base}


def assert_error(excinfo, field, *shown):
    """The error names ``field`` and shows each of ``shown`` in its message."""
    message = str(excinfo.value)
    assert excinfo.value.field == field
    assert field in message
    for text in shown:
        assert text in message, message


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("export, expected", [
    ("//fs1/vols", ("fs1", "vols", "")),
    ("\\\\fs1\\vols", ("fs1", "vols", "")),
    ("//fs1/vols/a/b", ("fs1", "vols", "a\\b")),
    ("\\\\fs1\\vols\\a\\b", ("fs1", "vols", "a\\b")),
    ("\\\\fs1/vols\\a/b", ("fs1", "vols", "a\\b")),
    ("//fs1/vols/", ("fs1", "vols", "")),
    ("\\\\fs1\\vols\\a\\", ("fs1", "vols", "a")),
    ("  //fs1.example.org/vols$  ", ("fs1.example.org", "vols$", "")),
    ("//192.0.2.5/Volumes (prod)/sub dir", ("192.0.2.5", "Volumes (prod)", "sub dir")),
    ("//fs1/vols/a+b=c;d,e[1]", ("fs1", "vols", "a+b=c;d,e[1]")),
    ("//fs1/vols/.hidden", ("fs1", "vols", ".hidden")),
    ("//fs_1/données/日本", ("fs_1", "données", "日本")),
])
def test_normalise_export_accepts_both_slash_styles(export, expected):
    assert normalise_export(export) == expected


@pytest.mark.parametrize("export, host", [
    ("//[fd00::1]/vols", "fd00--1.ipv6-literal.net"),
    ("//fd00::1/vols", "fd00--1.ipv6-literal.net"),
    ("\\\\[fd00::1]\\vols", "fd00--1.ipv6-literal.net"),
    ("\\\\fd00::1\\vols", "fd00--1.ipv6-literal.net"),
    ("//[fd00::1%eth0]/vols", "fd00--1seth0.ipv6-literal.net"),
    ("//fd00::1%eth0/vols", "fd00--1seth0.ipv6-literal.net"),
    ("//[fe80::1ff:fe23:4567:890a%3]/vols", "fe80--1ff-fe23-4567-890as3.ipv6-literal.net"),
    ("//[FD00:0:0:0:0:0:0:1]/vols", "fd00--1.ipv6-literal.net"),
    ("//[2001:db8:85a3:8d3:1319:8a2e:370:7348]/vols",
     "2001-db8-85a3-8d3-1319-8a2e-370-7348.ipv6-literal.net"),
    ("//[::1]/vols", "0--1.ipv6-literal.net"),
    ("//[fd00::]/vols", "fd00--0.ipv6-literal.net"),
    ("//fd00--1.ipv6-literal.net/vols", "fd00--1.ipv6-literal.net"),
])
def test_ipv6_hosts_become_ipv6_literal_names(export, host):
    assert normalise_export(export) == (host, "vols", "")


def test_ipv6_literal_name_resolves_back_to_the_address():
    host, _, _ = normalise_export("//[2001:db8::8a2e:370:7334]/vols")
    assert host.endswith(".ipv6-literal.net")
    label = host[:-len(".ipv6-literal.net")]
    assert ipaddress.IPv6Address(label.replace("-", ":")) == \
        ipaddress.IPv6Address("2001:db8::8a2e:370:7334")


@pytest.mark.parametrize("export, why", [
    ("//fs1", "no share name"),
    ("//fs1/", "no share name"),
    ("\\\\fs1", "no share name"),
    ("\\\\fs1\\", "no share name"),
    ("///vols", "empty host"),
    ("\\\\\\vols", "empty host"),
    ("//", "empty host"),
    ("fs1/vols", "not a UNC path"),
    ("/fs1/vols", "not a UNC path"),
    ("C:\\vols", "not a UNC path"),
    ("smb://fs1/vols", "not a UNC path"),
    ("", "not a UNC path"),
    ("//fs1/vols//a", "empty path segment"),
])
def test_export_shape_errors(export, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert_error(excinfo, "data.export", why, repr(export))
    assert "//host/share" in str(excinfo.value)  # says what to do


@pytest.mark.parametrize("export", [
    "//./vols", "//../vols", "//fs1/./a", "//fs1/../a", "//fs1/vols/./a", "//fs1/vols/a/..",
    "\\\\fs1\\vols\\..\\other",
])
def test_dot_segments_are_rejected(export):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert_error(excinfo, "data.export", "relative path segment")


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\r", "\x1f", "\x7f", "\x85"])
@pytest.mark.parametrize("template", ["//fs1/vo{}ls", "//fs{}1/vols", "//fs1/vols/a{}b"])
def test_control_characters_are_rejected(char, template):
    export = template.format(char)
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    message = str(excinfo.value)
    assert_error(excinfo, "data.export", "position %d" % export.index(char))
    assert ("NUL" if char == "\x00" else "U+%04X" % ord(char)) in message
    assert char not in message  # shown escaped


@pytest.mark.parametrize("char", list('"[]:|<>+=;,*?'))
def test_invalid_share_name_characters(char):
    export = "//fs1/vo%sls" % char
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert_error(excinfo, "data.export", "share name", repr(char), "rename")


@pytest.mark.parametrize("char", list('<>:"|?*'))
def test_invalid_directory_name_characters(char):
    export = "//fs1/vols/a%sb/c" % char
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert_error(excinfo, "data.export", "directory name", repr(char))


@pytest.mark.parametrize("export", ["//fs1/vols./a", "//fs1/vols/a /b", "//fs1/vols/a."])
def test_names_ending_with_dot_or_space_are_rejected(export):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert_error(excinfo, "data.export", "ends with a dot or space")


def test_name_length_limits():
    assert normalise_export("//fs1/" + "s" * 80)[1] == "s" * 80
    with pytest.raises(InvalidConnectionInfo, match="longer than 80"):
        normalise_export("//fs1/" + "s" * 81)
    assert normalise_export("//fs1/v/" + "d" * 255)[2] == "d" * 255
    with pytest.raises(InvalidConnectionInfo, match="longer than 255"):
        normalise_export("//fs1/v/" + "d" * 256)


@pytest.mark.parametrize("export, why", [
    ("//fs 1/vols", "' '"),
    ("//fs1%4/vols", "'%'"),
    ("//fs1:445/vols", "cannot carry a port"),
    ("//[fd00::1]:445/vols", "cannot carry a port"),
    ("//[fd00::1/vols", "unbalanced"),
    ("//[fd00::zz]/vols", "not a valid IPv6 address"),
    ("//fd00:::1/vols", "not a valid IPv6 address"),
    ("//[fd00::1%et h0]/vols", "zone index"),
    ("//[fd00::1%]/vols", "zone index"),
    ("//.fs1/vols", "empty name label"),
    ("//fs1..example/vols", "empty name label"),
    ("//?/UNC/fs1/vols", "'?'"),
])
def test_invalid_hosts(export, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert_error(excinfo, "data.export", why)


@pytest.mark.parametrize("export", [
    "//svc:" + PASSWORD + "@fs1/vols",
    "\\\\svc:" + PASSWORD + "@fs1\\vols",
    "smb://svc:" + PASSWORD + "@fs1/vols",
    "//svc:" + PASSWORD + "@fs1/vols\x00",
])
def test_credentials_in_the_export_are_never_echoed(export):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(export, field="data.export")
    assert excinfo.value.field == "data.export"
    for text in (str(excinfo.value), repr(excinfo.value), repr(excinfo.value.kwargs)):
        assert PASSWORD not in text
        assert "svc" not in text
    assert "@fs1" in str(excinfo.value)


@pytest.mark.parametrize("value", [None, 42, b"//fs1/vols", ["//fs1/vols"]])
def test_export_must_be_a_string(value):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        normalise_export(value, field="data.export")
    assert_error(excinfo, "data.export", "must be a string")


def test_invalid_connection_info_is_an_invalid_input_value_error():
    with pytest.raises(ValueError) as excinfo:
        normalise_export("//fs1")
    assert isinstance(excinfo.value, InvalidInput)
    assert excinfo.value.field == "export"  # default field name


@pytest.mark.parametrize("args, expected", [
    (("fs1", "vols"), "\\\\fs1\\vols"),
    (("fs1", "vols", ""), "\\\\fs1\\vols"),
    (("fs1", "vols", "a\\b"), "\\\\fs1\\vols\\a\\b"),
    (("fs1", "vols", "a/b/"), "\\\\fs1\\vols\\a\\b"),
    (("fd00--1.ipv6-literal.net", "vols", "x"), "\\\\fd00--1.ipv6-literal.net\\vols\\x"),
])
def test_unc_path(args, expected):
    assert unc_path(*args) == expected


# --------------------------------------------------------------------------- SMB parse


def test_parse_smb_full_example():
    info = parse_smb({
        "driver_volume_type": "smbfs",
        "data": {"export": "//fs1.example.org/vols/tenant/a", "name": "volume-1",
                 "format": "vhdx", "options": "-o username=svc,password=" + PASSWORD,
                 "access_mode": "rw", "qos_specs": {"total_iops_sec": "500"},
                 "volume_id": "0a1b"},
        "serial": "0a1b-serial",
    })
    assert info == SmbConnectionInfo(
        driver_volume_type="smbfs", host="fs1.example.org", share="vols",
        subdir="tenant\\a", export="\\\\fs1.example.org\\vols\\tenant\\a",
        disk_name="volume-1.vhdx", format="vhdx",
        credential=Credential("svc", Secret(PASSWORD)), access_mode="rw",
        qos=QoS(max_iops=500), volume_id="0a1b", serial="0a1b-serial")
    assert info.share_root == "\\\\fs1.example.org\\vols"
    assert info.disk_path == "\\\\fs1.example.org\\vols\\tenant\\a\\volume-1.vhdx"
    assert info.read_only is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.share = "other"  # type: ignore[misc]


def test_parse_smb_minimal_defaults():
    info = parse_smb(smb_info(export="\\\\fs1\\vols"))
    assert (info.credential, info.access_mode, info.qos, info.volume_id, info.serial) == \
        (None, "rw", QoS(), None, None)
    assert info.export == "\\\\fs1\\vols"
    assert info.disk_path == "\\\\fs1\\vols\\volume-1.vhdx"
    assert info.share_root == info.export


def test_parse_smb_ipv6_disk_path():
    info = parse_smb(smb_info(export="//[fd00::1%eth0]/vols/sub"))
    assert info.host == "fd00--1seth0.ipv6-literal.net"
    assert info.disk_path == "\\\\fd00--1seth0.ipv6-literal.net\\vols\\sub\\volume-1.vhdx"


def test_parse_smb_error_names_data_export():
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(export="//fs1"))
    assert_error(excinfo, "data.export", "'//fs1'", "no share name")
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(export=None))
    assert_error(excinfo, "data.export", "required")


@pytest.mark.parametrize("ci, field", [
    ({"data": {"export": "//fs1/v", "name": "v.vhd"}}, "driver_volume_type"),
    ({"driver_volume_type": "iscsi", "data": {}}, "driver_volume_type"),
    ({"driver_volume_type": "nfs", "data": {}}, "driver_volume_type"),
    ({"driver_volume_type": "smbfs"}, "data"),
    ({"driver_volume_type": "smbfs", "data": "//fs1/vols"}, "data"),
    ("smbfs", "connection_info"),
])
def test_parse_smb_envelope_errors(ci, field):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(ci)
    assert excinfo.value.field == field


def test_wrong_driver_type_points_at_the_right_parser():
    with pytest.raises(InvalidConnectionInfo, match="parse_iscsi"):
        parse_smb({"driver_volume_type": "iscsi", "data": {}})
    with pytest.raises(InvalidConnectionInfo, match="parse_smb"):
        parse_iscsi({"driver_volume_type": "smbfs", "data": {}})


@pytest.mark.parametrize("field, value", [
    ("volume_id", 12), ("volume_id", ""), ("volume_id", "ab\x00c"),
])
def test_volume_id_validation(field, value):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(**{field: value}))
    assert excinfo.value.field == "data.volume_id"


def test_serial_validation():
    assert parse_smb(dict(smb_info(), serial="abc")).serial == "abc"
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(dict(smb_info(), serial=["abc"]))
    assert excinfo.value.field == "serial"


# --------------------------------------------------------------------------- disk file


@pytest.mark.parametrize("name, fmt, disk_name, expected_fmt", [
    ("volume-1.vhdx", "vhdx", "volume-1.vhdx", "vhdx"),
    ("volume-1.vhd", "vhd", "volume-1.vhd", "vhd"),
    ("volume-1", "vhdx", "volume-1.vhdx", "vhdx"),
    ("volume-1", "vhd", "volume-1.vhd", "vhd"),
    ("volume-1", "vpc", "volume-1.vhd", "vhd"),
    ("volume-1.vhd", "vpc", "volume-1.vhd", "vhd"),
    ("volume-1", "VHDX", "volume-1.vhdx", "vhdx"),
    ("Volume-1.VHDX", "vhdx", "Volume-1.VHDX", "vhdx"),
    ("volume-1.vhdx", None, "volume-1.vhdx", "vhdx"),
    ("volume-1.vhd", None, "volume-1.vhd", "vhd"),
    ("volume-1.img", "vhdx", "volume-1.img.vhdx", "vhdx"),
    ("volume-1.snap.vhdx", "vhdx", "volume-1.snap.vhdx", "vhdx"),
    (".vhdx", "vhd", ".vhdx.vhd", "vhd"),
])
def test_disk_name_and_format(name, fmt, disk_name, expected_fmt):
    info = parse_smb(smb_info(name=name, format=fmt))
    assert (info.disk_name, info.format) == (disk_name, expected_fmt)


@pytest.mark.parametrize("name, fmt, field, why", [
    ("volume-1.vhd", "vhdx", "data.name", "contradicts"),
    ("volume-1.vhdx", "vhd", "data.name", "contradicts"),
    ("volume-1.vhdx", "vpc", "data.name", "contradicts"),
    ("volume-1", None, "data.format", "required"),
    ("volume-1", "raw", "data.format", "qemu-img convert"),
    ("volume-1", "qcow2", "data.format", "'vhdx'"),
    ("volume-1", "", "data.format", "'vhdx'"),
    ("volume-1", 1, "data.format", "must be a string"),
    (None, "vhdx", "data.name", "must be a string"),
    ("", "vhdx", "data.name", "empty"),
    ("..", "vhdx", "data.name", "relative path segment"),
    ("sub/volume-1", "vhdx", "data.name", "'/'"),
    ("sub\\volume-1", "vhdx", "data.name", "'\\\\'"),
    ("vol:1", "vhdx", "data.name", "':'"),
    ("vol*1", "vhdx", "data.name", "'*'"),
    ("volume-1.", "vhdx", "data.name", "ends with a dot"),
    ("vol\x00ume", "vhdx", "data.name", "NUL"),
    ("volume-1", "vh\x01dx", "data.format", "U+0001"),
])
def test_disk_name_errors(name, fmt, field, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(name=name, format=fmt))
    assert_error(excinfo, field, why)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("options, username, password", [
    ("-o username=svc,password=" + PASSWORD, "svc", PASSWORD),
    ("-o user=svc,pass=" + PASSWORD, "svc", PASSWORD),
    ("username=svc,password=" + PASSWORD, "svc", PASSWORD),
    ("-o vers=3.0,username=svc,password=" + PASSWORD + ",noperm", "svc", PASSWORD),
    ("-o username=CORP\\svc,password=" + PASSWORD, "CORP\\svc", PASSWORD),
    ("-o username=svc@corp.example.org,password=" + PASSWORD, "svc@corp.example.org",
     PASSWORD),
    ("-o username=svc,password=" + PASSWORD + ",domain=CORP", "CORP\\svc", PASSWORD),
    ("-o domain=CORP,user=svc,pass=" + PASSWORD, "CORP\\svc", PASSWORD),
    ("-o username=CORP\\svc,domain=corp,password=" + PASSWORD, "CORP\\svc", PASSWORD),
    ("-o username=svc -o password=" + PASSWORD, "svc", PASSWORD),
    ("-o username=svc, password=" + PASSWORD, "svc", PASSWORD),
    ("-o username=svc,password=a=b==", "svc", "a=b=="),
    ("-o username=svc,password=with space", "svc", "with space"),
    ("-o username=svc,password=", "svc", ""),
    ("-o USERNAME=svc,Password=" + PASSWORD, "svc", PASSWORD),
])
def test_options_credentials(options, username, password):
    cred = parse_options(options)
    assert cred == Credential(username, Secret(password))
    assert isinstance(cred.password, Secret)
    assert cred.password.reveal() == password


def test_password_with_a_single_comma_is_refused_never_cut_and_never_shown(caplog):
    """``password=ab,cd=ef``: a single comma ends the password (mount.cifs(8)); the rest is
    not a mount option, so the options are refused -- never cut to ``ab`` -- and neither
    piece reaches a log (at DEBUG) or the message."""
    pieces = ("Kq7zPiece", "Wv3Tail")
    caplog.set_level(logging.DEBUG)
    errors = []
    for options in ("-o vers=3.0,username=svc,password=ab,%s=%s,noperm" % pieces,
                    "-o username=svc,password=ab,%s" % pieces[0],
                    "-o username=svc,password=ab -o %s,vers=3.0" % pieces[0]):
        with pytest.raises(InvalidConnectionInfo) as err:
            parse_options(options)
        assert "',,'" in str(err.value) and "password=***" in str(err.value)
        errors.append(err.value)
    with pytest.raises(InvalidConnectionInfo) as err2:
        connection.parse_smb({"driver_volume_type": "smbfs", "data": {
            "export": "//fs01/vols", "name": "v.vhdx",
            "options": "-o username=svc,password=ab,%s=%s,vers=3.0" % pieces}})
    texts = [caplog.text, str(err2.value), repr(err2.value)]
    texts += [str(e) for e in errors] + [repr(e.kwargs) for e in errors]
    for text in texts:
        for piece in pieces + ("ab,",):
            assert piece.lower() not in text.lower()


@pytest.mark.parametrize("options, password", [
    ("-o username=svc,password=Sec,,ret1", "Sec,ret1"),
    ("-o username=svc,password=a,,b,,c,vers=3.0", "a,b,c"),
    ("-o username=svc,pass=trailing,,,noperm", "trailing,"),
    ("-o username=svc,password=,,lead", ",lead"),
    ("-o password=x,,y,username=svc", "x,y"),
])
def test_a_doubled_comma_is_a_comma_of_the_password(options, password):
    """mount.cifs(8): a comma in the password is written as two commas."""
    assert parse_options(options) == Credential("svc", Secret(password))


@pytest.mark.parametrize("options", [
    "username=svc password=Secret1",
    "username=svc;password=Secret1",
    "username=svc; pass=Secret1",
    "-o username=svc\tpassword=Secret1",
    "--username svc --password Secret1",
    "-o user=svc --pass Secret1",
    "domain=CORP username=svc,password=Secret1",
])
def test_options_not_separated_by_commas_are_refused_and_masked(options):
    options = options.replace("\\t", "\t")
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options(options)
    text = str(excinfo.value) + repr(excinfo.value.kwargs)
    assert "separate mount options with commas" in text
    assert "Secret1" not in text
    assert "password=Secret1" not in text and "svc password" not in text


@pytest.mark.parametrize("options, why", [
    ("-o credentials=/etc/cifs.cred", "credentials= names a file"),
    ("-o username=svc,credentials=/etc/cifs.cred", "credentials= names a file"),
    ("-o username=svc,passwd=Secret1", "'passwd=' is not a mount.cifs option"),
    ("-o username=svc,pwd=Secret1", "'pwd=' is not a mount.cifs option"),
    ("-o username=svc,smb_password=Secret1", "'smb_password=' is not"),
])
def test_options_where_credentials_were_meant_are_refused(options, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options(options)
    assert why in str(excinfo.value)
    assert "Secret1" not in str(excinfo.value) and "cifs.cred" not in str(excinfo.value)


def test_unknown_options_are_named_in_a_warning_never_their_values(caplog):
    caplog.set_level(logging.DEBUG, logger="smbvol.connection")
    cred = parse_options("-o foo=Val1ue,username=svc,bar_baz=Val2ue,Fl4gText,"
                         "password=" + PASSWORD + ",vers=3.0")
    assert cred == Credential("svc", Secret(PASSWORD))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "foo" in warnings[0] and "bar_baz" in warnings[0]
    assert "1 option(s) without a value" in warnings[0]
    for secret in ("Val1ue", "Val2ue", "Fl4gText", PASSWORD):
        assert secret not in caplog.text
    assert "vers" not in warnings[0]  # a mount.cifs option is expected, not a mistake


def test_options_without_credentials_warn_about_what_is_ignored(caplog):
    caplog.set_level(logging.WARNING, logger="smbvol.connection")
    assert parse_options("-o foo=bar") is None
    assert "ignoring foo" in caplog.text and "bar" not in caplog.text.replace("foo", "")


def test_password_for_supplies_the_missing_password():
    asked = []

    def password_for(user):
        asked.append(user)
        return Secret(PASSWORD)

    assert parse_options("-o username=CORP\\svc", password_for) == Credential(
        "CORP\\svc", Secret(PASSWORD))
    assert asked == ["CORP\\svc"]
    # A password in the options wins; password_for is not asked.
    assert parse_options("-o username=svc,password=p1", password_for).password == Secret("p1")
    assert asked == ["CORP\\svc"]
    info = parse_smb(smb_info(options="-o username=svc"), password_for)
    assert info.credential == Credential("svc", Secret(PASSWORD))


def test_option_messages_show_names_without_python_reprs():
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options("-o username=CORP\\svc")
    assert "gives user 'CORP\\svc' without a password" in str(excinfo.value)


@pytest.mark.parametrize("options, username, password", [
    ("-o username=first,username=second,password=p1,password=p2", "first", "p1"),
    ("-o user=first,username=second,pass=p1,password=p2", "first", "p1"),
    ("-o username=first,user=second,password=p1,pass=p2", "first", "p1"),
    ("-o username=svc,domain=A,domain=B,password=p1", "A\\svc", "p1"),
])
def test_options_first_occurrence_wins(options, username, password):
    assert parse_options(options) == Credential(username, Secret(password))


@pytest.mark.parametrize("options", [
    None, "", "   ", "-o", "-o vers=3.0,noperm", "-o guest", "-o guest,vers=3.0",
    "-o username=guest", "-o username=Guest,password=", "-o domain=CORP",
    "-o guest,username=svc,password=" + PASSWORD,
])
def test_options_without_credentials(options, caplog):
    caplog.set_level(logging.DEBUG, logger="smbvol.connection")
    assert parse_options(options) is None
    assert PASSWORD not in caplog.text


def test_guest_with_password_warns_without_the_password(caplog):
    caplog.set_level(logging.DEBUG, logger="smbvol.connection")
    assert parse_options("-o guest,username=svc,password=" + PASSWORD) is None
    assert "guest" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("options, why", [
    ("-o username=svc", "without a password"),
    ("-o username=svc,pass", "without a password"),
    ("-o password=" + PASSWORD, "without a user name"),
    ("-o pass=" + PASSWORD + ",domain=CORP", "without a user name"),
    ("-o username=svc@corp,domain=CORP,password=" + PASSWORD, "UPN"),
    ("-o username=OTHER\\svc,domain=CORP,password=" + PASSWORD, "another domain"),
    ("-o username=A\\B\\svc,password=" + PASSWORD, "not 'user'"),
    ("-o username=\\svc,password=" + PASSWORD, "not 'user'"),
    ("-o username=s*vc,password=" + PASSWORD, "'*'"),
    ("-o username=svc,domain=CO:RP,password=" + PASSWORD, "':'"),
    ("-o username=svc,domain=a\\b,password=" + PASSWORD, "plain domain"),
    ("-o username=sv\x01c,password=" + PASSWORD, "U+0001"),
    ("-o username=svc,password=" + PASSWORD + "\x00", "NUL"),
])
def test_options_errors_mask_the_password(options, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options(options)
    assert_error(excinfo, "data.options", why)
    for text in (str(excinfo.value), repr(excinfo.value), repr(excinfo.value.args),
                 repr(excinfo.value.kwargs)):
        assert PASSWORD not in text
    if "password=" in options or "pass=" in options:
        assert "=***" in str(excinfo.value)


def test_options_error_masks_unknown_flags_that_may_be_a_password():
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options("-o username=svc," + PASSWORD)
    assert PASSWORD not in str(excinfo.value)
    assert "username=svc" in str(excinfo.value)


@pytest.mark.parametrize("value", [42, {"password": PASSWORD}, ["-o", PASSWORD]])
def test_options_must_be_a_string(value):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options(value)
    assert_error(excinfo, "data.options", "must be a string")
    assert PASSWORD not in str(excinfo.value)


def test_options_error_through_parse_smb_names_the_field():
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(options="-o password=" + PASSWORD))
    assert_error(excinfo, "data.options", "-o password=***")
    assert PASSWORD not in str(excinfo.value)


def test_password_is_never_revealed_by_str_repr_format_or_json():
    info = parse_smb(smb_info(options="-o username=CORP\\svc,password=" + PASSWORD))
    assert info.credential.password.reveal() == PASSWORD
    texts = [str(info), repr(info), "%s" % (info,), "{}".format(info), f"{info!r}",
             str(info.credential), repr(info.credential), str(info.credential.password),
             repr(info.credential.password), format(info.credential.password, ">20"),
             f"{info.credential.password}",
             json.dumps({"credential": info.credential}, cls=RedactingJSONEncoder),
             json.dumps(info, cls=RedactingJSONEncoder)]
    for text in texts:
        assert PASSWORD not in text
    assert "CORP" in texts[1]  # the user name itself is shown
    with pytest.raises(TypeError):
        json.dumps(info.credential.password)
    with pytest.raises(TypeError):
        json.dumps({"password": info.credential.password})
    assert json.loads(json.dumps(info, cls=RedactingJSONEncoder))["credential"] == \
        {"username": "CORP\\svc", "password": "***"}


# --------------------------------------------------------------------------- access mode


@pytest.mark.parametrize("value, mode", [(None, "rw"), ("rw", "rw"), ("ro", "ro"),
                                         ("RO", "ro"), (" rw ", "rw")])
def test_access_mode(value, mode):
    data = {} if value is None else {"access_mode": value}
    smb = parse_smb(smb_info(**data))
    iscsi = parse_iscsi(iscsi_info(**data))
    assert smb.access_mode == iscsi.access_mode == mode
    assert smb.read_only is iscsi.read_only is (mode == "ro")


@pytest.mark.parametrize("value", ["rwx", "read-only", "", "r", 1, True])
def test_access_mode_errors(value):
    for parse, info in ((parse_smb, smb_info), (parse_iscsi, iscsi_info)):
        with pytest.raises(InvalidConnectionInfo) as excinfo:
            parse(info(access_mode=value))
        assert excinfo.value.field == "data.access_mode"
        assert "data.access_mode" in str(excinfo.value)


# --------------------------------------------------------------------------- QoS


@pytest.mark.parametrize("specs, expected", [
    (None, QoS()),
    ({}, QoS()),
    ({"total_iops_sec": 500}, QoS(max_iops=500)),
    ({"total_iops_sec": "500"}, QoS(max_iops=500)),
    ({"total_iops_sec": 0}, QoS()),
    ({"total_iops_sec": 100.2}, QoS(max_iops=101)),
    ({"total_bytes_sec": 8192}, QoS(max_iops=1)),
    ({"total_bytes_sec": 8193}, QoS(max_iops=2)),
    ({"total_bytes_sec": 1}, QoS(max_iops=1)),
    ({"total_bytes_sec": "81920000"}, QoS(max_iops=10000)),
    ({"total_bytes_sec": "1e6"}, QoS(max_iops=123)),
    ({"total_iops_sec": 100, "total_bytes_sec": 8192 * 300}, QoS(max_iops=300)),
    ({"total_iops_sec": 500, "total_bytes_sec": 8192 * 300}, QoS(max_iops=500)),
    ({"total_iops_sec": 0, "total_bytes_sec": 8192 * 3}, QoS(max_iops=3)),
    ({"total_iops_sec": 7, "total_bytes_sec": 0}, QoS(max_iops=7)),
    ({"min_iops_sec": 50}, QoS(min_iops=50)),
    ({"min_iops_sec": 50, "total_iops_sec": 50}, QoS(max_iops=50, min_iops=50)),
    ({"total_iops_sec": None}, QoS()),
])
def test_parse_qos(specs, expected, caplog):
    caplog.set_level(logging.WARNING, logger="smbvol.connection")
    assert parse_qos(specs) == expected
    assert caplog.records == []


def test_qos_ignored_keys_are_warned(caplog):
    caplog.set_level(logging.WARNING, logger="smbvol.connection")
    qos = parse_qos({"read_iops_sec": 5, "total_iops_sec": 10, "min_bytes_sec": 1,
                     "consumer": "front-end"})
    assert qos == QoS(max_iops=10, ignored=("consumer", "min_bytes_sec", "read_iops_sec"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "consumer, min_bytes_sec, read_iops_sec" in message
    assert "ignored" in message


def test_qos_through_parse_smb(caplog):
    caplog.set_level(logging.WARNING, logger="smbvol.connection")
    info = parse_smb(smb_info(qos_specs={"total_bytes_sec": 8192 * 10, "write_iops_sec": 3}))
    assert info.qos == QoS(max_iops=10, ignored=("write_iops_sec",))
    assert "write_iops_sec" in caplog.text


@pytest.mark.parametrize("specs, field, why", [
    ({"total_iops_sec": "fast"}, "data.qos_specs.total_iops_sec", "not a number"),
    ({"total_iops_sec": -1}, "data.qos_specs.total_iops_sec", "negative"),
    ({"total_iops_sec": "-5"}, "data.qos_specs.total_iops_sec", "negative"),
    ({"total_iops_sec": True}, "data.qos_specs.total_iops_sec", "non-negative number"),
    ({"total_iops_sec": [1]}, "data.qos_specs.total_iops_sec", "non-negative number"),
    ({"total_iops_sec": "nan"}, "data.qos_specs.total_iops_sec", "finite"),
    ({"total_iops_sec": float("inf")}, "data.qos_specs.total_iops_sec", "finite"),
    ({"total_iops_sec": "1e999999999"}, "data.qos_specs.total_iops_sec", "too large"),
    ({"total_iops_sec": 2 ** 64}, "data.qos_specs.total_iops_sec", "too large"),
    ({"total_bytes_sec": "1 KB"}, "data.qos_specs.total_bytes_sec", "not a number"),
    ({"total_bytes_sec": -8192}, "data.qos_specs.total_bytes_sec", "negative"),
    ({"min_iops_sec": "x"}, "data.qos_specs.min_iops_sec", "not a number"),
    ({"min_iops_sec": -1}, "data.qos_specs.min_iops_sec", "negative"),
    ({"min_iops_sec": 200, "total_iops_sec": 100}, "data.qos_specs.min_iops_sec",
     "above the limit"),
])
def test_qos_errors(specs, field, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_qos(specs)
    assert_error(excinfo, field, why)


def test_qos_must_be_a_dict():
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(qos_specs="total_iops_sec=5"))
    assert_error(excinfo, "data.qos_specs", "must be a JSON object")


# --------------------------------------------------------------------------- iSCSI


def test_parse_iscsi_single_target():
    info = parse_iscsi(dict(iscsi_info(volume_id="v1"), serial="s1"))
    assert info == IscsiConnectionInfo(
        driver_volume_type="iscsi",
        targets=(IscsiTarget(portal="192.0.2.10:3260", portal_host="192.0.2.10",
                             portal_port=3260, iqn=IQN, lun=0),),
        chap=None, access_mode="rw", volume_id="v1", serial="s1")
    assert info.multipath is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.targets = ()  # type: ignore[misc]


@pytest.mark.parametrize("portal, normalised, host, port", [
    ("192.0.2.10:3260", "192.0.2.10:3260", "192.0.2.10", 3260),
    ("192.0.2.10", "192.0.2.10:3260", "192.0.2.10", 3260),
    ("192.0.2.10:3261", "192.0.2.10:3261", "192.0.2.10", 3261),
    ("san1.example.org:860", "san1.example.org:860", "san1.example.org", 860),
    ("[fd00::1]:3260", "[fd00::1]:3260", "fd00::1", 3260),
    ("[fd00::1]", "[fd00::1]:3260", "fd00::1", 3260),
    ("[FD00:0:0::0:1]:3261", "[fd00::1]:3261", "fd00::1", 3261),
    ("[fe80::1%4]:3260", "[fe80::1%4]:3260", "fe80::1%4", 3260),
])
def test_iscsi_portals(portal, normalised, host, port):
    target = parse_iscsi(iscsi_info(target_portal=portal)).targets[0]
    assert (target.portal, target.portal_host, target.portal_port) == (normalised, host, port)


@pytest.mark.parametrize("portal, why", [
    ("fd00::1:3260", "in brackets"),
    ("fd00::1", "in brackets"),
    ("[fd00::1", "closing ']'"),
    ("[fd00::zz]:3260", "not a valid IPv6"),
    ("[fd00::1]3260", "after ']'"),
    ("[fd00::1]:", "port"),
    ("192.0.2.10:", "port"),
    ("192.0.2.10:0", "port"),
    ("192.0.2.10:65536", "port"),
    ("192.0.2.10:http", "port"),
    (":3260", "empty host"),
    ("", "host:port"),
    (" 192.0.2.10:3260", "no spaces"),
    ("san 1:3260", "not a host name"),
    ("san1..example:3260", "not a host name"),
    ("192.0.2.10\x00:3260", "NUL"),
    (3260, "must be a string"),
])
def test_iscsi_portal_errors(portal, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(target_portal=portal))
    assert_error(excinfo, "data.target_portal", why)


@pytest.mark.parametrize("iqn", [
    IQN, "IQN.1991-05.com.microsoft:host1-target1-target", "iqn.2001-04.com.example",
    "eui.02004567A425678D", "naa.52004567BA64678D", "naa.62004567BA64678D0123456789ABCDEF",
])
def test_iscsi_valid_iqns(iqn):
    assert parse_iscsi(iscsi_info(target_iqn=iqn)).targets[0].iqn == iqn


@pytest.mark.parametrize("iqn, why", [
    ("", "not an iSCSI name"), ("volume-1", "not an iSCSI name"),
    ("iqn.2010-10", "not an iSCSI name"), ("iqn.2010-10.org.x volume", "not an iSCSI name"),
    ("eui.0200", "not an iSCSI name"), ("iqn.2010-10.org." + "x" * 220, "at most 223"),
    ("iqn.2010-10.org.x:\x00", "NUL"), (None, "required"), (7, "must be a string"),
])
def test_iscsi_iqn_errors(iqn, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(target_iqn=iqn))
    assert_error(excinfo, "data.target_iqn", why)


@pytest.mark.parametrize("lun", [0, 1, 254, 16383])
def test_iscsi_lun(lun):
    assert parse_iscsi(iscsi_info(target_lun=lun)).targets[0].lun == lun


@pytest.mark.parametrize("lun, why", [
    (True, "integer"), (False, "integer"), (-1, "negative"), ("1", "integer"),
    (1.0, "integer"), (None, "required"), (2 ** 64, "too large"),
])
def test_iscsi_lun_errors(lun, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(target_lun=lun))
    assert_error(excinfo, "data.target_lun", why)


def test_iscsi_missing_portal():
    data = iscsi_info()
    del data["data"]["target_portal"]
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(data)
    assert_error(excinfo, "data.target_portal", "required", "target_portals")


def test_iscsi_multipath():
    info = parse_iscsi(iscsi_info(
        target_portals=["192.0.2.10:3260", "[fd00::2]", "192.0.2.11:3261"],
        target_iqns=[IQN, IQN, "iqn.2010-10.org.openstack:volume-1b"],
        target_luns=[0, 0, 3]))
    assert info.multipath is True
    assert info.targets == (
        IscsiTarget("192.0.2.10:3260", "192.0.2.10", 3260, IQN, 0),
        IscsiTarget("[fd00::2]:3260", "fd00::2", 3260, IQN, 0),
        IscsiTarget("192.0.2.11:3261", "192.0.2.11", 3261,
                    "iqn.2010-10.org.openstack:volume-1b", 3),
    )


def test_iscsi_multipath_lists_win_over_single_values_and_tuples_work():
    info = parse_iscsi(iscsi_info(target_portal="192.0.2.99:3260",
                                  target_portals=("192.0.2.10", "192.0.2.11"),
                                  target_iqns=(IQN, IQN), target_luns=(1, 1)))
    assert [t.portal for t in info.targets] == ["192.0.2.10:3260", "192.0.2.11:3260"]


def test_iscsi_multipath_duplicates_collapse():
    info = parse_iscsi(iscsi_info(target_portals=["192.0.2.10", "192.0.2.10:3260"],
                                  target_iqns=[IQN, IQN], target_luns=[1, 1]))
    assert len(info.targets) == 1
    assert info.multipath is False


@pytest.mark.parametrize("portals, iqns, luns, shown", [
    (["192.0.2.10", "192.0.2.11"], [IQN], [0, 0], "2/1/2"),
    (["192.0.2.10"], [IQN, IQN], [0, 0], "1/2/2"),
    (["192.0.2.10", "192.0.2.11"], [IQN, IQN], [0], "2/2/1"),
])
def test_iscsi_multipath_length_mismatch(portals, iqns, luns, shown):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(target_portals=portals, target_iqns=iqns, target_luns=luns))
    message = str(excinfo.value)
    for field in ("data.target_portals", "data.target_iqns", "data.target_luns"):
        assert field in message
        assert field in excinfo.value.field
    assert shown in message
    assert "same length" in message


@pytest.mark.parametrize("given_lists, missing", [
    ({"target_portals": ["192.0.2.10"]}, "target_iqns and target_luns"),
    ({"target_portals": ["192.0.2.10"], "target_iqns": [IQN]}, "target_luns"),
    ({"target_luns": [0]}, "target_portals and target_iqns"),
])
def test_iscsi_multipath_needs_all_three_lists(given_lists, missing):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(**given_lists))
    assert missing in str(excinfo.value)
    assert "data.target_portals" in excinfo.value.field


@pytest.mark.parametrize("lists, field, why", [
    ({"target_portals": [], "target_iqns": [], "target_luns": []},
     "data.target_portals", "empty"),
    ({"target_portals": "192.0.2.10", "target_iqns": [IQN], "target_luns": [0]},
     "data.target_portals", "must be a list"),
    ({"target_portals": ["192.0.2.10"], "target_iqns": [IQN], "target_luns": 0},
     "data.target_luns", "must be a list"),
    ({"target_portals": ["192.0.2.10", "fd00::1"], "target_iqns": [IQN, IQN],
      "target_luns": [0, 0]}, "data.target_portals[1]", "in brackets"),
    ({"target_portals": ["192.0.2.10", "192.0.2.11"], "target_iqns": [IQN, "bad"],
      "target_luns": [0, 0]}, "data.target_iqns[1]", "not an iSCSI name"),
    ({"target_portals": ["192.0.2.10", "192.0.2.11"], "target_iqns": [IQN, IQN],
      "target_luns": [0, True]}, "data.target_luns[1]", "integer"),
    ({"target_portals": ["192.0.2.10"], "target_iqns": [IQN], "target_luns": [-2]},
     "data.target_luns[0]", "negative"),
])
def test_iscsi_multipath_entry_errors(lists, field, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(**lists))
    assert_error(excinfo, field, why)


@pytest.mark.parametrize("method", ["CHAP", "chap", " Chap "])
def test_iscsi_chap(method):
    info = parse_iscsi(iscsi_info(auth_method=method, auth_username="chapuser",
                                  auth_password=CHAP_SECRET))
    assert info.chap == Credential("chapuser", Secret(CHAP_SECRET))
    assert isinstance(info.chap.password, Secret)
    for text in (repr(info), str(info), f"{info}", json.dumps(info, cls=RedactingJSONEncoder)):
        assert CHAP_SECRET not in text
    assert "chapuser" in repr(info)


def test_iscsi_chap_accepts_a_secret():
    info = parse_iscsi(iscsi_info(auth_method="CHAP", auth_username="u",
                                  auth_password=Secret(CHAP_SECRET)))
    assert info.chap.password.reveal() == CHAP_SECRET


@pytest.mark.parametrize("data", [
    {}, {"auth_method": None}, {"auth_method": ""},
    {"auth_username": "u", "auth_password": CHAP_SECRET},
])
def test_iscsi_without_chap(data, caplog):
    caplog.set_level(logging.DEBUG, logger="smbvol.connection")
    assert parse_iscsi(iscsi_info(**data)).chap is None
    assert CHAP_SECRET not in caplog.text


@pytest.mark.parametrize("data, field, why", [
    ({"auth_method": "CHAP", "auth_password": CHAP_SECRET}, "data.auth_username", "required"),
    ({"auth_method": "CHAP", "auth_username": "", "auth_password": CHAP_SECRET},
     "data.auth_username", "required"),
    ({"auth_method": "CHAP", "auth_username": 5, "auth_password": CHAP_SECRET},
     "data.auth_username", "must be a string"),
    ({"auth_method": "CHAP", "auth_username": "u\x00", "auth_password": CHAP_SECRET},
     "data.auth_username", "NUL"),
    ({"auth_method": "CHAP", "auth_username": "u"}, "data.auth_password", "required"),
    ({"auth_method": "CHAP", "auth_username": "u", "auth_password": ""},
     "data.auth_password", "required"),
    ({"auth_method": "CHAP", "auth_username": "u", "auth_password": 1234567890123},
     "data.auth_password", "must be a string"),
    ({"auth_method": "CHAP", "auth_username": "u", "auth_password": CHAP_SECRET + "\x00"},
     "data.auth_password", "NUL"),
    ({"auth_method": "CHAP", "auth_username": "u",
      "auth_password": Secret(CHAP_SECRET + "\x00")}, "data.auth_password", "NUL"),
    ({"auth_method": "MD5", "auth_username": "u", "auth_password": CHAP_SECRET},
     "data.auth_method", "only 'CHAP'"),
    ({"auth_method": "None"}, "data.auth_method", "only 'CHAP'"),
    ({"auth_method": 1}, "data.auth_method", "must be a string"),
])
def test_iscsi_chap_errors(data, field, why):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(**data))
    assert_error(excinfo, field, why)
    for text in (str(excinfo.value), repr(excinfo.value), repr(excinfo.value.kwargs)):
        assert CHAP_SECRET not in text
        assert "1234567890123" not in text


@pytest.mark.parametrize("ci, field", [
    ({"driver_volume_type": "smbfs", "data": {}}, "driver_volume_type"),
    ({"driver_volume_type": None, "data": {}}, "driver_volume_type"),
    ({"driver_volume_type": "iscsi", "data": None}, "data"),
    (None, "connection_info"),
])
def test_parse_iscsi_envelope_errors(ci, field):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(ci)
    assert excinfo.value.field == field


def test_parse_iscsi_ids():
    info = parse_iscsi(dict(iscsi_info(volume_id="vol-1"), serial="ser-1"))
    assert (info.volume_id, info.serial) == ("vol-1", "ser-1")
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_iscsi(iscsi_info(volume_id="a\x00"))
    assert excinfo.value.field == "data.volume_id"


# --------------------------------------------------------------------------- properties

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_HOSTNAME = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)
_IPV4 = st.ip_addresses(v=4).map(str)
_IPV6 = st.ip_addresses(v=6).map(str)
_NAME_CHARS = string.ascii_letters + string.digits + "-_$.' ()!#&{}~^@éßü日本"
_SHARE = st.text(alphabet=_NAME_CHARS, min_size=1, max_size=20).filter(
    lambda s: s not in (".", "..") and not s.endswith((".", " ")))
_SEGMENT = st.text(alphabet=_NAME_CHARS + "+=;,[] ", min_size=1, max_size=20).filter(
    lambda s: s not in (".", "..") and not s.endswith((".", " ")))
_SEPARATOR = st.sampled_from(["/", "\\"])
# Passwords: anything but the separators of the options format and control characters;
# the leading '§' never occurs in any other field, so a leak cannot hide in a coincidence.
_PASSWORD = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                           blacklist_characters=","),
    min_size=1, max_size=30).map(lambda s: "\u00a7" + s)


def _join(host, share, segments, seps):
    text = host
    for part, sep in zip([share] + segments, seps):
        text += sep + part
    return text


@settings(max_examples=200, deadline=None)
@given(host=st.one_of(_HOSTNAME, _IPV4), share=_SHARE,
       segments=st.lists(_SEGMENT, max_size=4), data=st.data())
def test_property_both_slash_forms_normalise_to_the_same_unc(host, share, segments, data):
    forward = "//" + host + "/" + share + "".join("/" + s for s in segments)
    backward = "\\\\" + host + "\\" + share + "".join("\\" + s for s in segments)
    seps = data.draw(st.lists(_SEPARATOR, min_size=len(segments) + 1,
                              max_size=len(segments) + 1))
    mixed = data.draw(st.sampled_from(["//", "\\\\", "/\\", "\\/"])) + _join(
        host, share, segments, seps)
    expected = (host, share, "\\".join(segments))
    assert normalise_export(forward) == normalise_export(backward) == \
        normalise_export(mixed) == expected
    assert unc_path(*expected) == "\\\\" + host + "\\" + share + "".join(
        "\\" + s for s in segments)


@settings(max_examples=100, deadline=None)
@given(address=_IPV6, bracketed=st.booleans(), share=_SHARE)
def test_property_ipv6_hosts(address, bracketed, share):
    host_text = "[%s]" % address if bracketed else address
    forward = normalise_export("//%s/%s" % (host_text, share))
    backward = normalise_export("\\\\%s\\%s" % (host_text, share))
    assert forward == backward
    host = forward[0]
    assert host.endswith(".ipv6-literal.net")
    assert ":" not in host and not host.startswith("-")
    label = host[:-len(".ipv6-literal.net")]
    assert ipaddress.IPv6Address(label.replace("-", ":")) == ipaddress.IPv6Address(address)


@settings(max_examples=200, deadline=None)
@given(host=_HOSTNAME, share=_SHARE, password=_PASSWORD,
       user=st.sampled_from(["svc", "CORP\\svc", "svc@corp.example"]),
       keys=st.sampled_from([("username", "password"), ("user", "pass")]))
def test_property_password_never_in_repr(host, share, password, user, keys):
    options = "-o %s=%s,%s=%s" % (keys[0], user, keys[1], password)
    info = parse_smb(smb_info(export="//%s/%s" % (host, share), options=options))
    assert info.credential.password.reveal() == password
    escaped = repr(password)[1:-1]
    for text in (repr(info), str(info), repr(info.credential),
                 json.dumps(info, cls=RedactingJSONEncoder)):
        assert password not in text
        assert escaped not in text


@settings(max_examples=100, deadline=None)
@given(password=_PASSWORD, extra=st.sampled_from(["", ",domain=a\\b", ",username=x*y"]))
def test_property_password_never_in_an_options_error(password, extra):
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_options("-o password=%s%s" % (password, extra))
    escaped = repr(password)[1:-1]
    for text in (str(excinfo.value), repr(excinfo.value), repr(excinfo.value.kwargs)):
        assert password not in text
        assert escaped not in text


def test_module_exports_the_contract_names():
    for name in ("QoS", "SmbConnectionInfo", "IscsiTarget", "IscsiConnectionInfo",
                 "normalise_export", "unc_path", "parse_smb", "parse_iscsi", "parse_options",
                 "parse_qos"):
        assert callable(getattr(connection, name))


@pytest.mark.parametrize("name, fmt", [("volume-1.qcow2", None), ("volume-1.qcow2", "vhd"),
                                       ("disk.VMDK", "vhdx"), ("v.raw", None)])
def test_other_hypervisors_images_are_refused_with_the_conversion_advice(name, fmt):
    """Never ``volume-1.qcow2.vhd``: the name says the image is not a VHD."""
    with pytest.raises(InvalidConnectionInfo) as excinfo:
        parse_smb(smb_info(name=name, format=fmt))
    assert excinfo.value.kwargs["field"] == "data.name"
    assert "qemu-img convert -O vhdx" in str(excinfo.value)
