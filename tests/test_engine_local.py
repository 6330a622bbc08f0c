"""The engine beyond the vectors: a new pwsh process per call, the binder, mutants.

* at least one vector per operation runs end to end through :class:`LocalExecutor` with
  ``powershell_path`` set to the engine (a new pwsh process, as on a host);
* the fake host's generated cmdlets bind as Microsoft documents them;
* mutants of the templates (a flipped comparison, a misspelt property, a dropped assignment)
  make vectors fail that pass unmutated;
* PowerShell 7's own quirks the templates must avoid.

Skipped without an engine; ``SMBVOL_REQUIRE_PWSH=1`` (``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List

import jinja2
import pytest

from smbvol import exceptions, scripts
from smbvol.executors.base import encode_payload
from smbvol.executors.local import LocalExecutor
from tests import contract_runner as cr
from tests.engine import fakehost, runner
from tests.engine.locate import pwsh_or_skip
from tests.test_engine import BY_ID, ENGINE_VECTORS


@pytest.fixture(scope="session")
def pwsh() -> str:
    return pwsh_or_skip()


def _ids(vectors):
    return [v["id"] for v in vectors]


# --------------------------------------------------------------------------
# A new pwsh process per call, through LocalExecutor
# --------------------------------------------------------------------------

def _first_passing_vector(operation: str) -> Dict[str, Any]:
    for vector in ENGINE_VECTORS:
        if vector["operation"] == operation and "result" in vector["expect"]:
            return vector
    for vector in ENGINE_VECTORS:
        if vector["operation"] == operation:
            return vector
    raise LookupError(operation)


LOCAL_VECTORS = [_first_passing_vector(op) for op in sorted(scripts.OPERATIONS)
                 if any(v["operation"] == op for v in ENGINE_VECTORS)]


#: LocalExecutor runs at once (the machines have two cores).
LOCAL_PARALLEL = 2


@pytest.fixture(scope="module")
def local_results(pwsh):
    """One vector per operation through LocalExecutor: a new pwsh process each, whose
    environment names the fake host's modules and state (as a host's PowerShell finds its
    modules), two at a time."""

    def one(vector):
        filled, fake, locks = runner.prepare(vector)
        assert not locks, "pick a vector without held locks"
        tmp = tempfile.mkdtemp(prefix="smbvol-local-")
        state_path = os.path.join(tmp, "state.json")
        with open(state_path, "w", encoding="utf-8") as f:
            json.dump(fake, f)
        env = fakehost.engine_env(state_path, pwsh,
                                  computer_name=filled["state"]["host"].get("name", "hv01"))
        executor = LocalExecutor(powershell_path=pwsh, default_timeout=120, environment=env)
        outcome = cr.run_vector(executor, filled, cr.DOUBLE_SECRETS)
        with open(state_path, encoding="utf-8-sig") as f:
            after = runner.from_fake(json.load(f), cr.DOUBLE_SECRETS, [])
        shutil.rmtree(tmp, ignore_errors=True)
        problems = cr.compare(outcome, filled)
        if "expect_state" in filled:
            problems += cr.compare_state(after, filled["expect_state"])
        return vector["id"], problems

    with concurrent.futures.ThreadPoolExecutor(LOCAL_PARALLEL) as pool:
        return dict(pool.map(one, LOCAL_VECTORS))


@pytest.mark.parametrize("vector", LOCAL_VECTORS, ids=_ids(LOCAL_VECTORS))
def test_operation_end_to_end_through_local_executor(vector, local_results):
    problems = local_results[vector["id"]]
    assert not problems, "\n".join(problems)


def test_every_operation_has_a_local_executor_run():
    assert {v["operation"] for v in LOCAL_VECTORS} == set(scripts.OPERATIONS)


# --------------------------------------------------------------------------
# The binder: generated cmdlets bind as Microsoft documents them
# --------------------------------------------------------------------------

BINDER_PROBE = r"""
$ErrorActionPreference = 'Stop'
function Try-Bind([scriptblock]$Block) {
    try { $null = & $Block; 'ok' } catch { [string]$_.FullyQualifiedErrorId }
}
[ordered]@{
    misspelt = Try-Bind { Hyper-V\Get-VM -Nmae 'x' }
    wrong_type = Try-Bind { Hyper-V\Add-VMHardDiskDrive -VMName 'x' -ControllerNumber 'zero' }
    bad_enum = Try-Bind { Hyper-V\Add-VMHardDiskDrive -VMName 'x' -ControllerType 'SATA' }
    bad_value = Try-Bind { Set-Service -Name 'MSiSCSI' -Status 'Flying' }
    two_sets = Try-Bind { Hyper-V\Get-VM -Name 'x' -Id ([guid]::NewGuid()) }
    cim_type = Try-Bind { SmbShare\Remove-SmbGlobalMapping -InputObject 'text' -Force }
    default_set = (Get-Command Hyper-V\Get-VM).DefaultParameterSet
    pipeline = Try-Bind { Hyper-V\Get-VM | Hyper-V\Get-VMHardDiskDrive }
    drives = @(Hyper-V\Get-VM | Hyper-V\Get-VMHardDiskDrive).Count
    vm_type = (Hyper-V\Get-VM | Select-Object -First 1).GetType().FullName
} | ConvertTo-Json -Compress
"""


@pytest.fixture(scope="module")
def binder(engine_session):
    """The probe's answers, run as a script in a fresh runspace of the worker's engine, whose
    fake host starts in a vector's state."""
    vector = BY_ID["list_attachments/one-vm-two-disks"] if "list_attachments/one-vm-two-disks" \
        in BY_ID else _first_passing_vector("list_attachments")
    _, fake, _ = runner.prepare(vector)
    out, _after, _hits, _seconds = engine_session.run(encode_payload(BINDER_PROBE, {}), fake,
                                                      "hv01")
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), fake


def test_a_misspelt_parameter_is_refused(binder):
    assert binder[0]["misspelt"].startswith("NamedParameterNotFound")


def test_a_wrong_type_is_refused(binder):
    assert binder[0]["wrong_type"].startswith("ParameterArgumentTransformationError")


def test_a_value_outside_the_accepted_ones_is_refused(binder):
    assert binder[0]["bad_value"].startswith("ParameterArgumentValidationError")
    # An enum parameter (Hyper-V's ControllerType) refuses it while converting, as on Windows.
    assert binder[0]["bad_enum"].startswith("ParameterArgumentTransformationError")


def test_an_impossible_parameter_combination_is_refused(binder):
    assert binder[0]["two_sets"].startswith("AmbiguousParameterSet")


def test_a_cim_parameter_takes_only_cim_instances(binder):
    assert binder[0]["cim_type"].startswith("ParameterArgumentValidationError")


def test_bare_get_vm_uses_the_documented_default_set(binder):
    assert binder[0]["default_set"] == "Name"


def test_get_vm_pipes_into_get_vmharddiskdrive(binder):
    result, fake = binder
    assert result["pipeline"] == "ok"
    assert result["drives"] == sum(len(vm["disks"]) for vm in fake["vms"].values())
    assert result["vm_type"] == "Microsoft.HyperV.PowerShell.VirtualMachine"


# --------------------------------------------------------------------------
# Mutants die
# --------------------------------------------------------------------------

#: (template, original text, mutated text, operation whose vectors must catch it)
MUTANTS = [
    ("flipped comparison", "_envelope.ps1.j2", "if ($TimeoutSeconds -lt 0) {",
     "if ($TimeoutSeconds -ge 0) {", ("attach_vhd/first-disk-gen2",)),
    # (the SCSI controllers' scan of taken locations, not the IDE one)
    ("misspelt property", "_hyperv_attach.ps1.j2",
     "$used[[int]$drive.ControllerLocation] = $true\n        }\n        for ($location = 0; "
     "$location -lt 64",
     "$used[[int]$drive.ControllerLocaton] = $true\n        }\n        for ($location = 0; "
     "$location -lt 64", ("attach_vhd/first-free-location",)),
    ("dropped assignment", "detach_vhd.ps1.j2", None, None, ("detach_vhd/removes-the-disk",)),
]


def _mutated_environment(directory: str) -> jinja2.Environment:
    base = scripts.environment()
    return jinja2.Environment(loader=jinja2.FileSystemLoader(directory),
                              undefined=jinja2.StrictUndefined, autoescape=False,
                              keep_trailing_newline=base.keep_trailing_newline,
                              trim_blocks=base.trim_blocks, lstrip_blocks=base.lstrip_blocks)


def _drop_first_assignment(text: str) -> str:
    """The template without its first ``$x = ...`` statement line of the body."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if "{% block body %}" in line)
    for i in range(start, len(lines)):
        stripped = lines[i].strip()
        if stripped.startswith("$") and " = " in stripped and not stripped.startswith("$null"):
            del lines[i]
            return "\n".join(lines)
    raise AssertionError("no assignment to drop")


def _mutant_script(directory: str, vector: Dict[str, Any]) -> scripts.Script:
    op = scripts.get_operation(vector["operation"])
    options = scripts.render(vector["operation"], **(vector.get("options") or {})).options
    text = _mutated_environment(directory).get_template(op.template).render(
        operation=op.name, param_block=scripts.param_block(op), **dict(options))
    return scripts.Script(operation=op, text=text, options=options)


def _run_with(session, vector, script=None) -> List[str]:
    filled, fake, locks = runner.prepare(vector)
    executor = runner.EngineExecutor(session, fake, computer_name=filled["state"]["host"]["name"],
                                     locks=locks)
    outcome = cr.run_vector(executor, filled, cr.DOUBLE_SECRETS,
                            script=script(filled) if script else None)
    problems = cr.compare(outcome, filled)
    after = runner.from_fake(executor.state, cr.DOUBLE_SECRETS,
                             filled["state"].get("locks_held", []))
    if "expect_state" in filled:
        problems += cr.compare_state(after, filled["expect_state"])
    return problems


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_a_mutant_template_fails_vectors(mutant, engine_session, tmp_path):
    name, template, old, new, vector_ids = mutant
    target = str(tmp_path / "templates")
    shutil.copytree(fakehost.TEMPLATES, target)
    path = os.path.join(target, template)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if old is None:
        mutated = _drop_first_assignment(text)
    else:
        assert old in text, "%s no longer has %r" % (template, old)
        mutated = text.replace(old, new, 1)
    assert mutated != text
    with open(path, "w", encoding="utf-8") as f:
        f.write(mutated)
    killed = []
    # each run gets its script (mutated or not) and a fresh runspace of the worker's engine
    session = engine_session
    for vector_id in vector_ids:
        vector = BY_ID[vector_id]
        assert not _run_with(session, vector), "%s fails unmutated" % vector_id
        if _run_with(session, vector, lambda filled: _mutant_script(target, filled)):
            killed.append(vector_id)
    assert killed, "the %s mutant of %s passed %s" % (name, template, ", ".join(vector_ids))


def test_errors_of_powershell_7_reach_the_caller_as_plain_text(pwsh):
    # PowerShell 7 colours what reaches stderr unless the bootstrap asks for plain text.
    op = scripts.get_operation("host_info")
    script = scripts.Script(operation=op, text="Write-Error -Message 'boom'\nthrow 'failed'\n",
                            options=())
    executor = LocalExecutor(powershell_path=pwsh, default_timeout=120)
    with pytest.raises(exceptions.EnvelopeError) as caught:
        executor.run(script, {})
    text = str(caught.value) + repr(getattr(caught.value, "__dict__", {}))
    assert "boom" in text or "failed" in text
    assert "\x1b" not in text


def test_no_template_builds_an_object_list_with_new_object():
    # PowerShell 7.6: @($list) throws "Argument types do not match" for a List[object] made by
    # New-Object (PowerShell issue 27558); [List[object]]::new() works on 5.1 and 7 alike.
    for name in sorted(os.listdir(fakehost.TEMPLATES)):
        with open(os.path.join(fakehost.TEMPLATES, name), encoding="utf-8") as f:
            text = f.read()
        assert "Generic.List[object]" not in text.replace(
            "[System.Collections.Generic.List[object]]::new()", ""), name


def test_the_engine_shows_why_object_lists_are_not_made_with_new_object(engine_session):
    probe = ("$a = New-Object -TypeName System.Collections.Generic.List[object]; $a.Add(1); "
             "try { $null = @($a); 'new-object: ok' } catch { 'new-object: fails' }; "
             "$b = [System.Collections.Generic.List[object]]::new(); $b.Add(1); "
             "'new: ' + @($b).Count")
    out = engine_session.run_plain(probe)  # a fresh runspace without the fake host
    assert "new: 1" in out.stdout, out.stdout + out.stderr
