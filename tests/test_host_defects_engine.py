"""Host-side defects proven in a real PowerShell engine (PowerShell 7 on this machine).

Each test runs rendered template text, byte for byte what the executors send, in a fresh
runspace of one plain engine process (no fake host; a new ``pwsh`` process where the process
itself matters): parameters that must reach the envelope's ``try``, the envelope's JSON
escaping, and the scheduled-task runner's own text.  There are no Hyper-V, SmbShare, Storage
or iSCSI modules here and .NET's Windows-only APIs throw, so each test stops where the script
would first need Windows, and asserts only on what comes before.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from typing import Tuple

import pytest

from smbvol import exceptions, scripts
from smbvol.executors.local import LocalExecutor
from tests.engine.locate import pwsh_or_skip
from tests.engine.runner import EngineSession, PlainEngineExecutor

#: A share host that needs no name resolution and is never this host (TEST-NET-1).
SHARE = "\\\\192.0.2.1\\vols"


@pytest.fixture(scope="module")
def engine() -> str:
    return pwsh_or_skip()


def _run_text(engine: str, text: str, args: Tuple[str, ...] = (),
              timeout: float = 60) -> "subprocess.CompletedProcess[bytes]":
    """Runs ``text`` as a script file in a fresh engine process."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "script.ps1")
        with open(path, "w", encoding="utf-8-sig") as handle:
            handle.write(text)
        return subprocess.run(
            [engine, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", path] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, check=False)


def _run_encoded(engine: str, text: str, timeout: float = 60):
    """Runs ``text`` with -EncodedCommand (UTF-16LE, base64), as the scheduled task does."""
    encoded = base64.b64encode(text.encode("utf-16-le")).decode("ascii")
    return subprocess.run(
        [engine, "-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=timeout, check=False)


def _envelope(stdout: bytes) -> dict:
    match = re.search(rb"@@SMBVOL-BEGIN@@(.*?)@@SMBVOL-END@@", stdout, re.S)
    assert match, stdout
    return json.loads(match.group(1).decode("ascii"))


# --------------------------------------------------------------------------
# Point 4: empty values reach the envelope (invalid_parameters, never NoEnvelope)
# --------------------------------------------------------------------------

EMPTY_CASES = [
    ("detach_vhd", {"VMName": "", "SharePath": SHARE, "DiskName": "a.vhdx"}, "VMName"),
    ("unmount_share", {"SharePath": ""}, "SharePath"),
    ("iscsi_connect", {"TargetPortals": [], "TargetIqns": [], "TargetLuns": []},
     "TargetPortals"),
    ("iscsi_attach", {"VMName": "vm1", "TargetPortals": [], "TargetIqns": [],
                      "TargetLuns": []}, "TargetPortals"),
    ("attach_vhd", {"VMName": "vm1", "SharePath": SHARE, "DiskName": ""}, "DiskName"),
    ("attach_vhds", {"VMName": "vm1", "SharePaths": [], "DiskNames": []}, "DiskNames"),
]


@pytest.mark.parametrize("name,parameters,field", EMPTY_CASES,
                         ids=[c[0] + "-" + c[2] for c in EMPTY_CASES])
def test_an_empty_value_is_answered_by_the_script_as_invalid_parameters(
        engine, name, parameters, field):
    # The executors' bootstrap and payload, in a fresh runspace of the plain engine process.
    executor = PlainEngineExecutor(_plain_session(engine))
    with pytest.raises(exceptions.InvalidParameters) as caught:
        executor.run(scripts.render(name), parameters)
    assert caught.value.data.get("field") == field


def test_an_empty_value_through_a_new_process_is_answered_alike(engine):
    # The same through LocalExecutor: the payload on a new pwsh process's stdin.
    name, parameters, field = EMPTY_CASES[0]
    executor = LocalExecutor(powershell_path=engine, default_timeout=60)
    with pytest.raises(exceptions.InvalidParameters) as caught:
        executor.run(scripts.render(name), parameters)
    assert caught.value.data.get("field") == field


def test_every_required_parameter_lets_empty_values_through_the_binder():
    for op in scripts.OPERATIONS.values():
        for p in op.params:
            if p.required and p.type in scripts.ALLOW_EMPTY:
                assert scripts.ALLOW_EMPTY[p.type] in p.declaration(), (op.name, p.name)


# --------------------------------------------------------------------------
# Point 15: non-ASCII leaves as \\uXXXX escapes
# --------------------------------------------------------------------------

ECHO_TEMPLATE = """{% extends "_envelope.ps1.j2" %}
{% block body %}
    return @{ names = @($Names) }
{% endblock %}
"""

NON_ASCII_NAMES = ["Vérifié-ВМ-虚拟机", "emoji-\U0001F600-vm", "tab\tand\u00a0nbsp", "plain"]


def _echo_script() -> str:
    op = scripts.Operation("echo", "echo the names", (
        scripts.Param("Names", "strings", "names", required=True),), ("names",),
        ("unexpected",))
    return scripts.environment().from_string(ECHO_TEMPLATE).render(
        operation=op.name, param_block=scripts.param_block(op))


def test_non_ascii_vm_names_come_back_escaped_and_unchanged(engine):
    # The names reach the script as a real string[] through an environment variable (JSON),
    # as the executors pass values: never as text of the script.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "echo.ps1")
        with open(path, "w", encoding="utf-8-sig") as handle:
            handle.write(_echo_script())
        wrapper = ("$names = [string[]]@(ConvertFrom-Json -InputObject $env:SMBVOL_TEST_NAMES); "
                   "& $env:SMBVOL_TEST_SCRIPT -Names $names")
        env = dict(os.environ, SMBVOL_TEST_NAMES=json.dumps(NON_ASCII_NAMES),
                   SMBVOL_TEST_SCRIPT=path)
        done = subprocess.run(
            [engine, "-NoLogo", "-NoProfile", "-NonInteractive", "-Command", wrapper],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    match = re.search(rb"@@SMBVOL-BEGIN@@(.*?)@@SMBVOL-END@@", done.stdout, re.S)
    assert match, done.stdout
    raw = match.group(1)
    assert all(b < 0x80 for b in raw), raw
    assert rb"\u00e9" in raw and rb"\ud83d\ude00" in raw
    document = json.loads(raw.decode("ascii"))
    assert document["ok"] is True
    assert document["result"]["names"] == NON_ASCII_NAMES


# --------------------------------------------------------------------------
# Point 1: the scheduled-task runner, as the task runs it
# --------------------------------------------------------------------------

def _runner(name: str = "attach_vhd") -> str:
    from tests.test_template_safety import _runner_text

    return _runner_text(scripts.render(name, mapping_via_task=True).text)


def test_the_stripped_runner_loads_system_security_first_and_exits_2_without_its_directory(
        engine):
    """The runner parses, gets past its assembly load and answers what it documents for a
    missing %ProgramData%\\smbvol (exit code 2); here CommonApplicationData is /usr/share, which
    has no 'smbvol' child named with a backslash."""
    runner = _runner()
    statements = runner.split("\n")
    load = statements.index("Add-Type -AssemblyName System.Security")
    first_exit = next(i for i, s in enumerate(statements) if s.startswith("exit "))
    assert load < first_exit
    probe = _run_encoded(engine, "[System.IO.Directory]::Exists([System.Environment]::"
                                 "GetFolderPath('CommonApplicationData') + '\\smbvol')")
    done = _run_encoded(engine, runner)
    if probe.stdout.strip() == b"False":
        assert done.returncode == 2, (done.returncode, done.stderr.decode("utf-8", "replace"))
        assert done.stderr == b""
    else:
        # Another run left a folder of that name here: the runner passed its first check and
        # stops at the owner check (Get-Acl, which PowerShell on Linux does not have).
        assert done.returncode == 1 and b"Get-Acl" in done.stderr, done.stderr


def test_the_runner_s_assembly_load_makes_protecteddata_resolve(engine):
    runner = _runner()
    statements = runner.split("\n")
    preamble = statements[:statements.index("Add-Type -AssemblyName System.Security") + 1]
    probe = "\n".join(preamble + [
        "$type = 'System.Security.Cryptography.ProtectedData' -as [type]",
        "if ($null -eq $type -or @($type.GetMethods() | Where-Object { $_.Name -eq 'Unprotect' }).Count -eq 0) { exit 41 }",
        "exit 40",
    ])
    done = _run_encoded(engine, probe)
    assert done.returncode == 40, done.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Running a template's functions against small fake modules
# --------------------------------------------------------------------------

def library(name: str, **options) -> str:
    """The rendered script of ``name`` without its param() block and without its final
    try/catch: its settings, variables and every function, byte for byte."""
    text = scripts.render(name, **options).text
    start = 0
    if text.startswith("[CmdletBinding()]"):
        start = text.index("\n)\n") + 3
    elif text.startswith("param()"):
        start = text.index("\n") + 1
    end = text.rindex("\ntry {\n    $SmbvolOutput")
    return text[start:end] + "\n"


def fake_module(module: str, functions: str) -> str:
    """A module named like the real one (module-qualified calls reach it)."""
    return ("$null = New-Module -Name %s -ScriptBlock {\n%s\nExport-ModuleMember -Function *\n}"
            " | Import-Module -Global\n" % (module, functions))


RUN_BODY = """
try {
    $SmbvolAnswer = & {
%s
    }
    $SmbvolDocument = @{ ok = $true; result = $SmbvolAnswer }
} catch {
    $SmbvolDocument = @{ ok = $false; error = (Get-SmbvolError -ErrorRecord $_) }
}
Write-SmbvolEnvelope -Document $SmbvolDocument
"""


def run_functions(engine: str, name: str, body: str, fakes: str = "", options=None,
                  prelude: str = "") -> dict:
    """Runs ``body`` after the library of template ``name`` (with ``fakes`` defined first,
    ``prelude`` after the library: aliases that stand in for host helpers); returns the
    envelope document (``result`` = what ``body`` returned, ``warnings``)."""
    text = fakes + library(name, **(options or {})) + prelude + RUN_BODY % body
    done = _plain_session(engine).run_plain(text)
    assert "@@SMBVOL-BEGIN@@" in done.stdout, done.stderr
    return _envelope(done.stdout.encode("utf-8"))


_SESSIONS: dict = {}


def _plain_session(engine: str):
    """One engine process for the module's run_functions calls, each in a fresh runspace
    without the fake host of tests/engine/ (these tests bring their own fakes)."""
    if engine not in _SESSIONS:
        _SESSIONS[engine] = EngineSession(engine, plain=True)
    return _SESSIONS[engine]


@pytest.fixture(scope="module", autouse=True)
def _close_sessions():
    yield
    for session in _SESSIONS.values():
        session.close()
    _SESSIONS.clear()


# --------------------------------------------------------------------------
# Point 12: a share scoped to another name never wins the local lookup
# --------------------------------------------------------------------------

SMB_SHARES = """
function Get-SmbShare {
    [CmdletBinding()]
    param()
    return @(
        [pscustomobject]@{ Name = 'vols'; ScopeName = 'cluster-fs'; Path = 'D:\\other' },
        [pscustomobject]@{ Name = 'only'; ScopeName = 'cluster-fs'; Path = 'E:\\scoped' },
        [pscustomobject]@{ Name = 'vols'; ScopeName = '*'; Path = 'D:\\vols' }
    )
}
"""


@pytest.mark.parametrize("share,expected", [("vols", "D:\\vols"), ("only", None)])
def test_a_share_scoped_to_another_name_is_not_this_share(engine, share, expected):
    body = ("return @{ path = (Get-SmbvolLocalSharePath -Share @{ share = '%s'; host = 'hv01' }) }"
            % share)
    document = run_functions(engine, "unmount_share", body, fake_module("SmbShare", SMB_SHARES))
    assert document["ok"], document
    assert document["result"]["path"] == expected


# --------------------------------------------------------------------------
# Point 11: a failed QoS rollback keeps the first error and reports both
# --------------------------------------------------------------------------

#: A VM's one SCSI controller (number 0), which has no drives yet.
ONE_EMPTY_SCSI_CONTROLLER = """function Get-VMScsiController {
    [CmdletBinding()]
    param($VM)
    return @([pscustomobject]@{ ControllerNumber = 0; Drives = @() })
}
"""

HYPERV_QOS_FAILS = """
function Get-VMHardDiskDrive {
    [CmdletBinding()]
    param($VM)
    return @()
}
""" + ONE_EMPTY_SCSI_CONTROLLER + """function Add-VMHardDiskDrive {
    [CmdletBinding()]
    param($VM, $ControllerType, $ControllerNumber, $ControllerLocation, $Path, [switch]$Passthru)
    return [pscustomobject]@{ Path = $Path; ControllerType = $ControllerType; ControllerNumber = $ControllerNumber; ControllerLocation = $ControllerLocation; VMName = $VM.Name }
}
function Set-VMHardDiskDrive {
    [CmdletBinding()]
    param($VMHardDiskDrive, $MaximumIOPS, $MinimumIOPS)
    throw 'the QoS policy cannot be applied'
}
function Remove-VMHardDiskDrive {
    [CmdletBinding()]
    param($VMHardDiskDrive)
    %s
}
"""

QOS_BODY = r"""
$vm = [pscustomobject]@{ Name = 'vm1'; Id = '6c1e1c57-0000-4000-8000-000000000001'; State = 'Running'; Generation = 2 }
$share = @{ root = '\\fs\v'; unc = '\\fs\v' }
$mount = @{ share = $share; share_path = '\\fs\v'; unc_disk_path = '\\fs\v\a.vhdx'; disk_path = '\\fs\v\a.vhdx' }
return Add-SmbvolAttachment -VM $vm -Mount $mount -DiskBus 'scsi' -MaximumIops 500 -MinimumIops 0 -Taken @{} -AllDrives @()
"""


def test_a_failed_qos_rollback_keeps_the_qos_error_and_reports_the_removal(engine):
    fakes = fake_module("Hyper-V", HYPERV_QOS_FAILS % "throw 'the disk is locked by the VM'")
    document = run_functions(engine, "attach_vhd", QOS_BODY, fakes)
    assert document["ok"] is False
    error = document["error"]
    assert "the QoS policy cannot be applied" in error["message"]
    assert "the disk is locked by the VM" in error["message"]
    assert error["message"].endswith("the QoS policy cannot be applied")
    assert error["data"]["rollback_error"] == "the disk is locked by the VM"
    assert error["data"]["cause"] == "the QoS policy cannot be applied"
    assert any("still attached at SCSI 0:0" in w for w in document["warnings"])


def test_a_qos_failure_whose_rollback_works_reports_the_qos_error_alone(engine):
    fakes = fake_module("Hyper-V", HYPERV_QOS_FAILS % "return")
    document = run_functions(engine, "attach_vhd", QOS_BODY, fakes)
    assert document["ok"] is False
    assert document["error"]["data"]["cause"] == "the QoS policy cannot be applied"
    assert "rollback_error" not in document["error"]["data"]
    assert document["warnings"] == []


# --------------------------------------------------------------------------
# Point 3: a checkpoint's drives keep the share in use
# --------------------------------------------------------------------------

HYPERV_CHECKPOINTS = r"""
function Get-VM {
    [CmdletBinding()]
    param()
    return @(
        [pscustomobject]@{ Name = 'vm-a'; Id = 'a'; ConfigurationLocation = 'C:\vms'; SnapshotFileLocation = 'C:\vms'; SmartPagingFilePath = 'C:\vms' },
        [pscustomobject]@{ Name = 'vm-b'; Id = 'b'; ConfigurationLocation = 'C:\vms'; SnapshotFileLocation = 'C:\vms'; SmartPagingFilePath = 'C:\vms' }
    )
}
function Get-VMSnapshot {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM)
    if ($VM.Name -eq 'vm-a') {
        return @([pscustomobject]@{ Name = 'before-upgrade'; VMName = 'vm-a'; VMId = 'a' })
    }
    if ($VM.Name -eq 'vm-b') {
        return @([pscustomobject]@{ Name = 'installed'; VMName = 'vm-b'; VMId = 'b' })
    }
}
function Get-VMHardDiskDrive {
    [CmdletBinding(DefaultParameterSetName = 'VMObject')]
    param([Parameter(ParameterSetName = 'VMObject', Mandatory = $true)]$VM,
          [Parameter(ParameterSetName = 'VMSnapshot', Mandatory = $true)]$VMSnapshot)
    if ($PSCmdlet.ParameterSetName -eq 'VMSnapshot' -and $VMSnapshot.Name -eq 'before-upgrade') {
        return @([pscustomobject]@{ Path = '\\fs\v\a.vhdx'; VMName = 'vm-a'; VMId = 'a' })
    }
    return @()
}
function Get-VMDvdDrive {
    [CmdletBinding(DefaultParameterSetName = 'VMObject')]
    param([Parameter(ParameterSetName = 'VMObject', Mandatory = $true)]$VM,
          [Parameter(ParameterSetName = 'VMSnapshot', Mandatory = $true)]$VMSnapshot)
    if ($PSCmdlet.ParameterSetName -eq 'VMSnapshot' -and $VMSnapshot.Name -eq 'installed') {
        return @([pscustomobject]@{ Path = '\\fs\v\install.iso'; VMName = 'vm-b'; VMId = 'b' })
    }
    return @()
}
"""


def test_unmount_counts_the_disks_and_dvds_of_every_checkpoint(engine):
    body = r"""
return @{
    holders = @(Get-SmbvolShareHolders -Prefixes @('\\fs\v'))
    other = @(Get-SmbvolShareHolders -Prefixes @('\\fs\elsewhere'))
    users = @(Get-SmbvolShareUsers -Drives (Get-SmbvolAllDrives -WithCheckpoints) -Prefixes @('\\fs\v'))
}
"""
    document = run_functions(engine, "unmount_share", body,
                             fake_module("Hyper-V", HYPERV_CHECKPOINTS))
    assert document["ok"], document
    assert document["result"]["holders"] == ["vm-a", "vm-b"]
    assert document["result"]["other"] == []
    assert document["result"]["users"] == ["vm-a"]


# --------------------------------------------------------------------------
# Point 5: Hyper-V errors classified by error id and category
# --------------------------------------------------------------------------

FAKE_ERROR = r"""
function New-FakeHyperVError {
    param([string]$Id, [string]$Category, $Target, [string]$Message)
    $exception = New-Object -TypeName System.InvalidOperationException -ArgumentList $Message
    return New-Object -TypeName System.Management.Automation.ErrorRecord -ArgumentList $exception, $Id, ([System.Management.Automation.ErrorCategory]$Category), $Target
}
"""

HYPERV_GET_VM_FAILS = FAKE_ERROR + r"""
function Get-VM {
    [CmdletBinding()]
    param([string]$Name)
    $e = $global:FakeError
    $PSCmdlet.ThrowTerminatingError((New-FakeHyperVError -Id $e.id -Category $e.category -Target $e.target -Message $e.message))
}
"""


GET_VM_CASES = [
    ("InvalidParameter", "InvalidArgument", "vm1", "vm_not_found"),
    ("ObjectNotFound", "ObjectNotFound", "vm1", "vm_not_found"),
    ("InvalidParameter", "InvalidArgument", "ComputerName", "unexpected"),
    ("InvalidParameter", "InvalidOperation", "vm1", "unexpected"),
    ("OperationFailed", "InvalidOperation", None, "unexpected"),
    ("AccessDenied", "PermissionDenied", None, "access_denied"),
]


def _kinds_of_cases(engine: str, name: str, fakes: str, cases, call: str) -> list:
    """Runs ``call`` once per case (its $global:FakeError set from the case) in one engine
    process; returns the error kind of each (or 'ok')."""
    lines = []
    for case in cases:
        lines.append("$global:FakeError = @{ id = '%s'; category = '%s'; target = %s; "
                     "message = 'Hyper-V failed' }" % (
                         case[0], case[1], "$null" if case[2] is None else "'%s'" % case[2]))
        lines.append("try { $null = & { %s }; $kinds.Add('ok') } catch { "
                     "$kinds.Add((Get-SmbvolError -ErrorRecord $_).kind) }" % call)
    body = ("$kinds = New-Object -TypeName System.Collections.Generic.List[string]\n"
            + "\n".join(lines) + "\nreturn @{ kinds = $kinds.ToArray() }")
    document = run_functions(engine, name, body, fakes)
    assert document["ok"], document
    return document["result"]["kinds"]


def test_only_a_missing_name_makes_get_vm_failures_vm_not_found(engine):
    kinds = _kinds_of_cases(engine, "detach_vhd", fake_module("Hyper-V", HYPERV_GET_VM_FAILS),
                            GET_VM_CASES, "Get-SmbvolVM -Name 'vm1'")
    assert kinds == [case[3] for case in GET_VM_CASES], list(zip(GET_VM_CASES, kinds))


HYPERV_ADD_FAILS = FAKE_ERROR + r"""
function Get-VMHardDiskDrive {
    [CmdletBinding()]
    param($VM)
    return @()
}
""" + ONE_EMPTY_SCSI_CONTROLLER + r"""function Add-VMHardDiskDrive {
    [CmdletBinding()]
    param($VM, $ControllerType, $ControllerNumber, $ControllerLocation, $Path, [switch]$Passthru)
    $e = $global:FakeError
    $PSCmdlet.ThrowTerminatingError((New-FakeHyperVError -Id $e.id -Category $e.category -Target $null -Message 'Failed to add device'))
}
"""


ATTACH_CASES = [
    ("ObjectInUse", "ResourceBusy", None, "disk_in_use"),
    ("InvalidState", "InvalidOperation", None, "invalid_state"),
    ("AccessDenied", "PermissionDenied", None, "access_denied"),
    ("OperationFailed", "PermissionDenied", None, "access_denied"),
    ("ObjectNotFound", "ObjectNotFound", None, "image_not_found"),
    ("OperationFailed", "ObjectNotFound", None, "image_not_found"),
    ("OperationFailed", "ResourceBusy", None, "host_busy"),
    ("OperationFailed", "InvalidOperation", None, "unexpected"),
]


def test_hyperv_attach_failures_are_classified_by_error_id_and_category(engine):
    kinds = _kinds_of_cases(engine, "attach_vhd", fake_module("Hyper-V", HYPERV_ADD_FAILS),
                            ATTACH_CASES, QOS_BODY.replace("return ", ""))
    assert kinds == [case[3] for case in ATTACH_CASES], list(zip(ATTACH_CASES, kinds))


# --------------------------------------------------------------------------
# Point 6: iSCSI status codes
# --------------------------------------------------------------------------

ISCSI_KIND_CASES = [
    ("0xEFFF0002", True, "chap_auth_failed"), ("0xEFFF0002", False, "access_denied"),
    ("0xEFFF0022", True, "chap_auth_failed"), ("0xEFFF0022", False, "access_denied"),
    ("0xEFFF005F", False, "target_unreachable"), ("0xEFFF0043", False, "target_unreachable"),
    ("0xEFFF0060", False, "target_unreachable"), ("0xEFFF001F", False, "host_busy"),
    ("0xEFFF0040", False, "host_busy"), ("0xEFFF0048", False, None),
    ("0xEFFF0003", False, "target_unreachable"), ("0xEFFF0009", True, "chap_auth_failed"),
]


def test_iscsi_status_codes_map_to_their_kinds_and_0xafff_codes_are_warnings(engine):
    lines = ["$kinds = New-Object -TypeName System.Collections.Generic.List[object]"]
    for code, chap, _kind in ISCSI_KIND_CASES:
        lines.append("$kinds.Add((Get-SmbvolIscsiKind -Code '%s' -Chap $%s))"
                     % (code, "true" if chap else "false"))
    lines.append("return @{ kinds = $kinds.ToArray(); warnings = @(@('0xAFFF0048', "
                 "'0xAFFF0001', '0xEFFF0048', '0x00000000') | ForEach-Object "
                 "{ Test-SmbvolIscsiWarning -Code $_ }) }")
    document = run_functions(engine, "iscsi_connect", "\n".join(lines))
    assert document["ok"], document
    assert document["result"]["kinds"] == [c[2] for c in ISCSI_KIND_CASES]
    assert document["result"]["warnings"] == [True, True, False, False]


LOGIN_PRELUDE = r"""
$global:LoginCodes = New-Object -TypeName System.Collections.Generic.Queue[string]
$global:LoginAttempts = 0
function Invoke-FakeLoginOnce {
    param([hashtable]$Path, $Credential, [bool]$Multipath)
    $global:LoginAttempts++
    if ($global:LoginCodes.Count -eq 0) { return '0x00000000' }
    return $global:LoginCodes.Dequeue()
}
Set-Alias -Name Invoke-SmbvolIscsiLoginOnce -Value Invoke-FakeLoginOnce
$SmbvolIscsiBusyWaitMilliseconds = 1
"""

LOGIN_CASES = [
    # (codes the initiator answers one after the other, CHAP?, outcome, attempts)
    (["0xEFFF001F", "0xEFFF0040", "0xEFFF001F"], False, "created", 4),
    (["0xEFFF0040"] * 12, False, "host_busy", 10),
    (["0xAFFF0048"], False, "created", 1),
    (["0xEFFF003F"], False, "already", 1),
    (["0xEFFF0002"], True, "chap_auth_failed", 1),
    (["0xEFFF0022"], False, "access_denied", 1),
    (["0xEFFF005F"], False, "target_unreachable", 1),
]


def test_the_login_retries_busy_answers_and_takes_warning_codes_for_success(engine):
    lines = ["$out = New-Object -TypeName System.Collections.Generic.List[object]",
             "$secure = ConvertTo-SecureString -String 'chap-secret-123' -AsPlainText -Force",
             "$chap = New-Object -TypeName System.Management.Automation.PSCredential "
             "-ArgumentList 'user', $secure",
             "$path = @{ index = 0; portal = '192.0.2.7:3260'; address = '192.0.2.7'; "
             "port = 3260; iqn = 'iqn.2001-01.test:t1'; lun = 0 }"]
    for codes, chap, _outcome, _attempts in LOGIN_CASES:
        lines.append("$global:LoginCodes.Clear(); $global:LoginAttempts = 0; $SmbvolWarnings.Clear()")
        lines += ["$global:LoginCodes.Enqueue('%s')" % c for c in codes]
        lines.append(
            "try { $created = Invoke-SmbvolIscsiLogin -Path $path -Credential %s -Multipath "
            "$false; if ($created) { $what = 'created' } else { $what = 'already' } } catch { "
            "$what = (Get-SmbvolError -ErrorRecord $_).kind }; $out.Add(@{ outcome = $what; "
            "attempts = $global:LoginAttempts; warnings = $SmbvolWarnings.Count })"
            % ("$chap" if chap else "$null"))
    lines.append("return @{ runs = $out.ToArray() }")
    document = run_functions(engine, "iscsi_connect", "\n".join(lines), prelude=LOGIN_PRELUDE)
    assert document["ok"], document
    runs = document["result"]["runs"]
    assert [(r["outcome"], r["attempts"]) for r in runs] == \
        [(c[2], c[3]) for c in LOGIN_CASES], runs
    assert runs[2]["warnings"] == 1 and runs[0]["warnings"] == 0


ISCSI_PORTAL_EXISTS = r"""
function Get-IscsiTargetPortal {
    [CmdletBinding()]
    param()
    return @()
}
function New-IscsiTargetPortal {
    [CmdletBinding()]
    param($TargetPortalAddress, $TargetPortalPortNumber)
    $exception = New-Object -TypeName System.InvalidOperationException -ArgumentList 'The target portal already exists.'
    $PSCmdlet.ThrowTerminatingError((New-Object -TypeName System.Management.Automation.ErrorRecord -ArgumentList $exception, 'HRESULT 0xefff0032', ([System.Management.Automation.ErrorCategory]::ResourceExists), $null))
}
function Get-IscsiTarget {
    [CmdletBinding()]
    param()
    return @([pscustomobject]@{ NodeAddress = 'iqn.2001-01.test:t1' })
}
function Remove-IscsiTargetPortal {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param($TargetPortalAddress, $TargetPortalPortNumber)
    throw 'a portal this call did not add must not be removed'
}
"""


def test_a_portal_another_client_just_added_is_taken_as_present(engine):
    body = r"""
$path = @{ index = 0; portal = '192.0.2.7:3260'; address = '192.0.2.7'; port = 3260; iqn = 'iqn.2001-01.test:t1'; lun = 0 }
return @{ added = (Add-SmbvolIscsiPortal -Path $path) }
"""
    document = run_functions(engine, "iscsi_connect", body,
                             fake_module("iSCSI", ISCSI_PORTAL_EXISTS))
    assert document["ok"], document
    assert document["result"]["added"] is False
    assert document["warnings"] == []


# --------------------------------------------------------------------------
# Points 9 and 14: a disk the host uses is refused; a read-only LUN is made writable
# --------------------------------------------------------------------------

PASSTHROUGH_FAKES = fake_module("Storage", r"""
function Get-Disk {
    [CmdletBinding()]
    param([long]$Number)
    $global:Calls.Add('Get-Disk')
    return $global:Disk
}
function Get-Partition {
    [CmdletBinding()]
    param([long]$DiskNumber)
    $global:Calls.Add('Get-Partition')
    return @($global:Partitions)
}
function Set-Disk {
    [CmdletBinding()]
    param([long]$Number, $IsOffline, $IsReadOnly)
    if ($PSBoundParameters.ContainsKey('IsOffline')) { $global:Calls.Add('Set-Disk -IsOffline ' + [string]$IsOffline) }
    if ($PSBoundParameters.ContainsKey('IsReadOnly')) { $global:Calls.Add('Set-Disk -IsReadOnly ' + [string]$IsReadOnly) }
}
""") + fake_module("Hyper-V", r"""
function Get-VM {
    [CmdletBinding()]
    param()
    return @()
}
function Get-VMHardDiskDrive {
    [CmdletBinding()]
    param([Parameter(ValueFromPipeline = $true)]$VM)
    process { }
}
""" + ONE_EMPTY_SCSI_CONTROLLER + r"""function Add-VMHardDiskDrive {
    [CmdletBinding()]
    param($VM, $ControllerType, $ControllerNumber, $ControllerLocation, $DiskNumber, [switch]$Passthru)
    $global:Calls.Add('Add-VMHardDiskDrive')
    if ($global:AddFails) { throw 'the VM refused the disk' }
}
""")

PASSTHROUGH_CASES = [
    # (disk flags, partitions' access paths, attach fails?, outcome, calls)
    ("IsOffline = $false; IsClustered = $false; IsReadOnly = $false", ["E:\\"], False,
     "disk_in_use:online_on_host", ["Get-Disk", "Get-Partition"]),
    ("IsOffline = $true; IsClustered = $true; IsReadOnly = $false", [], False,
     "disk_in_use:clustered", ["Get-Disk"]),
    ("IsOffline = $false; IsClustered = $false; IsReadOnly = $false", [], False, "ok",
     ["Get-Disk", "Get-Partition", "Set-Disk -IsOffline True", "Add-VMHardDiskDrive"]),
    ("IsOffline = $true; IsClustered = $false; IsReadOnly = $true", [], False, "ok",
     ["Get-Disk", "Set-Disk -IsReadOnly False", "Add-VMHardDiskDrive"]),
    ("IsOffline = $true; IsClustered = $false; IsReadOnly = $true", [], True, "unexpected",
     ["Get-Disk", "Set-Disk -IsReadOnly False", "Add-VMHardDiskDrive",
      "Set-Disk -IsReadOnly True"]),
]


def test_passthrough_refuses_disks_the_host_uses_and_clears_read_only(engine):
    lines = ["$out = New-Object -TypeName System.Collections.Generic.List[object]",
             "$vm = [pscustomobject]@{ Name = 'vm1'; Id = 'a'; State = 'Running'; Generation = 2 }",
             "$data = @{ target_iqn = 'iqn.2001-01.test:t1'; target_lun = 1 }"]
    for flags, paths, fails, _outcome, _calls in PASSTHROUGH_CASES:
        lines.append("$global:Calls = New-Object -TypeName System.Collections.Generic.List[string]")
        lines.append("$global:Disk = [pscustomobject]@{ Number = 5; IsBoot = $false; "
                     "IsSystem = $false; %s }" % flags)
        lines.append("$global:Partitions = @(%s)" % ", ".join(
            "[pscustomobject]@{ AccessPaths = @('%s') }" % p for p in paths))
        lines.append("$global:AddFails = $%s" % ("true" if fails else "false"))
        lines.append(
            "try { $null = Add-SmbvolPassthrough -VM $vm -Number 5 -DiskBus 'scsi' -Data $data; "
            "$what = 'ok' } catch { $e = Get-SmbvolError -ErrorRecord $_; $what = $e.kind; "
            "if ($e.data.ContainsKey('reason')) { $what = $what + ':' + $e.data['reason'] } }; "
            "$out.Add(@{ outcome = $what; calls = $global:Calls.ToArray() })")
    lines.append("return @{ runs = $out.ToArray() }")
    document = run_functions(engine, "iscsi_attach", "\n".join(lines), PASSTHROUGH_FAKES)
    assert document["ok"], document
    runs = document["result"]["runs"]
    assert [(r["outcome"], r["calls"]) for r in runs] == \
        [(c[3], c[4]) for c in PASSTHROUGH_CASES], runs


# --------------------------------------------------------------------------
# Point 10: a passthrough drive whose LUN is gone
# --------------------------------------------------------------------------

LOST_FAKES = fake_module("Hyper-V", r"""
function Get-VMHardDiskDrive {
    [CmdletBinding()]
    param($VM)
    return @($global:Drives)
}
""")


def test_the_only_passthrough_drive_whose_disk_is_gone_is_the_lun_s(engine):
    body = r"""
$vm = [pscustomobject]@{ Name = 'vm1'; Id = 'a'; State = 'Running' }
$paths = @(@{ index = 0; portal = '192.0.2.7:3260'; iqn = 'iqn.2001-01.test:t1'; lun = 1 })
$image = [pscustomobject]@{ Path = '\\fs\v\a.vhdx'; DiskNumber = $null; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 0 }
$live = [pscustomobject]@{ Path = 'Disk 7'; DiskNumber = 7; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 1 }
$lost = [pscustomobject]@{ Path = $null; DiskNumber = $null; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 2 }
$lost2 = [pscustomobject]@{ Path = ''; DiskNumber = $null; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 3 }
$global:Drives = @($image, $live, $lost)
$one = @(Select-SmbvolLostPassthrough -VM $vm -Drives @(Find-SmbvolLostPassthrough -VM $vm) -Paths $paths)
$global:Drives = @($image, $live)
$none = @(Select-SmbvolLostPassthrough -VM $vm -Drives @(Find-SmbvolLostPassthrough -VM $vm) -Paths $paths)
$global:Drives = @($image, $lost, $lost2)
try {
    $null = Select-SmbvolLostPassthrough -VM $vm -Drives @(Find-SmbvolLostPassthrough -VM $vm) -Paths $paths
    $two = 'ok'
} catch {
    $two = (Get-SmbvolError -ErrorRecord $_).kind
}
return @{ one = @($one | ForEach-Object { $_.ControllerLocation }); none = $none.Count; two = $two }
"""
    document = run_functions(engine, "iscsi_detach", body, LOST_FAKES)
    assert document["ok"], document
    assert document["result"] == {"one": [2], "none": 0, "two": "invalid_state"}


# --------------------------------------------------------------------------
# Point 2: no mapping that only this logon session has (Windows Server 2016)
# --------------------------------------------------------------------------

GLOBAL_MAPPING = fake_module("SmbShare", r"""
function New-SmbGlobalMapping {
    [CmdletBinding()]
    param($RemotePath, $Credential, $Persistent)
    $global:Created.Add($RemotePath)
}
""")

MAPPING_BODY = r"""
$global:Created = New-Object -TypeName System.Collections.Generic.List[string]
$secure = ConvertTo-SecureString -String 'share-password' -AsPlainText -Force
$credential = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList 'EXAMPLE\u1', $secure
try {
    $kind = New-SmbvolMapping -Share @{ root = '\\fs\v' } -Credential $credential
} catch {
    $kind = (Get-SmbvolError -ErrorRecord $_)
}
return @{ kind = $kind; created = $global:Created.ToArray() }
"""


def test_without_new_smbglobalmapping_credentials_are_refused_naming_the_fix(engine):
    # No SmbShare module here: the host has no New-SmbGlobalMapping, as Windows Server 2016.
    document = run_functions(engine, "mount_share", MAPPING_BODY)
    error = document["result"]["kind"]
    assert error["kind"] == "invalid_parameters", error
    assert error["data"]["field"] == "ShareCredential"
    assert "computer account" in error["message"] and "Windows Server 2019" in error["message"]
    assert document["warnings"] == []


def test_with_new_smbglobalmapping_a_global_mapping_is_made(engine):
    document = run_functions(engine, "mount_share", "$global:Created = $null\n" + MAPPING_BODY,
                             GLOBAL_MAPPING)
    assert document["result"] == {"kind": "global", "created": ["\\\\fs\\v"]}


# --------------------------------------------------------------------------
# Point 8: a network logon without credentials leaves the image check to Hyper-V
# --------------------------------------------------------------------------

PROBE_PRELUDE = r"""
function Invoke-FakeFolderProbe {
    param([string]$Folder)
    switch ($global:Probe) {
        'denied' { throw (New-Object -TypeName System.UnauthorizedAccessException -ArgumentList ('Access to the path ' + $Folder + ' is denied.')) }
        'unreachable' {
            $e = New-Object -TypeName System.IO.IOException -ArgumentList 'The network path was not found.', ([int]-2147024843)
            throw $e
        }
        default { return }
    }
}
Set-Alias -Name Invoke-SmbvolFolderProbe -Value Invoke-FakeFolderProbe
"""

PROBE_CASES = [
    # (probe answer, unverifiable?, outcome)
    ("denied", True, "unverified"),
    ("denied", False, "access_denied"),
    ("unreachable", True, "share_unreachable"),
    ("readable", True, "image_not_found"),
]


def test_an_anonymous_probe_refused_is_a_warning_only_in_a_network_logon(engine):
    lines = ["$out = New-Object -TypeName System.Collections.Generic.List[object]",
             r"$share = @{ root = '\\fs\v'; unc = '\\fs\v' }"]
    for probe, unverifiable, _outcome in PROBE_CASES:
        lines.append("$global:Probe = '%s'; $SmbvolWarnings.Clear()" % probe)
        lines.append(
            r"try { $ok = Assert-SmbvolImage -Share $share -Folder '\\fs\v' -DiskName 'a.vhdx' "
            r"-Path '\\fs\v\a.vhdx' -Unverifiable $%s; if ($ok) { $what = 'verified' } else "
            "{ $what = 'unverified' } } catch { $what = (Get-SmbvolError -ErrorRecord $_).kind }; "
            "$out.Add(@{ outcome = $what; warnings = $SmbvolWarnings.ToArray() })"
            % ("true" if unverifiable else "false"))
    lines.append("return @{ runs = $out.ToArray() }")
    document = run_functions(engine, "attach_vhd", "\n".join(lines), prelude=PROBE_PRELUDE)
    assert document["ok"], document
    runs = document["result"]["runs"]
    assert [r["outcome"] for r in runs] == [c[2] for c in PROBE_CASES], runs
    assert len(runs[0]["warnings"]) == 1 and "computer account" in runs[0]["warnings"][0]
    assert [len(r["warnings"]) for r in runs[1:]] == [0, 0, 0]
