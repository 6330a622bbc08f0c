"""The envelope parser: finding, validating and mapping the one result document."""

import json

import pytest

from smbvol import envelope, exceptions

OK_DOC = {"ok": True, "result": {"disk_path": "\\\\fs01\\vols\\v.vhdx"}, "warnings": []}


def line(doc):
    return envelope.format_envelope(doc)


@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: "\ufeff" + s,
    lambda s: "WARNING: something\r\n" + s + "\r\n",
    lambda s: "#< CLIXML\r\n<Objs Version=\"1.1.0.1\"><Obj S=\"progress\" RefId=\"0\"/></Objs>"
              + s,
    lambda s: "noise before " + s + " noise after\n\nmore",
])
def test_finds_the_envelope_whatever_surrounds_it(wrap):
    res = envelope.parse(wrap(line(OK_DOC)), operation="mount_share", host="hv01")
    assert res.result == OK_DOC["result"]
    assert res.operation == "mount_share" and res.host == "hv01"


def test_markers_split_by_crlf_are_still_found():
    text = line(OK_DOC)
    broken = text.replace("@@SMBVOL-BEGIN@@", "@@SMBVOL-BEGIN@@\r\n")
    assert envelope.parse(broken, operation="x").result == OK_DOC["result"]


def test_non_ascii_round_trip():
    doc = {"ok": True, "result": {"vm_name": "Ünïcødé ✓ 日本"}}
    assert envelope.parse(line(doc), operation="x").result["vm_name"] == "Ünïcødé ✓ 日本"


def test_warnings_are_returned_and_a_scalar_warning_becomes_a_list(caplog):
    doc = {"ok": True, "result": {}, "warnings": "VMMS may not see a user mapping"}
    res = envelope.parse(line(doc), operation="mount_share", host="hv01")
    assert res.warnings == ("VMMS may not see a user mapping",)
    assert "VMMS may not see" in caplog.text


def test_no_envelope_is_its_own_error_with_masked_bounded_excerpt():
    out = "Access is denied for password Hunter2-Secret\n" + "x" * 10000
    with pytest.raises(exceptions.NoEnvelope) as ei:
        envelope.parse(out, operation="attach_vhd", exit_code=1, secrets=["Hunter2-Secret"])
    msg = str(ei.value)
    assert "Hunter2-Secret" not in msg and "***" in msg
    assert len(ei.value.excerpt) < 2200
    assert "exit code 1" in msg and "attach_vhd" in msg


def test_two_envelopes_is_an_error():
    with pytest.raises(exceptions.MultipleEnvelopes) as ei:
        envelope.parse(line(OK_DOC) + "\n" + line(OK_DOC), operation="x")
    assert ei.value.kwargs["count"] == 2


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"ok": "yes"}',
                                  '{"ok": true, "result": [1]}', '{"ok": false, "error": {}}'])
def test_malformed_documents(body):
    with pytest.raises(exceptions.MalformedEnvelope):
        envelope.parse(envelope.BEGIN + body + envelope.END, operation="x")


@pytest.mark.parametrize("kind", sorted(exceptions.HOST_ERRORS))
def test_every_error_kind_maps_to_its_exception(kind):
    doc = envelope.error(kind, "it failed for VM instance-1", data={"vm": "instance-1"},
                         native_code=1219)
    with pytest.raises(exceptions.HostOperationError) as ei:
        envelope.parse(line(doc), operation="attach_vhd", host="hv01")
    assert type(ei.value) is exceptions.HOST_ERRORS[kind]
    assert ei.value.kind == kind
    assert ei.value.native_code == 1219
    assert ei.value.data == {"vm": "instance-1"}
    assert "instance-1" in str(ei.value) and "hv01" in str(ei.value)


def test_unknown_kind_is_unexpected():
    with pytest.raises(exceptions.UnexpectedHostError):
        envelope.parse(line(envelope.error("weird_kind", "boom")), operation="x")


def test_error_message_secrets_are_masked():
    doc = envelope.error("access_denied", "logon failure for svc with S3cret!")
    with pytest.raises(exceptions.AccessDenied) as ei:
        envelope.parse(line(doc), operation="mount_share", secrets=["S3cret!"])
    assert "S3cret!" not in str(ei.value)


def test_format_envelope_is_one_line_json():
    text = line({"ok": True, "result": {"a": "line1\nline2"}})
    assert "\n" not in text
    assert json.loads(text[len(envelope.BEGIN):-len(envelope.END)])["result"]["a"] == \
        "line1\nline2"
