"""The offline PowerShell checkers themselves: each passes good code and fails bad code."""

import pytest

from smbvol import quoting
from tests import pscheck

GOOD = """\
[CmdletBinding()]
param([string]$VMName, [string]$Path)
$ErrorActionPreference = 'Stop'
function Get-Slot {
    [CmdletBinding()]
    param([string]$Name, [long]$Number = 0)
    return @{ name = $Name; number = $Number }
}
$vm = Hyper-V\\Get-VM -Name $VMName -ErrorAction Stop
$disks = @(Hyper-V\\Get-VMHardDiskDrive -VM $vm | Where-Object { $_.Path -eq $Path })
Hyper-V\\Add-VMHardDiskDrive -VMName $VMName -ControllerType SCSI -Path $Path
$slot = Get-Slot -Name 'it''s ‘‘q’’' -Number 3 -Verbose
$text = "count: $($disks.Count) `"quoted`" ""twice"" end"
$here = @'
it's ’here’
'@
$x = [System.Collections.Generic.List[string]]::new()
if ($null -eq $vm -and $disks.Count -gt 0) { $x.Add('a') } else { $x.Add('b') }
ConvertTo-Json -InputObject @($x) -Depth 4 -Compress
"""


def codes(issues):
    return [str(i) for i in issues]


def test_good_script_passes_every_checker():
    assert codes(pscheck.all_issues(GOOD)) == []
    assert pscheck.command_report(GOOD)[1] == []


def test_quote_characters_match_smbvol_quoting():
    assert set(pscheck.SINGLE_QUOTES) == set(quoting.SINGLE_QUOTES)
    assert set(pscheck.DOUBLE_QUOTES) == set(quoting.DOUBLE_QUOTES)


def test_vendored_reference_has_its_provenance():
    doc = pscheck.load_cmdlets()
    assert "MicrosoftDocs" in doc["meta"]["source"]
    with open(pscheck.CMDLETS_JSON.replace("cmdlets.json", "README.md"), encoding="utf-8") as f:
        assert doc["meta"]["source"] in f.read().replace("\n", " ")


# --------------------------------------------------------------------------
# a. parse errors
# --------------------------------------------------------------------------

@pytest.mark.parametrize("text, line", [
    ("$a = 1\nif ($a { 'x' }\n", 2),
    ("function F {\n    'x'\n", 1),
    ("$a = (1 + \n", 1),
    ("$h = @{ a = 1\n", 1),
])
def test_syntax_error_is_reported_with_its_line(text, line):
    issues = pscheck.parse_errors(text)
    assert issues, text
    assert all(i.check == "parse" for i in issues)
    assert min(i.line for i in issues) >= line


def test_no_parse_errors_on_good_script():
    assert pscheck.parse_errors(GOOD) == []


# --------------------------------------------------------------------------
# b. quote re-scan
# --------------------------------------------------------------------------

def test_grammar_gap_right_single_quote_smuggling_is_flagged():
    text = "$a = 'x\u2019; Evil; \u2019'"
    assert pscheck.parse_errors(text) == []  # the grammar sees one harmless string...
    issues = pscheck.quote_issues(text)      # ...PowerShell ends it at the U+2019
    assert len(issues) == 1
    assert "before the grammar does" in issues[0].message
    assert (issues[0].line, issues[0].column) == (1, 6)


@pytest.mark.parametrize("quote", "\u2018\u2019\u201a\u201b")
def test_every_single_quote_character_ends_a_string(quote):
    text = "Write-Output 'a%s; Evil; %s'" % (quote, quote)
    assert pscheck.parse_errors(text) == []
    assert [i.check for i in pscheck.quote_issues(text)] == ["quote"]


@pytest.mark.parametrize("quote", "\u201c\u201d\u201e")
def test_every_double_quote_character_ends_a_string(quote):
    text = 'Write-Output "a%s; Evil; %s"' % (quote, quote)
    assert pscheck.parse_errors(text) == []
    assert [i.check for i in pscheck.quote_issues(text)] == ["quote"]


def test_here_string_ended_by_typographic_quote_is_flagged():
    text = "$a = @'\nx\n\u2019@\nEvil\n'@\n"
    assert pscheck.parse_errors(text) == []
    assert "before the grammar does" in pscheck.quote_issues(text)[0].message
    text = '$a = @"\nx\n\u201d@\nEvil\n"@\n'
    assert pscheck.parse_errors(text) == []
    assert "before the grammar does" in pscheck.quote_issues(text)[0].message


def test_string_that_powershell_continues_past_the_grammar_end_is_flagged():
    # ’' is a doubled quote for PowerShell: its string goes on where the grammar's stops.
    text = "Write-Output 'a\u2019'; Evil; 'b'"
    issues = pscheck.quote_issues(text)
    assert any("continues it past" in i.message for i in issues), codes(issues)


def test_typographic_quote_outside_strings_is_flagged():
    issues = pscheck.quote_issues("Write-Output \u2019abc\u2019")
    assert len(issues) == 2 and all("outside any string" in i.message for i in issues)


@pytest.mark.parametrize("text", [
    "$a = 'it''s'",
    "$a = 'a\u2019\u2019b\u2018\u2018c\u201a\u201a\u201b\u201b'",
    '$a = "x `" y "" z \u201c\u201c $(\'in\u2019\u2019ner\')"',
    "$a = @'\nit's \u2019 \"\n'@",
    '$a = @"\n"quoted" $(1)\n"@',
    "# a comment with \u2019 quotes \u201c\n<# and \u2018 here #>\n$a = 1",
])
def test_correctly_quoted_strings_pass(text):
    assert pscheck.parse_errors(text) == []
    assert pscheck.quote_issues(text) == []


@pytest.mark.parametrize("value", [
    "", "plain", "it's", "\u2018\u2019\u201a\u201b", "''", "'\u2019'", "x\u2019; Evil; \u2019",
    "$(Evil)", "`", "a\nb\r\nc", "\u201c\u201d\u201e\"",
])
def test_decode_single_quoted_inverts_ps_quote(value):
    literal = quoting.ps_quote(value)
    assert pscheck.decode_single_quoted(literal) == value
    assert pscheck.quote_issues("$a = " + literal) == []


def test_decode_single_quoted_follows_powershell():
    assert pscheck.decode_single_quoted("'it''s'") == "it's"
    assert pscheck.decode_single_quoted("'a\u2019'b'") == "a'b"  # the second quote is kept
    with pytest.raises(ValueError, match="ends this literal"):
        pscheck.decode_single_quoted("'x\u2019; Evil; \u2019'")
    with pytest.raises(ValueError, match="not terminated"):
        pscheck.decode_single_quoted("'abc")
    with pytest.raises(ValueError):
        pscheck.decode_single_quoted('"abc"')


def test_naive_quoting_fails_the_substitution_check():
    # What the property test checks, on a renderer that only doubles the ASCII quote.
    def naive(value):
        return "'" + value.replace("'", "''") + "'"

    def script(literal):
        return "$p = %s\nHyper-V\\Get-VM -Name $p\n" % literal

    sentinel, value = "SmbvolSentinel0", "x\u2019; Evil; \u2019"
    baseline = script(naive(sentinel))
    bad = script(naive(value))
    assert pscheck.substitution_issues(bad, baseline, {sentinel: value})
    assert pscheck.quote_issues(bad)
    good = script(quoting.ps_quote(value))
    assert pscheck.substitution_issues(good, baseline, {sentinel: value}) == []
    assert pscheck.quote_issues(good) == []


def test_substitution_check_sees_code_outside_literals():
    baseline = "$p = 'S0'\n"
    assert pscheck.substitution_issues("$p = 'v'; Evil\n", baseline, {"S0": "v"})
    assert pscheck.substitution_issues("$p = 'w'\n", baseline, {"S0": "v"})
    assert pscheck.substitution_issues("$p = 'v'\n", baseline, {"S0": "v"}) == []


# --------------------------------------------------------------------------
# value positions: a value pasted into the text
# --------------------------------------------------------------------------

def test_value_pasted_unquoted_is_detected():
    value = "foo; Evil"
    text = "Hyper-V\\Get-VM -Name %s" % value
    assert pscheck.value_positions(text, value) == [(21, 30)]
    assert any("unknown command 'Evil'" in i.message for i in pscheck.command_issues(text))
    # Passed as a parameter, the value is not in the text at all.
    text = "param([string]$Name)\nHyper-V\\Get-VM -Name $Name"
    assert pscheck.value_positions(text, value) == []
    assert pscheck.command_issues(text) == []


def test_value_positions_finds_overlaps_and_ignores_empty():
    assert pscheck.value_positions("aaa", "aa") == [(0, 2), (1, 3)]
    assert pscheck.value_positions("abc", "") == []


def test_string_literals_decode():
    lits = pscheck.string_literals("$a = 'x''y'; $b = \"q $c\"; $d = \"k\"")
    assert [(lit.kind, lit.value) for lit in lits] == [
        ("single", "x'y"), ("double", None), ("double", "k")]


# --------------------------------------------------------------------------
# c. commands and parameters
# --------------------------------------------------------------------------

def only(issues, check="command"):
    assert issues, "expected an issue"
    assert all(i.check == check for i in issues), codes(issues)
    return " | ".join(i.message for i in issues)


def test_misspelt_parameter():
    assert "Get-VM has no parameter -Nmae" in only(pscheck.command_issues("Get-VM -Nmae x"))
    assert pscheck.command_issues("Get-VM -Name x") == []


def test_parameter_prefixes_are_not_accepted():
    assert "no parameter -Na" in only(pscheck.command_issues("Get-VM -Na x"))


def test_aliases_and_common_parameters():
    assert pscheck.command_issues("Get-VM -VMName x -ErrorAction Stop -Verbose") == []
    assert pscheck.command_issues("Get-Command -Type Cmdlet -Args 1") == []
    # ProgressAction is a common parameter of PowerShell 7.4 only.
    assert "no parameter -ProgressAction" in only(
        pscheck.command_issues("Get-VM -ProgressAction SilentlyContinue"))


def test_unknown_command_and_wrong_module():
    assert "unknown command 'Evil'" in only(pscheck.command_issues("Evil -Now"))
    assert "unknown command 'robocopy.exe'" in only(pscheck.command_issues("robocopy.exe a b"))
    assert pscheck.command_issues("robocopy.exe a b", externals=("robocopy.exe",)) == []
    assert "Get-VM is in module Hyper-V, not SmbShare" in only(
        pscheck.command_issues("SmbShare\\Get-VM"))
    assert pscheck.command_issues("Hyper-V\\Get-VM; SmbShare\\Get-SmbMapping") == []


def test_unguarded_new_cmdlet():
    text = "New-SmbGlobalMapping -RemotePath '\\\\h\\s'"
    assert "only documented in winserver2022-ps" in only(pscheck.command_issues(text))
    # Windows Server 2022 is fine with it.
    assert pscheck.command_issues(text, docsets=("winserver2022-ps", "powershell-5.1")) == []


def test_unguarded_new_parameter():
    text = "New-SmbMapping -RemotePath '\\\\h\\s' -TransportType TCP"
    assert "New-SmbMapping -TransportType is only documented in" in only(
        pscheck.command_issues(text))


NEW = "New-SmbGlobalMapping -RemotePath 'p'"
GC = "Get-Command -Name 'New-SmbGlobalMapping' -ErrorAction SilentlyContinue"


@pytest.mark.parametrize("text", [
    "if (%s) { %s }" % (GC, NEW),
    "if ($null -ne (%s)) { %s }" % (GC, NEW),
    "if ((%s) -ne $null) { %s }" % (GC, NEW),
    "if ([bool](%s) -and $true) { %s }" % (GC, NEW),
    "if (-not (%s)) { New-SmbMapping -RemotePath 'p' } else { %s }" % (GC, NEW),
    "if ($null -eq (%s)) { 1 } elseif ($x) { %s }" % (GC, NEW),
    "$has = $null -ne (%s)\nif ($has) { %s }" % (GC, NEW),
    "if (!(%s)) { return }\n%s" % (GC, NEW),
    "function Stop-Now {\n    param($M)\n    throw $M\n}\n"
    "if (-not (%s)) { Stop-Now -M 'none' }\n%s" % (GC, NEW),
    "if (%s) { foreach ($i in 1) { if ($i) { %s } } }" % (GC, NEW),
    "if ((Get-Command -Name 'New-SmbMapping').Parameters.ContainsKey('TransportType')) "
    "{ New-SmbMapping -RemotePath 'p' -TransportType TCP }",
])
def test_guarded_new_cmdlet_or_parameter_passes(text):
    assert codes(pscheck.all_issues(text)) == []


@pytest.mark.parametrize("text", [
    "if (-not (%s)) { %s }" % (GC, NEW),                       # wrong branch
    "if (%s) { 1 } else { %s }" % (GC, NEW),                   # wrong branch
    "if (%s) { 1 }\n%s" % (GC, NEW),                           # after, not inside
    "if ($null -ne (Get-Command -Name 'New-SmbGlobalMapping')) { %s }" % NEW,  # throws
    "if ($null -ne (Get-Command -Name 'Get-VM' -ErrorAction Ignore)) { %s }" % NEW,
    "if ((%s) -or $x) { %s }" % (GC, NEW),
    "$has = $null -ne (%s)\n$has = $true\nif ($has) { %s }" % (GC, NEW),
    "if (!(%s)) { 'no' }\n%s" % (GC, NEW),                     # does not exit
    "if (%s) { function F {\n    %s\n} }" % (GC, NEW),         # function body
    "if ((Get-Command -Name 'New-SmbMapping').Parameters.ContainsKey('UseWriteThrough')) "
    "{ New-SmbMapping -RemotePath 'p' -TransportType TCP }",
])
def test_wrongly_guarded_new_cmdlet_or_parameter_fails(text):
    assert "only documented in" in only(pscheck.command_issues(text))


def test_guarded_new_cmdlet_parameters_checked_against_its_oldest_docset():
    text = "if (%s) { New-SmbGlobalMapping -RemotePath 'p' -TransportType TCP }" % GC
    assert "-TransportType is only documented in winserver2025-ps" in only(
        pscheck.command_issues(text))


def test_accepted_values():
    text = "Hyper-V\\Add-VMHardDiskDrive -VMName v -ControllerType SATA -Path p"
    assert "-ControllerType 'SATA' is not one of ide, scsi" in only(pscheck.command_issues(text))
    for ok in ("SCSI", "scsi", "'IDE'", '"SCSI"', "$type"):
        assert pscheck.command_issues(text.replace("SATA", ok)) == [], ok
    assert "'SATA'" in only(pscheck.command_issues(text.replace("SATA", "'SATA'")))
    assert "'SATA'" in only(pscheck.command_issues(text.replace("SATA", "SCSI,SATA")))
    assert "'SATA'" in only(pscheck.command_issues(text.replace(" SATA", ":SATA")))


@pytest.mark.parametrize("text, message", [
    ("iex $code", "forbidden: iex"),
    ("Invoke-Expression -Command $code", "forbidden: Invoke-Expression"),
    ("Microsoft.PowerShell.Utility\\Invoke-Expression $code", "forbidden: Invoke-Expression"),
    ("ConvertTo-SecureString -String $p -AsPlainText -Force", "forbidden: ConvertTo-SecureString"),
    ("$b = [scriptblock]::Create($code)", "forbidden: [scriptblock]::Create"),
    ("& $command -Name x", "command name is computed"),
])
def test_forbidden_and_uncheckable(text, message):
    assert message in only(pscheck.command_issues(text))


def test_script_functions_use_their_own_param_block():
    text = ("function Add-Thing {\n    [CmdletBinding()]\n    param([string]$Name)\n"
            "    $Name\n}\nAdd-Thing -Name a -ErrorAction Stop\nAdd-Thing -Nam a\n")
    assert "function Add-Thing (defined in this script) has no parameter -Nam" in only(
        pscheck.command_issues(text))
    simple = "function F($A) { $A }\nF -A 1\nF -A 1 -Verbose\n"
    assert "has no parameter -Verbose" in only(pscheck.command_issues(simple))


def test_splatting_is_allowed_and_noted():
    issues, notes = pscheck.command_report("$p = @{ Name = 'x' }\nHyper-V\\Get-VM @p")
    assert issues == []
    assert len(notes) == 1 and "splatted" in notes[0].message


def test_script_block_invocation_is_checked_inside():
    assert pscheck.command_issues("& { Get-VM -Name x } @p") == []
    assert "no parameter -Nmae" in only(pscheck.command_issues("& { Get-VM -Nmae x } @p"))


# --------------------------------------------------------------------------
# d. PowerShell 7-only syntax
# --------------------------------------------------------------------------

@pytest.mark.parametrize("text, what", [
    ("$a ?? $b", "??"),
    ("$a ??= 1", "??="),
    ("${a}?.Name", "?."),
    ("${a}?[0]", "?["),
    ("$x = $a ? 1 : 2", "ternary"),
    ("Get-VM && Get-VM", "&&"),
    ("Get-VM || Get-VM", "||"),
    ("ConvertTo-Json -InputObject $x -AsArray", "-AsArray"),
    ("ConvertTo-Json -InputObject $x -EnumsAsStrings", "-EnumsAsStrings"),
    ("function F {\n    process { 1 }\n    clean { 2 }\n}", "clean"),
])
def test_ps7_syntax_is_flagged(text, what):
    issues = pscheck.ps7_only_syntax(text)
    assert any(what in i.message for i in issues), codes(issues)


@pytest.mark.parametrize("text", [
    GOOD,
    "$a = '&& || ?? ?. -AsArray'",
    "# $a ?? $b && c\n<# x ? y : z #>\n$a = 1",
    "$s = \"a && b $($x -and $y)\"",
    "$o = [System.Text.StringBuilder]::new()",
    "1 | Where-Object { $_ } | ForEach-Object { $_ }",
    "$a = $b -or $c",
])
def test_ps51_syntax_is_not_flagged(text):
    assert pscheck.ps7_only_syntax(text) == []
