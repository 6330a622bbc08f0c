"""The runtime floor: the .NET every rendered script names exists on both PowerShells.

What this proves (the engine-in-the-loop issue, point 4): every .NET type, static member and
constructor (by argument count) that a rendered script names is checked against
``tests/data/dotnet-api/`` (a copy of ``../shared/reference/dotnet-api/``): each must exist on
.NET Framework 4.6.2 (Windows PowerShell 5.1 on Windows Server 2016) and in PowerShell 7.6, and
a type outside the assemblies 5.1 surely loads must be loaded with ``Add-Type`` in the same text,
counting any function whose text a script starts in another process (the task runner) as its
own text.  Every operation is checked under every combination of its options, in parameter mode
and in the standalone rendering.  The checker itself is ``tests/dotnet_floor.py``.

What only Windows PowerShell 5.1 at runtime can settle: which overload PowerShell picks by the
arguments' types and the conversions it makes on the way (the references hold argument counts,
not parameter types), the members of values whose type the text does not state (what a method
or cmdlet returns), members of System.Management.Automation beyond the PowerShellStandard 5.1.1
subset the reference holds, and how a call behaves on Windows (an API that exists but throws,
DPAPI, ACLs, P/Invoke).  The live-host suite settles those.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import time
from typing import Dict, List, Tuple

import pytest

from smbvol import scripts
from smbvol.secret import Credential, Secret
from tests import dotnet_floor, pscheck

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "ps_templates")

_SAMPLE = {
    "string": "x",
    "strings": ["x"],
    "int": 1,
    "ints": [1],
    "bool": True,
    "credential": Credential("user", Secret("pw")),
    "credentials": [Credential("user", Secret("pw")), None],
    "securestring": Secret("pw"),
}


def rendered_scripts() -> List[Tuple[str, str, str]]:
    """(operation, label, text) of every operation under every option combination, in
    parameter mode and standalone (every parameter given, so every preamble form is there)."""
    out = []
    for name, op in sorted(scripts.OPERATIONS.items()):
        values = {p.name: _SAMPLE[p.type] for p in op.params}
        for combo in itertools.product((False, True), repeat=len(op.options)):
            opts = dict(zip(op.options, combo))
            shown = ",".join("%s=%s" % kv for kv in opts.items())
            label = name + ("[%s]" % shown if shown else "")
            out.append((name, label, scripts.render(name, **opts).text))
            out.append((name, label + " standalone",
                        scripts.render_standalone(name, values, **opts)))
    return out


def template_of_functions() -> Dict[str, str]:
    """Function name (lower-case) → the template file that defines it."""
    out = {}
    for path in sorted(glob.glob(os.path.join(TEMPLATES, "*.ps1.j2"))):
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(r"(?im)^\s*function\s+([A-Za-z][\w-]*)", f.read()):
                out.setdefault(m.group(1).lower(), os.path.basename(path))
    return out


@pytest.fixture(scope="module")
def runtimes():
    return dotnet_floor.load_runtimes()


@pytest.fixture(scope="module")
def floor(runtimes):
    """Every rendered script checked once: (grouped findings, [(operation, label, text, walk)],
    CPU seconds).  The findings are grouped by what and where they are: (template, function,
    message) → the scripts they were seen in.  CPU time, because the machine is shared: wall
    time says more about the neighbours."""
    start = time.process_time()
    where = template_of_functions()
    grouped: Dict[Tuple[str, str, str], List[str]] = {}
    walked = []
    for name, label, text in rendered_scripts():
        walk, findings = dotnet_floor.check_with_walk(text, runtimes, label=label)
        walked.append((name, label, text, walk))
        for f in findings:
            template = where.get(f.function.lower(), scripts.get_operation(name).template)
            grouped.setdefault((template, f.function, f.message), []).append(
                "%s line %d" % (label, f.line))
    return grouped, walked, time.process_time() - start


def walk_of(floor, label):
    return next(w for _, lab, _, w in floor[1] if lab == label)


def _shown(grouped) -> str:
    return "\n".join("%s %s: %s\n    seen in %s" % (t, fn or "(script level)", msg,
                                                   "; ".join(sorted(set(seen))[:3]))
                     for (t, fn, msg), seen in sorted(grouped.items()))


# --------------------------------------------------------------------------
# The templates
# --------------------------------------------------------------------------

def test_every_rendered_script_meets_the_runtime_floor(floor):
    grouped, _, _ = floor
    assert not grouped, "\n" + _shown(grouped)


def test_every_operation_option_and_rendering_is_checked(floor):
    _, walked, seconds = floor
    expected = sum(2 * 2 ** len(op.options) for op in scripts.OPERATIONS.values())
    assert len(walked) == expected
    labels = {label for _, label, _, _ in walked}
    assert "mount_share[mapping_via_task=True] standalone" in labels
    assert {name for name, _, _, _ in walked} == set(scripts.OPERATIONS)
    # About 2.5 s of CPU here; the bound is twice the 5 s budget, against a walk that grows
    # (not a benchmark that a slow machine fails).
    assert seconds < 10, "the runtime floor check took %.1f s of CPU" % seconds


@pytest.mark.parametrize("name", ["mount_share", "attach_vhd", "attach_vhds"])
def test_the_task_runner_is_checked_as_a_script_of_its_own(floor, name):
    for mode in ("", " standalone"):
        with_task = walk_of(floor, name + "[mapping_via_task=True]" + mode)
        without = walk_of(floor, name + "[mapping_via_task=False]" + mode)
        assert with_task.separate_process_functions() == ["Invoke-SmbvolMappingTaskScript"]
        assert without.separate_process_functions() == []


def _all_options(name):
    shown = ",".join("%s=True" % o for o in scripts.get_operation(name).options)
    return name + ("[%s]" % shown if shown else "")


def test_the_cross_checked_scripts_hold_every_template():
    env = scripts.environment()
    included = set()
    todo = [scripts.get_operation(name).template for name in scripts.OPERATIONS]
    while todo:
        template = todo.pop()
        if template not in included:
            included.add(template)
            todo.extend(re.findall(r"{%\s*(?:include|extends|import|from)\s+[\"']([^\"']+)[\"']",
                                   env.loader.get_source(env, template)[0]))
    assert set(os.listdir(TEMPLATES)) - included == set()


@pytest.mark.parametrize("name", sorted(scripts.OPERATIONS))
def test_the_walk_misses_nothing_a_scan_of_the_code_sees(floor, name):
    """Every ``[Type]``, ``[Type]::Member`` and ``New-Object Type`` that a plain scan of the
    code finds (comments and string contents blanked) is one the grammar walk checked (each
    operation with every option on: together they hold every template)."""
    walk = walk_of(floor, _all_options(name))
    code = pscheck._code_only(pscheck._source(walk.text))
    types = {m.lower() for m in re.findall(r"\[([A-Za-z][\w.]*)(?:\[\])?\]", code)}
    statics = {(t.lower(), m.lower()) for t, m in re.findall(
        r"\[([A-Za-z][\w.]*)(?:\[[\w.,\[\] ]*\])?\]::(\w+)", code)}
    created = {t.lower() for t in re.findall(
        r"New-Object\s+(?:-TypeName\s+)?([A-Za-z][\w.]*)", code)}
    assert types and statics and created
    assert types - walk.checked_types == set()
    assert statics - walk.checked_statics == set()
    assert created - walk.checked_ctors == set()


# --------------------------------------------------------------------------
# The checker on small scripts
# --------------------------------------------------------------------------

def messages(text, **kw) -> List[str]:
    return [f.message for f in dotnet_floor.check(text, **kw)]


def by_runtime(found: List[str]) -> Dict[str, List[str]]:
    return {
        "netfx": [m for m in found if "Windows PowerShell 5.1" in m],
        "pwsh": [m for m in found if "PowerShell 7.6" in m],
    }


GOOD = r"""
[CmdletBinding()]
param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Path, [long[]]$Numbers)
$list = New-Object -TypeName System.Collections.Generic.List[string]
$list.Add([System.IO.Path]::GetFileName($Path))
$enc = New-Object System.Text.UTF8Encoding($false)
$bytes = $enc.GetBytes('a')
$buffer = New-Object -TypeName 'byte[]' -ArgumentList 4
$io = [System.IO.File]
$null = $io::Exists($Path)
$match = [regex]::Match($Path, '^a', 'IgnoreCase')
$o = [pscustomobject]@{ a = 1 }
$h = [ordered]@{ b = [int][char]'c' }
[Console]::OutputEncoding = $enc
$when = [IO.Path]::GetExtension($Path) + [System.DateTime]::UtcNow.ToString('o')
$mode = [System.IO.FileMode]::CreateNew
$trimmed = $Path.Trim('[', ']').Split([char]'\')
$n = [System.Collections.Generic.List[long]]::new()
$n.Sort()
if ($o -is [System.Management.Automation.PSObject] -and ($h -as [hashtable]) -ne $null) { }
try { $null = 1 } catch [System.IO.IOException] { $null = $_ }
# [System.Nope]::InAComment()
$s = '[System.Nope]::InAString()'
"""


def test_a_good_script_has_no_finding():
    assert messages(GOOD) == []


def test_a_missing_type_is_found_on_both_runtimes():
    found = messages("$x = [System.IO.NoSuchType]::Create()\n")
    assert len(found) == 2, found
    assert all("type [System.IO.NoSuchType] does not exist" in m for m in found)
    assert by_runtime(found)["netfx"] and by_runtime(found)["pwsh"]


@pytest.mark.parametrize("text, name", [
    ("$x = $y -is [System.Nope1]\n", "System.Nope1"),
    ("$x = $y -as [System.Nope2]\n", "System.Nope2"),
    ("[System.Nope3[]]$x = @()\n", "System.Nope3[]"),
    ("$x = [System.Nope4]$y\n", "System.Nope4"),
    ("try { } catch [System.Nope5] { }\n", "System.Nope5"),
    ("$x = New-Object -TypeName System.Nope6\n", "System.Nope6"),
    ("$x = New-Object System.Nope7(1)\n", "System.Nope7"),
    ("$x = New-Object -TypeName System.Collections.Generic.List[System.Nope8]\n",
     "System.Nope8"),
    ("function F { param([System.Nope9]$A) }\n", "System.Nope9"),
    ('$x = "a $([System.Nope10]::X()) b"\n', "System.Nope10"),
    ("function F { [NoSuchAttribute11()] param() }\n", "NoSuchAttribute11"),
])
def test_every_way_of_naming_a_type_is_checked(text, name):
    found = messages(text)
    assert any("[%s] does not exist" % name in m for m in found), found


def test_a_missing_static_member_is_found():
    found = messages("$x = [System.IO.Path]::NoSuchMethod('a')\n$y = [System.Environment]::Nope\n")
    assert sum("[System.IO.Path]::NoSuchMethod: no such static member" in m for m in found) == 2
    assert sum("[System.Environment]::Nope: no such static member" in m for m in found) == 2
    enum = messages("$m = [System.IO.FileMode]::CreateNever\n")
    assert len(enum) == 2 and "CreateNever" in enum[0]


def test_a_static_member_with_the_wrong_argument_count_is_found():
    found = messages("$x = [System.IO.Path]::GetFileName('a', 'b')\n")
    assert len(found) == 2 and "GetFileName with 2 arguments: no such overload" in found[0]


def test_a_static_member_through_a_variable_holding_the_type_is_checked():
    found = messages("$io = [System.IO.File]\n$io::NoSuchMove($a, $b)\n")
    assert len(found) == 2 and "[System.IO.File]::NoSuchMove" in found[0]
    # a second assignment of another kind makes the variable's type unknown: nothing to check
    assert messages("$io = [System.IO.File]\n$io = Get-Thing\n$io::NoSuchMove($a)\n") == []


@pytest.mark.parametrize("text", [
    "$e = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $true, $false, $true, 1\n",
    "$e = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList @($true, $false, $true, 1)\n",
    "$e = New-Object System.Text.UTF8Encoding($true, $false, $true, 1)\n",
    "$e = New-Object System.Text.UTF8Encoding $true, $false, $true, 1\n",
    "$e = [System.Text.UTF8Encoding]::new($true, $false, $true, 1)\n",
])
def test_a_constructor_with_the_wrong_argument_count_is_found(text):
    found = messages(text)
    assert len(found) == 2, found
    assert all("with 4 arguments: [System.Text.UTF8Encoding] has no such constructor" in m
               for m in found)
    assert messages(text.replace(", $true, 1", "")) == []


def test_a_type_without_a_public_constructor_cannot_be_created():
    found = messages("$x = New-Object -TypeName System.IO.File\n")
    assert len(found) == 2 and "with 0 arguments" in found[0]


def test_a_member_on_only_one_runtime_is_found_on_that_one():
    framework_only = by_runtime(messages(
        "$acl = [System.IO.Directory]::GetAccessControl($p, 'Owner')\n"))
    assert framework_only["pwsh"] and not framework_only["netfx"]
    core_only = by_runtime(messages("$l = [System.IO.Directory]::CreateSymbolicLink($a, $b)\n"))
    assert core_only["netfx"] and not core_only["pwsh"]
    accelerator = by_runtime(messages("$x = [ulong]5\n"))  # PowerShell 6.2 and later
    assert accelerator["netfx"] and not accelerator["pwsh"]


# The forms the task-mapping code used before it was fixed (_smb_mount.ps1.j2), each one finding.
OLD_ACL_FORMS = [
    ("$o = [System.IO.Directory]::GetAccessControl($folder, 'Owner').GetOwner($sid).Value\n",
     "[System.IO.Directory]::GetAccessControl: no such static member in PowerShell 7.6"),
    ("[System.IO.Directory]::SetAccessControl($Path, $security)\n",
     "[System.IO.Directory]::SetAccessControl: no such static member in PowerShell 7.6"),
    ("$file = New-Object -TypeName System.IO.FileInfo -ArgumentList ($base + '.job')\n"
     "$o = $file.GetAccessControl('Owner').GetOwner($sid).Value\n",
     "$file.GetAccessControl: [System.IO.FileInfo] has no such instance member in PowerShell 7.6"),
    ("$null = [System.IO.Directory]::CreateDirectory($Path, (New-SmbvolPrivateSecurity))\n",
     "[System.IO.Directory]::CreateDirectory with 2 arguments: the two-argument form is "
     "CreateDirectory(string, DirectorySecurity) on .NET Framework"),
    ("$stream = New-Object -TypeName System.IO.FileStream -ArgumentList $Path, "
     "([System.IO.FileMode]::CreateNew), ([System.Security.AccessControl.FileSystemRights]::Write),"
     " ([System.IO.FileShare]::None), 4096, ([System.IO.FileOptions]::None), (New-Security)\n",
     "New-Object -TypeName System.IO.FileStream with 7 arguments: [System.IO.FileStream] has no "
     "such constructor in PowerShell 7.6"),
]


@pytest.mark.parametrize("text, expected", OLD_ACL_FORMS)
def test_the_framework_only_acl_forms_are_found(text, expected):
    found = messages(text)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_forms_that_replace_them_pass():
    assert messages("$null = [System.IO.Directory]::CreateDirectory($Path)\n"
                    "$s = New-Object -TypeName System.IO.FileStream -ArgumentList $Path, "
                    "([System.IO.FileMode]::CreateNew), ([System.IO.FileAccess]::Write), "
                    "([System.IO.FileShare]::None)\n"
                    "$o = (Get-Acl -LiteralPath $Path).GetOwner($sid).Value\n") == []


def test_instance_members_are_checked_where_the_type_is_certain():
    found = messages("$s = New-Object -TypeName System.Security.SecureString\n"
                     "$s.AppendChar('a')\n$s.AppendChars('a')\n$s.MakeReadOnly(1)\n"
                     "$t = ([string]$x).NoSuchMethod()\n"
                     "$u = (New-Object -TypeName System.Text.UTF8Encoding).NoSuchThing\n"
                     "$l = [System.Collections.Generic.List[string]]::new()\n$l.ToArray\n")
    text = " ".join(found)
    assert "$s.AppendChars: [System.Security.SecureString] has no such instance member" in text
    assert "$s.MakeReadOnly with 1 argument" in text
    assert "NoSuchMethod: [System.String] has no such instance member" in text
    assert "NoSuchThing: [System.Text.UTF8Encoding] has no such instance member" in text
    assert "$l.ToArray is a method" in text
    assert len(found) == 10, found
    # unknown: a parameter without a type, a loop variable, a second kind of value
    assert messages("function F {\n    param($A)\n    $A.Nope()\n}\n"
                    "foreach ($c in $x) { $c.Nope() }\n"
                    "$v = [string]$a\n$v = Get-Thing\n$v.Nope()\n") == []


def test_the_powershell_members_of_objects_are_not_taken_for_net_members():
    assert messages("$l = New-Object -TypeName System.Collections.Generic.List[string]\n"
                    "$n = $l.Count + $l.psobject.Properties.Count\n"
                    "$f = New-Object -TypeName System.IO.FileInfo -ArgumentList 'a'\n"
                    "$b = $f.BaseName + $f.Mode\n"
                    "[hashtable]$h = @{}\n$r = $h.root\n$k = $h.ContainsKey('root')\n") == []


def test_an_assembly_5_1_does_not_load_must_be_added_first():
    use = "$b = [System.Security.Cryptography.ProtectedData]::Protect($p, $e, 'LocalMachine')\n"
    found = messages(use)
    assert len(found) == 1 and "lives in assembly System.Security, which Windows PowerShell " \
                               "5.1 does not load by itself" in found[0]
    assert messages("Add-Type -AssemblyName System.Security\n" + use) == []
    assert len(messages(use + "Add-Type -AssemblyName System.Security\n")) == 1
    assert len(messages("Add-Type -AssemblyName System.Xml\n" + use)) == 1


def test_text_run_in_another_process_must_add_its_own_assemblies():
    text = ("Add-Type -AssemblyName System.Security\n"
            "function Invoke-Runner {\n"
            "    $b = [System.Security.Cryptography.ProtectedData]::Unprotect($p, $e, 'Local')\n"
            "}\n"
            "$runner = (Get-Command -Name 'Invoke-Runner' -CommandType Function).ScriptBlock\n")
    found = dotnet_floor.check(text)
    assert len(found) == 1, found
    assert found[0].function == "Invoke-Runner" and found[0].line == 3
    assert "run in another process" in found[0].message
    fixed = text.replace("function Invoke-Runner {\n",
                         "function Invoke-Runner {\n    Add-Type -AssemblyName System.Security\n")
    assert dotnet_floor.check(fixed) == []
    assert dotnet_floor.separate_process_functions("$t = ${function:Invoke-Runner}\n") == \
        ["Invoke-Runner"]


def test_a_type_the_script_defines_exists_in_that_script_only():
    text = ("$source = @'\nnamespace Acme\n{\n    public static class Api\n    {\n"
            "        public static int Go(string a, int b) { return 0; }\n    }\n}\n'@\n"
            "function Initialize-Api { Add-Type -TypeDefinition $source -Language CSharp }\n"
            "function Invoke-Runner { $c = [Acme.Api]::Go('a', 1) }\n")
    assert dotnet_floor.check(text, separate=False) == []
    assert len(messages(text + "$d = [Acme.Api]::Go('a')\n", separate=False)) == 1
    assert len(messages(text + "$d = [Acme.Api]::Stop()\n", separate=False)) == 1
    runner = text + "$r = (Get-Command -Name 'Invoke-Runner').ScriptBlock.ToString()\n"
    found = messages(runner)
    assert len(found) == 2 and all("[Acme.Api] does not exist" in m for m in found), found


def test_a_script_that_does_not_parse_is_not_passed():
    found = messages("$x = ([System.IO.Path]::GetFileName('a'\n")
    assert found and "does not parse" in found[0]


def test_a_computed_type_name_is_reported():
    assert "without a constant type name" in messages("$x = New-Object -TypeName $t\n")[0]
    assert messages("$s = New-Object -ComObject 'Schedule.Service'\n") == []


def test_type_names_parse_like_powershell_reads_them():
    ref = dotnet_floor.parse_type_name("System.Collections.Generic.Dictionary[[string],[int[]]]")
    assert ref.name == "System.Collections.Generic.Dictionary" and len(ref.args) == 2
    assert ref.args[1] == dotnet_floor.TypeRef("int", (), 1)
    assert dotnet_floor.parse_type_name("byte[,]") == dotnet_floor.TypeRef("byte", (), 1)
    assert dotnet_floor.parse_type_name("List[") is None


def test_the_accelerator_tables_point_at_types_the_references_hold(runtimes):
    for rt in runtimes:
        missing = sorted(k for k, v in rt.accelerators.items() if v not in rt.types)
        # The reference's System.Management.Automation 5.1 is PowerShellStandard's subset.
        allowed = {"netfx462": {"nullstring", "pslistmodifier", "dscresource", "dscproperty",
                                "dsclocalconfigurationmanager", "validatetrusteddata",
                                "validateuserdrive", "psvariableproperty", "argumentcompleter",
                                "psdefaultvalue", "cimconverter", "experimental",
                                "adsi", "adsisearcher", "wmi", "wmiclass", "wmisearcher"},
                   "pwsh76": set()}[rt.key]
        assert set(missing) <= allowed, (rt.key, sorted(set(missing) - allowed))


def test_members_of_what_a_static_member_returns_are_checked():
    found = messages("$t = [System.DateTime]::UtcNow.AddSecondz(1)\n"
                     "$w = [System.Diagnostics.Stopwatch]::StartNew()\n$e = $w.Elapsd\n"
                     "$m = [regex]::Match('a', 'a')\n$v = $m.Groupz\n")
    text = " ".join(found)
    assert len(found) == 6, found
    for member in ("AddSecondz: [System.DateTime]", "$w.Elapsd: [System.Diagnostics.Stopwatch]",
                   "$m.Groupz: [System.Text.RegularExpressions.Match]"):
        assert member in text


def test_a_method_call_among_command_arguments_is_counted():
    # The grammar reads `-Name $s.Trim('a', 'b')` as `$s.Trim` then `('a', 'b')`; PowerShell
    # calls the method: its arguments count.
    found = messages("[string]$s = 'x'\nWrite-Output -InputObject $s.Substring(1, 2, 3)\n")
    assert len(found) == 2 and "$s.Substring with 3 arguments" in found[0], found
    assert messages("[string]$s = 'x'\nWrite-Output -InputObject $s.Substring(1, 2)\n") == []


def test_the_real_task_runner_without_its_add_type_is_caught(runtimes):
    """The rendered runner with its Add-Type line taken out: the floor fails, in the runner's
    own text, although the script loads System.Security elsewhere."""
    text = scripts.render("mount_share", mapping_via_task=True).text
    start = text.index("function Invoke-SmbvolMappingTaskScript {")
    end = text.index("\n}\n", start)
    runner = text[start:end]
    stripped = re.sub(r"(?m)^[ \t]*Add-Type -AssemblyName System\.Security[ \t]*\n", "", runner)
    assert stripped != runner
    found = dotnet_floor.check(text[:start] + stripped + text[end:], runtimes)
    assert found, "the runner's ProtectedData without System.Security went unseen"
    # in the runner or in a function of its own text (its DPAPI helper)
    assert all("function %s {" % f.function in runner for f in found), found
    assert any("run in another process" in f.message and "System.Security" in f.message
               for f in found)
