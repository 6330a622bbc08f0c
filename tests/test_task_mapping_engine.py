"""The scheduled-task mapping (``mapping_via_task``) on the fake host of tests/engine/, beyond
what its contract vectors compare: the job's folders and file get the owner and the protected
DACL the runner trusts, a private directory another user owns or that is a link is refused
before anything is made, and neither a task nor a job file outlives the call.

The task itself runs for real on the fake host: its action's ``powershell.exe -EncodedCommand``
is decoded and run in a new runspace as SYSTEM, in the working directory the caller gave it,
so the runner that runs is the stripped text the template puts on the command line.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import pytest

from smbvol import exceptions
from tests import contract_runner as cr

runner = pytest.importorskip("tests.engine.runner",
                             reason="the local engine run (tests/engine/runner.py) is not there")

VECTOR = "mount_share/mapping-via-task-in-remote-session"
PARENT = "C:\\ProgramData\\smbvol"
TASKS = PARENT + "\\tasks"
SYSTEM, ADMINISTRATORS = "S-1-5-18", "S-1-5-32-544"
MALLORY = "S-1-5-21-1004336348-1177238915-682003330-1001"


@pytest.fixture
def session(engine_session):
    """The worker's engine process (a fresh runspace per run)."""
    return engine_session


def run(session, extra: Mapping[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    """The task vector with ``extra`` added to the fake host's state: (outcome, state after)."""
    vector = next(v for v in cr.load_vectors() if v["id"] == VECTOR)
    filled, fake, locks = runner.prepare(vector)
    fake.update(extra)
    name = filled["state"]["host"]["name"]
    executor = runner.EngineExecutor(session, fake, computer_name=name, locks=locks)
    try:
        outcome = cr.run_vector(executor, filled, cr.DOUBLE_SECRETS)
    except exceptions.SmbvolError as exc:
        outcome = exc
    return outcome, executor.state


def rules(entry: Mapping[str, Any]) -> set:
    return {(r["sid"], r["rights"], r["inheritance"], r["propagation"], r["type"])
            for r in entry["rules"]}


def test_the_job_folders_and_file_are_administrators_own_with_a_protected_dacl(session):
    outcome, state = run(session, {})
    assert not isinstance(outcome, Exception), outcome
    assert state["left_behind"] == [] and state.get("scheduled_tasks", {}) == {}
    acls = state["acls"]
    jobs = [k for k in acls if k.startswith(TASKS + "\\") and k.endswith(".job")]
    folders = [k for k in acls if k.startswith(TASKS + "\\") and "." not in k[len(TASKS):]]
    assert len(jobs) == 1 and len(folders) == 1, sorted(acls)
    inherit = "ContainerInherit, ObjectInherit"
    for path in (PARENT, TASKS, folders[0]):
        assert acls[path]["owner"] == ADMINISTRATORS and acls[path]["protected"], path
        assert rules(acls[path]) == {(SYSTEM, "FullControl", inherit, "None", "Allow"),
                                     (ADMINISTRATORS, "FullControl", inherit, "None", "Allow")}
    job = acls[jobs[0]]
    assert job["owner"] == ADMINISTRATORS and job["protected"]
    assert rules(job) == {(SYSTEM, "FullControl", "None", "None", "Allow"),
                          (ADMINISTRATORS, "FullControl", "None", "None", "Allow")}
    # the task's job is the one its working directory names
    assert jobs[0] == folders[0] + ".job"


def test_a_private_directory_another_user_owns_is_refused_before_anything_is_made(session):
    outcome, state = run(session, {
        "directories": [PARENT],
        "acls": {PARENT: {"owner": MALLORY, "protected": False, "rules": []}},
        "accounts": {MALLORY: "HV01\\mallory"}})
    assert isinstance(outcome, exceptions.HostOperationError), outcome
    assert outcome.kind == "unexpected"
    assert "owned by HV01\\mallory, not by SYSTEM or Administrators" in str(outcome)
    assert state["mappings"] == [] and state.get("scheduled_tasks", {}) == {}
    assert state["left_behind"] == []
    # nothing was written into it, its ACL was not touched
    assert state["acls"] == {PARENT: {"owner": MALLORY, "protected": False, "rules": []}}


def test_a_private_directory_that_is_a_link_is_refused(session):
    outcome, state = run(session, {"junctions": {PARENT: "C:\\Users\\mallory\\smbvol"}})
    assert isinstance(outcome, exceptions.HostOperationError), outcome
    assert outcome.kind == "unexpected"
    assert "is a reparse point (link or junction): refusing to use it" in str(outcome)
    assert state["mappings"] == [] and state.get("scheduled_tasks", {}) == {}
    assert "acls" not in state or state["acls"] == {}


def test_the_mapping_is_made_by_the_task_not_by_the_remote_session(session):
    """The vector's host is a remote session without delegation: New-SmbGlobalMapping there
    fails with 1312. Made by the task (a service logon) it succeeds; a task whose action
    never ran would leave no mapping."""
    outcome, state = run(session, {})
    assert not isinstance(outcome, Exception), outcome
    assert [m["kind"] for m in state["mappings"]] == ["global"]
    assert state["mappings"][0]["credential"]["username"] == cr.substitute(
        {"u": "${SHARE_USER}"}, cr.DOUBLE_NAMES)["u"]


def test_a_runner_that_ends_without_a_result_fails_the_call_at_once_with_its_exit_code(
        session):
    """The runner's own first owner check (Get-Acl, after the caller's three) fails: the task
    ends with exit code 1 and no result file. The call fails at once (not after its 120 s
    wait), says why, and removes the task and the job."""
    denied = {"exception": "message",
              "message": "Attempted to perform an unauthorized operation.",
              "error_id": "System.UnauthorizedAccessException,"
                          "Microsoft.PowerShell.Commands.GetAclCommand",
              "category": "PermissionDenied"}
    outcome, state = run(session, {"faults": [{"cmdlet": ["Get-Acl"], "skip": 3,
                                               "error": denied}]})
    assert isinstance(outcome, exceptions.HostOperationError), outcome
    assert outcome.kind == "unexpected"
    assert "ended without a result: exit code 1 (PowerShell stopped at an error)" in str(outcome)
    assert outcome.data["exit_code"] == 1
    assert state["mappings"] == [] and state.get("scheduled_tasks", {}) == {}
    assert state["left_behind"] == []
