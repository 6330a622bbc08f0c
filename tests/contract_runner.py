"""The contract vectors (tests/contract/*.json): load, fill in, run, compare.

One vector is one operation run on a host in a known state, with the result (a subset of its
fields) or the error kind it must give; the schema is in ``tests/contract/README.md``.  The
same files are replayed against the host double (tests/test_contract.py) and against a real
Windows host (tests/integration/); this module is the part both share:

* :func:`load_vectors` reads and checks every file;
* :func:`substitute` fills the ``${NAME}`` placeholders (the double uses :data:`DOUBLE_NAMES`,
  the live suite the names of its lab);
* :func:`build_parameters` turns ``{"username", "password_ref"}`` into
  :class:`~smbvol.secret.Credential` objects from a table of test secrets;
* :func:`run_vector` runs the operation through an executor (the real path: parameter checks,
  envelope parsing, exception mapping) and returns the result or the host error;
* :func:`compare` / :func:`compare_state` list what differs from the vector's expectations.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from smbvol import exceptions, scripts
from smbvol.envelope import ScriptResult
from smbvol.secret import Credential, Secret
from smbvol.testing import CHAP_SECRETS, DEFAULT_SECRETS, HostDouble

CONTRACT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contract")

#: The SMB operations the vectors must cover (every catalog error kind of each).
SMB_OPERATIONS = ("mount_share", "unmount_share", "attach_vhd", "attach_vhds", "detach_vhd",
                  "list_attachments", "host_info")
#: The iSCSI operations the vectors must cover (tests/test_iscsi.py checks them).
ISCSI_OPERATIONS = ("iscsi_connect", "iscsi_attach", "iscsi_detach", "iscsi_disconnect",
                    "iscsi_connector")

REQUIRED_KEYS = ("id", "operation", "parameters", "expect", "live")
OPTIONAL_KEYS = ("description", "options", "state", "expect_state", "live_reason", "file",
                 "engine", "engine_reason")
EXPECT_KEYS = ("result", "warnings", "error", "native_code", "data", "message_contains")

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")

#: Placeholder values for the host double.  The live suite passes its own table (the lab's
#: VM names and ids, its share, images and host names) to :func:`substitute`.
DOUBLE_NAMES: Mapping[str, str] = {
    "HOST": "hv01",
    "HOST_DOMAIN": "example.test",
    "HOST_FQDN": "hv01.example.test",
    "HOST_IPV4": "10.0.0.11",
    "HOST_IPV6": "fd00::11",
    "HOST_IPV6_LITERAL": "fd00--11.ipv6-literal.net",
    "VM_GEN2": "smbvol-gen2",
    "VM_GEN2_ID": "6d0a2bb4-54f4-4c8e-9a3e-2f4a7c1b0002",
    "VM_GEN1": "smbvol-gen1",
    "VM_GEN1_ID": "6d0a2bb4-54f4-4c8e-9a3e-2f4a7c1b0001",
    "SHARE": "\\\\fs01.example.test\\smbvol",
    "SHARE_SERVER": "fs01.example.test",
    "SHARE_USER": "EXAMPLE\\svc-smbvol",
    "OTHER_SHARE": "\\\\fs01.example.test\\smbvol-other",
    "OTHER_USER": "EXAMPLE\\svc-other",
    "UNREACHABLE_SHARE": "\\\\smbvol-unreachable.invalid\\vols",
    "IPV6_SHARE": "\\\\fd00--20.ipv6-literal.net\\vols",
    "IMAGE1": "smbvol-1.vhdx",
    "IMAGE2": "smbvol-2.vhdx",
    "IMAGE3": "smbvol-3.vhdx",
    "VHD1": "smbvol-1.vhd",
    "MISSING_IMAGE": "smbvol-missing.vhdx",
    "LOCAL_SHARE_NAME": "smbvol-local",
    "LOCAL_SHARE_PATH": "C:\\smbvol\\local",
    # iSCSI (tests/contract/iscsi_*.json)
    "ISCSI_PORTAL": "10.0.0.50:3260",
    "ISCSI_PORTAL2": "10.0.1.50:3260",
    "ISCSI_UNREACHABLE_PORTAL": "192.0.2.99:3260",
    "ISCSI_IQN": "iqn.2010-10.org.openstack:smbvol-1",
    "ISCSI_IQN2": "iqn.2010-10.org.openstack:smbvol-2",
    "ISCSI_INITIATOR": "iqn.1991-05.com.microsoft:hv01.example.test",
    "CHAP_USER": "smbvol-chap",
}

#: ``password_ref`` → password for the double ("share" right, "wrong" not, "other" another
#: account's).  The live suite passes the real share password for "share".
DOUBLE_SECRETS: Mapping[str, str] = dict(DEFAULT_SECRETS, **CHAP_SECRETS)

Outcome = Union[ScriptResult, BaseException]


class VectorError(ValueError):
    """A vector file that does not follow the schema."""


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def vector_files(directory: str = CONTRACT_DIR) -> List[str]:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory)
                  if n.endswith(".json"))


def load_vectors(directory: str = CONTRACT_DIR,
                 operations: Optional[Iterable[str]] = None) -> List[Dict[str, Any]]:
    """Every vector of every ``*.json`` file (each gets ``"file"``), checked; ids unique."""
    wanted = set(operations) if operations is not None else None
    out: List[Dict[str, Any]] = []
    seen: Dict[str, str] = {}
    for path in vector_files(directory):
        with open(path, encoding="utf-8") as f:
            try:
                doc = json.load(f)
            except ValueError as exc:
                raise VectorError("%s: not valid JSON: %s" % (path, exc)) from exc
        if not isinstance(doc, list):
            raise VectorError("%s: a vector file holds a JSON list of vectors" % path)
        for vector in doc:
            vector = dict(vector)
            vector["file"] = os.path.basename(path)
            problems = validate_vector(vector)
            if problems:
                raise VectorError("%s: vector %s: %s" % (path, vector.get("id"),
                                                         "; ".join(problems)))
            if vector["id"] in seen:
                raise VectorError("vector id %s is in %s and %s"
                                  % (vector["id"], seen[vector["id"]], vector["file"]))
            seen[vector["id"]] = vector["file"]
            if wanted is None or vector["operation"] in wanted:
                out.append(vector)
    return out


def validate_vector(vector: Mapping[str, Any]) -> List[str]:
    """What is wrong with ``vector`` against the schema (empty: nothing)."""
    problems = []
    for key in REQUIRED_KEYS:
        if key not in vector:
            problems.append("missing key %r" % key)
    for key in sorted(set(vector) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS)):
        problems.append("unknown key %r" % key)
    op = vector.get("operation")
    if op not in scripts.OPERATIONS:
        problems.append("unknown operation %r" % (op,))
        return problems
    operation = scripts.OPERATIONS[op]
    params = vector.get("parameters")
    if not isinstance(params, dict):
        problems.append("parameters must be an object")
    else:
        known = {p.name for p in operation.params}
        for name in sorted(set(params) - known):
            problems.append("%s has no parameter %r" % (op, name))
    for name in sorted(set(vector.get("options") or {}) - set(operation.options)):
        problems.append("%s has no option %r" % (op, name))
    expect = vector.get("expect")
    if not isinstance(expect, dict):
        problems.append("expect must be an object")
    else:
        for key in sorted(set(expect) - set(EXPECT_KEYS)):
            problems.append("unknown expect key %r" % key)
        if ("result" in expect) == ("error" in expect):
            problems.append("expect holds exactly one of 'result' and 'error'")
        if "error" in expect and expect["error"] not in operation.error_kinds:
            problems.append("%s does not report %r (catalog kinds: %s)"
                            % (op, expect["error"], ", ".join(operation.error_kinds)))
        if "result" in expect:
            if not isinstance(expect["result"], dict):
                problems.append("expect.result must be an object")
            else:
                for field in sorted(set(expect["result"]) - set(operation.result_fields)):
                    problems.append("%s has no result field %r" % (op, field))
    if not isinstance(vector.get("live"), bool):
        problems.append("live must be true or false")
    elif vector["live"] is False and not vector.get("live_reason"):
        problems.append("live false needs a live_reason")
    if "engine" in vector and vector["engine"] is not False:
        problems.append("engine is only ever false (with engine_reason); leave it out otherwise")
    elif vector.get("engine") is False and not vector.get("engine_reason"):
        problems.append("engine false needs an engine_reason")
    return problems


# --------------------------------------------------------------------------
# Filling in
# --------------------------------------------------------------------------

def placeholders(value: Any) -> set:
    """Every ``${NAME}`` used anywhere in ``value`` (keys included)."""
    found: set = set()
    if isinstance(value, str):
        found.update(_PLACEHOLDER.findall(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            found |= placeholders(k) | placeholders(v)
    elif isinstance(value, list):
        for v in value:
            found |= placeholders(v)
    return found


def substitute(vector: Any, names: Mapping[str, str]) -> Any:
    """A deep copy of ``vector`` with every ``${NAME}`` replaced from ``names``."""
    missing = sorted(placeholders(vector) - set(names))
    if missing:
        raise KeyError("no value for placeholder(s) %s" % ", ".join(missing))

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return _PLACEHOLDER.sub(lambda m: names[m.group(1)], value)
        if isinstance(value, dict):
            return {fill(k): fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return copy.deepcopy(value)

    return fill(vector)


def build_parameters(parameters: Mapping[str, Any],
                     secrets: Mapping[str, Any]) -> Dict[str, Any]:
    """Parameters for :meth:`Executor.run`: credential objects become Credentials."""

    def credential(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"username", "password_ref"}:
            ref = value["password_ref"]
            if ref not in secrets:
                raise KeyError("no test secret for password_ref %r" % ref)
            return Credential(value["username"], Secret(secrets[ref]))
        if isinstance(value, list):
            return [credential(v) for v in value]
        return value

    return {k: credential(v) for k, v in parameters.items()}


def template_exists(operation: str) -> bool:
    return scripts.get_operation(operation).template in scripts.environment().list_templates()


def script_for(vector: Mapping[str, Any]) -> scripts.Script:
    """The rendered script of the vector's operation under its options."""
    return scripts.render(vector["operation"], **(vector.get("options") or {}))


def catalog_script(vector: Mapping[str, Any]) -> scripts.Script:
    """A Script carrying only the catalog entry and options (no text): for a handler such as
    the host double, which answers by operation name, while a template is not written yet."""
    op = scripts.get_operation(vector["operation"])
    options = vector.get("options") or {}
    return scripts.Script(operation=op, text="",
                          options=tuple((k, bool(options.get(k, False))) for k in op.options))


def double_for(vector: Mapping[str, Any],
               secrets: Mapping[str, Any] = DOUBLE_SECRETS) -> HostDouble:
    """A host double in the (substituted) vector's starting state."""
    return HostDouble.from_dict(vector.get("state") or {}, secrets=secrets)


def run_vector(executor, vector: Mapping[str, Any], secrets: Mapping[str, Any],
               script: Optional[scripts.Script] = None, timeout: Optional[float] = None
               ) -> Outcome:
    """Run the (substituted) vector through ``executor``: its ScriptResult, or the
    :class:`~smbvol.exceptions.HostOperationError` the host answered with."""
    params = build_parameters(vector.get("parameters") or {}, secrets)
    script = script if script is not None else script_for(vector)
    try:
        return executor.run(script, params, timeout=timeout)
    except exceptions.HostOperationError as exc:
        return exc


# --------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------

def subset_mismatches(expected: Any, actual: Any, where: str) -> List[str]:
    """Where ``actual`` differs from ``expected``: objects compare the expected keys only,
    lists element by element (same length), anything else by equality."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return ["%s: expected an object, got %r" % (where, actual)]
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append("%s.%s: missing (expected %r)" % (where, key, value))
            else:
                out.extend(subset_mismatches(value, actual[key], "%s.%s" % (where, key)))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)):
            return ["%s: expected a list, got %r" % (where, actual)]
        if len(expected) != len(actual):
            return ["%s: expected %d element(s), got %d: %r"
                    % (where, len(expected), len(actual), actual)]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            out.extend(subset_mismatches(e, a, "%s[%d]" % (where, i)))
        return out
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = type(expected) is type(actual) and expected == actual
    else:
        same = expected == actual
    return [] if same else ["%s: expected %r, got %r" % (where, expected, actual)]


def compare(outcome: Outcome, vector: Mapping[str, Any]) -> List[str]:
    """What differs between ``outcome`` (a ScriptResult or an exception) and the vector."""
    expect = vector["expect"]
    if "result" in expect:
        if not isinstance(outcome, ScriptResult):
            return ["expected a result, got %s: %s" % (type(outcome).__name__, outcome)]
        out = subset_mismatches(expect["result"], outcome.result, "result")
        missing = [f for f in scripts.OPERATIONS[vector["operation"]].result_fields
                   if f not in outcome.result]
        if missing:
            out.append("result lacks catalog field(s) %s" % ", ".join(missing))
        if "warnings" in expect:
            wanted = expect["warnings"]
            if not wanted and outcome.warnings:
                out.append("expected no warning, got %r" % (outcome.warnings,))
            for text in wanted:
                if not any(text in w for w in outcome.warnings):
                    out.append("no warning contains %r: %r" % (text, outcome.warnings))
        return out
    if not isinstance(outcome, exceptions.HostOperationError):
        shown = "result %r" % (outcome.result,) if isinstance(outcome, ScriptResult) \
            else "%s: %s" % (type(outcome).__name__, outcome)
        return ["expected error %s, got %s" % (expect["error"], shown)]
    out = []
    if outcome.kind != expect["error"]:
        out.append("expected error %s, got %s: %s" % (expect["error"], outcome.kind, outcome))
    if "native_code" in expect and outcome.native_code != expect["native_code"]:
        out.append("expected native_code %r, got %r" % (expect["native_code"],
                                                        outcome.native_code))
    if "data" in expect:
        out.extend(subset_mismatches(expect["data"], outcome.data, "error.data"))
    for text in expect.get("message_contains") or ():
        if text.lower() not in str(outcome.detail or "").lower():
            out.append("error message %r does not contain %r" % (outcome.detail, text))
    return out


def compare_state(actual: Mapping[str, Any], expect_state: Mapping[str, Any]) -> List[str]:
    """What differs between the host's state after the call and ``expect_state``."""
    return subset_mismatches(dict(expect_state), dict(actual), "state")
