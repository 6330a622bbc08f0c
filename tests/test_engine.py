"""The templates run in a real PowerShell against the fake host (tests/engine/).

* every contract vector (but those marked ``engine: false``, with their reason) runs through
  the real bootstrap and payload in a fresh runspace of the engine (this test worker's engine
  process, ``engine_session`` of tests/conftest.py), and must pass — and its outcome and final
  state must equal the host double's (one truth).

tests/test_engine_local.py has the rest: every operation end to end through
:class:`LocalExecutor` (a new pwsh process, as on a host), the binder, and the mutants.

Without an engine these tests are skipped with the reason; with ``SMBVOL_REQUIRE_PWSH=1``
(``.ci/run``) a missing engine fails them.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from smbvol import exceptions
from smbvol.envelope import ScriptResult
from tests import contract_runner as cr
from tests.engine import runner

VECTORS = cr.load_vectors()
BY_ID = {v["id"]: v for v in VECTORS}
ENGINE_VECTORS = [v for v in VECTORS if v.get("engine") is not False]


def run_all(session: runner.EngineSession,
            vectors: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Every vector on the engine, one after the other, each in a fresh runspace."""
    out: Dict[str, Dict[str, Any]] = {}
    for vector in vectors:
        try:
            out[vector["id"]] = runner.run(session, vector)
        except runner.EngineError as exc:
            out[vector["id"]] = {"problems": ["engine: %s" % exc], "outcome": exc,
                                 "state": None}
    return out


@pytest.fixture(scope="session")
def engine_results(engine_session, request) -> Dict[str, Dict[str, Any]]:
    """The engine runs of the vectors the selected tests need (all of them in a full run)."""
    wanted = set()
    for item in request.session.items:
        if item.module is not None and item.module.__name__ != __name__:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "vector" in params:
            wanted.add(params["vector"]["id"])
    return run_all(engine_session, [v for v in ENGINE_VECTORS if v["id"] in wanted])


def _double(vector):
    filled = cr.substitute(vector, cr.DOUBLE_NAMES)
    double = cr.double_for(filled)
    outcome = cr.run_vector(double.executor(), filled, cr.DOUBLE_SECRETS,
                            script=cr.script_for(filled))
    return outcome, double.to_dict()


#: Result fields that describe the PowerShell running the script, not the host's answer: the
#: engine is PowerShell 7, the double models Windows PowerShell 5.1.
RUNTIME_FIELDS = ("ps_version",)


def outcome_summary(outcome: Any) -> Any:
    """What two runs must agree on: the result, or the error kind."""
    if isinstance(outcome, ScriptResult):
        return {"result": {k: v for k, v in outcome.result.items()
                           if k not in RUNTIME_FIELDS}}
    if isinstance(outcome, exceptions.HostOperationError):
        return {"error": outcome.kind}
    return {"failure": type(outcome).__name__}


def _ids(vectors):
    return [v["id"] for v in vectors]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_vector_passes_on_the_engine(vector, engine_results):
    if vector.get("engine") is False:
        pytest.skip("engine: false: %s" % vector["engine_reason"])
    res = engine_results[vector["id"]]
    detail = ""
    if res.get("output") is not None and res["problems"]:
        detail = "\nstdout: %s\nstderr: %s" % (res["output"].stdout[:2000],
                                               res["output"].stderr[:2000])
    assert not res["problems"], "\n".join(res["problems"]) + detail


@pytest.mark.parametrize("vector", ENGINE_VECTORS, ids=_ids(ENGINE_VECTORS))
def test_engine_and_double_agree(vector, engine_results):
    res = engine_results[vector["id"]]
    if res.get("state") is None:
        pytest.fail("the engine did not run the vector: %s" % res["problems"])
    outcome, state = _double(vector)
    assert outcome_summary(res["outcome"]) == outcome_summary(outcome)
    before = cr.substitute(vector, cr.DOUBLE_NAMES).get("state") or {}
    assert new_ids_named_alike(res["state"], before) == new_ids_named_alike(state, before)


def new_ids_named_alike(state: Dict[str, Any], before: Dict[str, Any]) -> Dict[str, Any]:
    """``state`` with the identifiers a host makes up (iSCSI session ids of sessions the call
    created) named alike, so two hosts agree whatever ids they chose."""
    state = json.loads(json.dumps(state))
    known = {s.get("id") for s in (before.get("iscsi") or {}).get("sessions") or ()}
    for session in (state.get("iscsi") or {}).get("sessions") or ():
        if session.get("id") not in known:
            session["id"] = "<new session>"
    return state


def test_nine_in_ten_vectors_run_on_the_engine():
    assert len(ENGINE_VECTORS) >= 0.9 * len(VECTORS), (
        "%d of %d vectors run on the engine" % (len(ENGINE_VECTORS), len(VECTORS)))


def test_vectors_kept_off_the_engine_say_why():
    for vector in VECTORS:
        if vector.get("engine") is False:
            assert len(vector.get("engine_reason") or "") > 20, vector["id"]
