"""Every contract vector passes against the host double, through the real executor path.

FakeExecutor(HostDouble.handler) → Executor.run (parameter checks) → the envelope printed
and parsed again → a ScriptResult or the exception of the error kind: the same path a real
host's answer takes.  The live suite replays the same files (tests/integration/).
"""

from __future__ import annotations

import json
import logging

import pytest

from smbvol import exceptions, scripts
from smbvol.envelope import ScriptResult
from tests import contract_runner as cr

VECTORS = cr.load_vectors()


def _script(vector):
    # The double answers by operation name; while a template is not written yet, the
    # catalog entry stands in for the rendered text (the executor never reads it here).
    if cr.template_exists(vector["operation"]):
        return cr.script_for(vector)
    return cr.catalog_script(vector)


def _run(vector):
    vector = cr.substitute(vector, cr.DOUBLE_NAMES)
    double = cr.double_for(vector)
    outcome = cr.run_vector(double.executor(), vector, cr.DOUBLE_SECRETS, script=_script(vector))
    return vector, double, outcome


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_passes_against_the_double(vector):
    vector, double, outcome = _run(vector)
    problems = cr.compare(outcome, vector)
    if "expect_state" in vector:
        problems += cr.compare_state(double.to_dict(), vector["expect_state"])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_no_secret_in_anything_the_double_prints(vector, caplog):
    caplog.set_level(logging.DEBUG)
    vector, double, outcome = _run(vector)
    printed = [json.dumps(double.to_dict()), repr(double.calls), caplog.text]
    if isinstance(outcome, ScriptResult):
        printed += [json.dumps(outcome.result), " ".join(outcome.warnings)]
    else:
        printed += [str(outcome), json.dumps(getattr(outcome, "data", {}), default=str)]
    for secret in cr.DOUBLE_SECRETS.values():
        assert not any(secret in text for text in printed)


def test_every_error_kind_of_every_smb_operation_has_a_vector():
    covered = {(v["operation"], v["expect"]["error"]) for v in VECTORS if "error" in v["expect"]}
    missing = sorted((op, kind) for op in cr.SMB_OPERATIONS
                     for kind in scripts.OPERATIONS[op].error_kinds if (op, kind) not in covered)
    assert not missing, "no vector for: %s" % ", ".join("%s/%s" % m for m in missing)


def test_every_smb_operation_has_a_success_vector_and_the_suite_is_large():
    ops = {v["operation"] for v in VECTORS if "result" in v["expect"]}
    assert set(cr.SMB_OPERATIONS) <= ops
    assert set(cr.SMB_OPERATIONS) <= set(scripts.OPERATIONS)
    assert len(VECTORS) >= 40


def test_every_vector_can_be_filled_with_the_double_names():
    for vector in VECTORS:
        assert cr.placeholders(vector) <= set(cr.DOUBLE_NAMES), vector["id"]
        filled = cr.substitute(vector, cr.DOUBLE_NAMES)
        assert not cr.placeholders(filled)


def test_live_vectors_need_no_double_only_state():
    # What the live suite cannot set up must be marked live: false with a reason.
    for vector in VECTORS:
        if not vector["live"]:
            assert vector["live_reason"].strip()
            continue
        state = vector.get("state") or {}
        host = state.get("host") or {}
        assert not state.get("fail_next"), vector["id"]
        assert not state.get("locks_held"), vector["id"]
        assert host.get("global_mapping_supported", True), vector["id"]
        assert not host.get("remote_session"), vector["id"]
        for m in state.get("mappings") or ():
            assert m.get("status", "OK") == "OK", vector["id"]
        for vm in (state.get("vms") or {}).values():
            assert "fill_scsi" not in vm, vector["id"]


# --------------------------------------------------------------------------
# The runner itself: each comparison must be able to fail.
# --------------------------------------------------------------------------

def _ok(result, warnings=()):
    return ScriptResult(operation="mount_share", host="h", result=result,
                        warnings=tuple(warnings))


def _vector(expect, operation="mount_share"):
    return {"id": "t", "operation": operation, "parameters": {}, "expect": expect,
            "live": True}


FULL_MOUNT = {"share_path": "s", "disk_path": "d", "local": False, "local_path": None,
              "mapping_created": True, "mapping_kind": "global", "changed": True}


def test_compare_reports_a_different_field_a_missing_field_and_a_bool_for_an_int():
    assert cr.compare(_ok(FULL_MOUNT), _vector({"result": {"disk_path": "d"}})) == []
    assert cr.compare(_ok(FULL_MOUNT), _vector({"result": {"disk_path": "x"}}))
    partial = dict(FULL_MOUNT)
    del partial["changed"]
    assert cr.compare(_ok(partial), _vector({"result": {"disk_path": "d"}}))
    assert cr.compare(_ok(dict(FULL_MOUNT, local=0)), _vector({"result": {"local": False}}))


def test_compare_reports_lists_of_another_length_and_warnings():
    assert cr.subset_mismatches([1, 2], [1, 2, 3], "x")
    assert cr.subset_mismatches([{"a": 1}], [{"a": 1, "b": 2}], "x") == []
    assert cr.compare(_ok(FULL_MOUNT, ["w"]), _vector({"result": {}, "warnings": []}))
    assert cr.compare(_ok(FULL_MOUNT), _vector({"result": {}, "warnings": ["VMMS"]}))
    assert cr.compare(_ok(FULL_MOUNT, ["no VMMS here"]),
                      _vector({"result": {}, "warnings": ["VMMS"]})) == []


def test_compare_errors_kind_code_data_and_message():
    exc = exceptions.host_error("mapping_conflict", operation="mount_share", host="h",
                                detail="share \\\\fs\\v conflict", native_code=1219,
                                data={"share": "\\\\fs\\v"})
    good = {"error": "mapping_conflict", "native_code": 1219, "data": {"share": "\\\\fs\\v"},
            "message_contains": ["\\\\FS\\V"]}
    assert cr.compare(exc, _vector(good)) == []
    for bad in ({"error": "access_denied"}, dict(good, native_code=5),
                dict(good, data={"share": "other"}), dict(good, message_contains=["nope"])):
        assert cr.compare(exc, _vector(bad))
    assert cr.compare(_ok(FULL_MOUNT), _vector({"error": "access_denied"}))
    assert cr.compare(exc, _vector({"result": {}}))


def test_validate_vector_rejects_schema_errors():
    good = _vector({"result": {"disk_path": "d"}})
    assert cr.validate_vector(good) == []
    assert cr.validate_vector(dict(good, operation="nope"))
    assert cr.validate_vector(dict(good, parameters={"NoSuch": 1}))
    assert cr.validate_vector(dict(good, expect={"error": "vm_not_found"}))  # not a mount kind
    assert cr.validate_vector(dict(good, expect={"result": {"no_field": 1}}))
    assert cr.validate_vector(dict(good, expect={"result": {}, "error": "unexpected"}))
    assert cr.validate_vector(dict(good, live=False))  # no live_reason
    assert cr.validate_vector(dict(good, options={"no_option": True}))
    assert cr.validate_vector(dict(good, extra=1))


def test_load_vectors_rejects_duplicate_ids(tmp_path):
    v = _vector({"result": {}})
    (tmp_path / "a.json").write_text(json.dumps([v]))
    (tmp_path / "b.json").write_text(json.dumps([v]))
    with pytest.raises(cr.VectorError, match="vector id t"):
        cr.load_vectors(str(tmp_path))
    (tmp_path / "b.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(cr.VectorError, match="list"):
        cr.load_vectors(str(tmp_path))


def test_substitute_and_build_parameters():
    vector = {"parameters": {"SharePath": "${SHARE}\\x",
                             "ShareCredential": {"username": "${U}", "password_ref": "share"}},
              "state": {"vms": {"${VM}": {}}}}
    out = cr.substitute(vector, {"SHARE": "\\\\s\\v", "U": "dom\\u", "VM": "vm1"})
    assert out["parameters"]["SharePath"] == "\\\\s\\v\\x"
    assert out["state"]["vms"] == {"vm1": {}}
    assert vector["parameters"]["SharePath"] == "${SHARE}\\x"  # the original is untouched
    with pytest.raises(KeyError, match="VM"):
        cr.substitute(vector, {"SHARE": "a", "U": "b"})
    params = cr.build_parameters(out["parameters"], {"share": "pw"})
    cred = params["ShareCredential"]
    assert cred.username == "dom\\u" and cred.password.reveal() == "pw"
    with pytest.raises(KeyError, match="share"):
        cr.build_parameters(out["parameters"], {})
    listed = cr.build_parameters({"ShareCredentials": [None, {"username": "a",
                                                              "password_ref": "share"}]},
                                 {"share": "pw"})
    assert listed["ShareCredentials"][0] is None
    assert listed["ShareCredentials"][1].password.reveal() == "pw"
