"""The runtime floor: every .NET API a PowerShell script names, checked against both runtimes.

A script is read with the tree-sitter PowerShell grammar (as :mod:`tests.pscheck` reads it), so
comments and string contents are never taken for code, while the code parts of double-quoted
strings (``"$(...)"``) are.  What it names is checked against the vendored .NET API references
``tests/data/dotnet-api/netfx462.json`` (.NET Framework 4.6.2: Windows PowerShell 5.1 on Windows
Server 2016) and ``pwsh76.json`` (PowerShell 7.6 on .NET 10):

* every type: type literals (``[System.X]``, casts, ``-is``/``-as [X]``, ``[X[]]``, generic
  arguments ``List[string]`` → ``List`1``, parameter types), attribute types (``[Parameter()]``
  → ``ParameterAttribute``), ``catch [X]`` and ``New-Object``'s type name.  A name resolves as
  PowerShell resolves it: a type accelerator of that PowerShell (``[regex]``, ``[pscustomobject]``,
  ...: :data:`ACCELERATORS_76`, :data:`ACCELERATORS_51`), the name itself, or ``System.`` + name,
  case-insensitively;
* every static member: ``[X]::Member(args)`` (an overload with that many arguments) and
  ``[X]::Member`` (a property or field; enum values are fields), also through a variable every
  assignment of which is a type (``$io = [System.IO.File]; $io::Move(a, b)``);
* every constructor by argument count: ``[X]::new(args)``, ``New-Object -TypeName X
  -ArgumentList a, b``, ``New-Object X(a, b)``, ``New-Object X a, b`` (no argument list: 0;
  value types always have the 0-argument form; arrays take their lengths);
* instance members where the receiver's type is certain: ``(New-Object X).M()``,
  ``[X]::new().M()``, ``([X]$v).M()``, and a variable every binding of which in its function (else
  at script level) gives one of known types (``New-Object``, ``::new``, a cast, a typed parameter
  or ``[X]$v = ...``; ``$null`` adds nothing).  PowerShell's own members (``Count``, ``Length``,
  ``psobject``, ``Where``, ``ForEach``...), the extended type data of :data:`ETS_MEMBERS`, and
  properties of dictionaries (key lookups) are not .NET members and are not checked.  What a
  member returns is not in the references: the static members of :data:`STATIC_RETURNS` are
  typed from .NET's documentation (``[DateTime]::UtcNow.AddSeconds(1)``), otherwise
  ``$x.A().B()`` checks ``A`` only;
* overloads with the same argument count but different parameter types on the two runtimes, where
  no form of that count works on Windows under both (:data:`SAME_COUNT_DIVERGENCES`).

The assembly rule: a type whose .NET Framework assembly is not one that Windows PowerShell 5.1
surely loads (:data:`SURELY_LOADED`) must be loaded by ``Add-Type -AssemblyName <assembly>``
earlier in the same script text.  Types the script defines itself (``Add-Type -TypeDefinition``
with C# source, ``class``/``enum``) exist in that script only.

Text started in another process is its own script: the body of a function whose text the script
takes (``(Get-Command -Name 'F' ...).ScriptBlock``, ``${function:F}``) is checked again alone,
as what the other process runs.

Limits: no version guard is understood (a member one runtime lacks is a finding even behind a
``$PSVersionTable`` test); argument *counts* only (the references hold no parameter types); a
``params`` array is known only from :data:`PARAMS_ARRAYS`; attribute constructors are not
counted (``[ValidateSet('a', 'b', ...)]`` takes a ``params`` array); a variable passed as
``-ArgumentList $v`` counts as one argument; a computed type name (``New-Object -TypeName $t``)
is reported as uncheckable.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import os
import re
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import tree_sitter

from tests import pscheck

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dotnet-api")

#: Assemblies Windows PowerShell 5.1 has loaded before a script's first line.
SURELY_LOADED = frozenset({"mscorlib", "system", "system.core", "system.management.automation",
                           "microsoft.management.infrastructure"})

#: PowerShell 7.6's type accelerators ([psobject].Assembly.GetType(
#: 'System.Management.Automation.TypeAccelerators')::Get, read from the 7.6.9 engine).
ACCELERATORS_76: Mapping[str, str] = {
    "alias": "System.Management.Automation.AliasAttribute",
    "allowemptycollection": "System.Management.Automation.AllowEmptyCollectionAttribute",
    "allowemptystring": "System.Management.Automation.AllowEmptyStringAttribute",
    "allownull": "System.Management.Automation.AllowNullAttribute",
    "argumentcompleter": "System.Management.Automation.ArgumentCompleterAttribute",
    "argumentcompletions": "System.Management.Automation.ArgumentCompletionsAttribute",
    "array": "System.Array",
    "bigint": "System.Numerics.BigInteger",
    "bool": "System.Boolean",
    "byte": "System.Byte",
    "char": "System.Char",
    "cimclass": "Microsoft.Management.Infrastructure.CimClass",
    "cimconverter": "Microsoft.Management.Infrastructure.CimConverter",
    "ciminstance": "Microsoft.Management.Infrastructure.CimInstance",
    "cimsession": "Microsoft.Management.Infrastructure.CimSession",
    "cimtype": "Microsoft.Management.Infrastructure.CimType",
    "cmdletbinding": "System.Management.Automation.CmdletBindingAttribute",
    "cultureinfo": "System.Globalization.CultureInfo",
    "datetime": "System.DateTime",
    "decimal": "System.Decimal",
    "double": "System.Double",
    "dsclocalconfigurationmanager":
        "System.Management.Automation.DscLocalConfigurationManagerAttribute",
    "dscproperty": "System.Management.Automation.DscPropertyAttribute",
    "dscresource": "System.Management.Automation.DscResourceAttribute",
    "experimentaction": "System.Management.Automation.ExperimentAction",
    "experimental": "System.Management.Automation.ExperimentalAttribute",
    "experimentalfeature": "System.Management.Automation.ExperimentalFeature",
    "float": "System.Single",
    "guid": "System.Guid",
    "hashtable": "System.Collections.Hashtable",
    "initialsessionstate": "System.Management.Automation.Runspaces.InitialSessionState",
    "int": "System.Int32",
    "int16": "System.Int16",
    "int32": "System.Int32",
    "int64": "System.Int64",
    "ipaddress": "System.Net.IPAddress",
    "ipendpoint": "System.Net.IPEndPoint",
    "long": "System.Int64",
    "mailaddress": "System.Net.Mail.MailAddress",
    "norunspaceaffinity": "System.Management.Automation.Language.NoRunspaceAffinityAttribute",
    "nullstring": "System.Management.Automation.Language.NullString",
    "objectsecurity": "System.Security.AccessControl.ObjectSecurity",
    "ordered": "System.Collections.Specialized.OrderedDictionary",
    "outputtype": "System.Management.Automation.OutputTypeAttribute",
    "parameter": "System.Management.Automation.ParameterAttribute",
    "physicaladdress": "System.Net.NetworkInformation.PhysicalAddress",
    "powershell": "System.Management.Automation.PowerShell",
    "psaliasproperty": "System.Management.Automation.PSAliasProperty",
    "pscredential": "System.Management.Automation.PSCredential",
    "pscustomobject": "System.Management.Automation.PSObject",
    "psdefaultvalue": "System.Management.Automation.PSDefaultValueAttribute",
    "pslistmodifier": "System.Management.Automation.PSListModifier",
    "psmoduleinfo": "System.Management.Automation.PSModuleInfo",
    "psnoteproperty": "System.Management.Automation.PSNoteProperty",
    "psobject": "System.Management.Automation.PSObject",
    "psprimitivedictionary": "System.Management.Automation.PSPrimitiveDictionary",
    "pspropertyexpression": "Microsoft.PowerShell.Commands.PSPropertyExpression",
    "psscriptmethod": "System.Management.Automation.PSScriptMethod",
    "psscriptproperty": "System.Management.Automation.PSScriptProperty",
    "pstypenameattribute": "System.Management.Automation.PSTypeNameAttribute",
    "psvariable": "System.Management.Automation.PSVariable",
    "psvariableproperty": "System.Management.Automation.PSVariableProperty",
    "ref": "System.Management.Automation.PSReference",
    "regex": "System.Text.RegularExpressions.Regex",
    "runspace": "System.Management.Automation.Runspaces.Runspace",
    "runspacefactory": "System.Management.Automation.Runspaces.RunspaceFactory",
    "sbyte": "System.SByte",
    "scriptblock": "System.Management.Automation.ScriptBlock",
    "securestring": "System.Security.SecureString",
    "semver": "System.Management.Automation.SemanticVersion",
    "short": "System.Int16",
    "single": "System.Single",
    "string": "System.String",
    "supportswildcards": "System.Management.Automation.SupportsWildcardsAttribute",
    "switch": "System.Management.Automation.SwitchParameter",
    "timespan": "System.TimeSpan",
    "type": "System.Type",
    "uint": "System.UInt32",
    "uint16": "System.UInt16",
    "uint32": "System.UInt32",
    "uint64": "System.UInt64",
    "ulong": "System.UInt64",
    "uri": "System.Uri",
    "ushort": "System.UInt16",
    "validatecount": "System.Management.Automation.ValidateCountAttribute",
    "validatedrive": "System.Management.Automation.ValidateDriveAttribute",
    "validatelength": "System.Management.Automation.ValidateLengthAttribute",
    "validatenotnull": "System.Management.Automation.ValidateNotNullAttribute",
    "validatenotnullorempty": "System.Management.Automation.ValidateNotNullOrEmptyAttribute",
    "validatenotnullorwhitespace":
        "System.Management.Automation.ValidateNotNullOrWhiteSpaceAttribute",
    "validatepattern": "System.Management.Automation.ValidatePatternAttribute",
    "validaterange": "System.Management.Automation.ValidateRangeAttribute",
    "validatescript": "System.Management.Automation.ValidateScriptAttribute",
    "validateset": "System.Management.Automation.ValidateSetAttribute",
    "validatetrusteddata": "System.Management.Automation.ValidateTrustedDataAttribute",
    "validateuserdrive": "System.Management.Automation.ValidateUserDriveAttribute",
    "version": "System.Version",
    "void": "System.Void",
    "wildcardpattern": "System.Management.Automation.WildcardPattern",
    "x500distinguishedname": "System.Security.Cryptography.X509Certificates.X500DistinguishedName",
    "x509certificate": "System.Security.Cryptography.X509Certificates.X509Certificate",
    "xml": "System.Xml.XmlDocument",
}
#: Accelerators PowerShell 6 and 7 added: Windows PowerShell 5.1 does not know these names.
PS7_ONLY_ACCELERATORS = frozenset({
    "argumentcompletions", "experimentaction", "experimental", "experimentalfeature",
    "norunspaceaffinity", "pspropertyexpression", "semver", "short", "uint", "ulong", "ushort",
    "validatenotnullorwhitespace"})
#: Windows PowerShell 5.1's accelerators: 7.6's minus the newer ones, plus the WMI and ADSI
#: ones 7 dropped. (``[ordered]`` is parsed specially by both before a hashtable literal.)
ACCELERATORS_51: Mapping[str, str] = dict(
    {k: v for k, v in ACCELERATORS_76.items() if k not in PS7_ONLY_ACCELERATORS},
    adsi="System.DirectoryServices.DirectoryEntry",
    adsisearcher="System.DirectoryServices.DirectorySearcher",
    wmi="System.Management.ManagementObject",
    wmiclass="System.Management.ManagementClass",
    wmisearcher="System.Management.ManagementObjectSearcher",
)

#: Overloads that have the same argument count on both runtimes, but no form of that count that
#: works on Windows under both: (type, member lower-case, argument count) → why.
SAME_COUNT_DIVERGENCES: Mapping[Tuple[str, str, int], str] = {
    ("System.IO.Directory", "createdirectory", 2):
        "the two-argument form is CreateDirectory(string, DirectorySecurity) on .NET Framework "
        "and CreateDirectory(string, UnixFileMode) on .NET 7 and later, which is not supported "
        "on Windows",
}

#: ``params`` arrays (C# ``params T[]``, the same on both runtimes): (type, member lower-case) →
#: the argument count of the overload whose last parameter is the array; such an overload takes
#: that count minus one, or more. The references list argument counts only.
PARAMS_ARRAYS: Mapping[Tuple[str, str], Tuple[int, ...]] = {
    ("System.String", "trim"): (1,),          # Trim(params char[])
    ("System.String", "trimstart"): (1,),     # TrimStart(params char[])
    ("System.String", "trimend"): (1,),       # TrimEnd(params char[])
    ("System.String", "split"): (1,),         # Split(params char[])
    ("System.String", "format"): (2, 3),      # Format([IFormatProvider,] string, params object[])
    ("System.String", "concat"): (1,),        # Concat(params object[] / string[])
    ("System.String", "join"): (2,),          # Join(string, params string[] / object[])
    ("System.IO.Path", "combine"): (1,),      # Combine(params string[])
}

#: What static members return (from .NET's documentation; the references do not say), so
#: that members of their results are checked too: (type, member lower-case) → type name.
STATIC_RETURNS: Mapping[Tuple[str, str], str] = {
    ("Microsoft.Management.Infrastructure.CimSession", "create"):
        "Microsoft.Management.Infrastructure.CimSession",
    ("Microsoft.Management.Infrastructure.CimMethodParameter", "create"):
        "Microsoft.Management.Infrastructure.CimMethodParameter",
    ("System.Diagnostics.Stopwatch", "startnew"): "System.Diagnostics.Stopwatch",
    ("System.Guid", "newguid"): "System.Guid",
    ("System.DateTime", "utcnow"): "System.DateTime",
    ("System.DateTime", "now"): "System.DateTime",
    ("System.Net.NetworkInformation.IPGlobalProperties", "getipglobalproperties"):
        "System.Net.NetworkInformation.IPGlobalProperties",
    ("System.Security.Cryptography.SHA256", "create"): "System.Security.Cryptography.SHA256",
    ("System.Text.Encoding", "utf8"): "System.Text.Encoding",
    ("System.Text.Encoding", "unicode"): "System.Text.Encoding",
    ("System.Text.Encoding", "ascii"): "System.Text.Encoding",
    ("System.TimeSpan", "fromseconds"): "System.TimeSpan",
    ("System.TimeSpan", "frommilliseconds"): "System.TimeSpan",
    ("System.Text.RegularExpressions.Regex", "match"): "System.Text.RegularExpressions.Match",
    ("System.Text.RegularExpressions.Regex", "escape"): "System.String",
    ("System.Text.RegularExpressions.Regex", "replace"): "System.String",
    ("System.Environment", "currentdirectory"): "System.String",
    ("System.Environment", "systemdirectory"): "System.String",
    ("System.Environment", "username"): "System.String",
    ("System.Environment", "userdomainname"): "System.String",
    ("System.Environment", "getfolderpath"): "System.String",
    ("System.Environment", "getenvironmentvariable"): "System.String",
    ("System.IO.Path", "getfilename"): "System.String",
    ("System.IO.Path", "getdirectoryname"): "System.String",
    ("System.IO.Path", "getextension"): "System.String",
    ("System.IO.File", "readalltext"): "System.String",
    ("System.IO.Directory", "createdirectory"): "System.IO.DirectoryInfo",
    ("System.Convert", "tobase64string"): "System.String",
    ("System.BitConverter", "tostring"): "System.String",
    ("System.String", "format"): "System.String",
    ("System.String", "join"): "System.String",
}

#: Members PowerShell gives every object (not .NET members).
INTRINSIC_MEMBERS = frozenset({"psobject", "psbase", "psadapted", "psextended", "pstypenames",
                               "count", "length", "where", "foreach"})
#: PowerShell's extended type data (types.ps1xml of 5.1 and 7) on types a script may meet.
ETS_MEMBERS: Mapping[str, FrozenSet[str]] = {
    "System.IO.FileSystemInfo": frozenset({"mode", "modewithouthardlink", "basename", "target",
                                           "linktype", "resolvedtarget"}),
    "System.IO.FileInfo": frozenset({"versioninfo", "basename"}),
    "System.Security.AccessControl.ObjectSecurity": frozenset({
        "path", "owner", "group", "access", "sddl", "accesstostring", "audittostring",
        "centralaccesspolicyid", "centralaccesspolicyname"}),
}
#: Types whose property access is a key lookup, or whose members PowerShell adapts.
ADAPTED_TYPES = frozenset({"System.Object", "System.Management.Automation.PSObject",
                           "System.Collections.Hashtable",
                           "System.Collections.Specialized.OrderedDictionary",
                           "System.Collections.Generic.Dictionary`2",
                           "System.Collections.IDictionary", "System.Xml.XmlNode",
                           "System.Management.Automation.PSCustomObject",
                           "System.__ComObject"})

_RUNTIMES = (
    ("netfx462", "Windows PowerShell 5.1 (.NET Framework 4.6.2)", ACCELERATORS_51),
    ("pwsh76", "PowerShell 7.6 (.NET 10)", ACCELERATORS_76),
)


# --------------------------------------------------------------------------
# The references
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TypeRef:
    """A type name as a script writes it: ``List[string]`` is name ``List``, one argument."""

    name: str
    args: Tuple["TypeRef", ...] = ()
    rank: int = 0  # how many array suffixes ([] or [,])

    def __str__(self) -> str:
        text = self.name
        if self.args:
            text += "[" + ",".join(str(a) for a in self.args) + "]"
        return text + "[]" * self.rank


class Runtime:
    """One runtime's API: types by full name, members by argument counts."""

    def __init__(self, key: str, title: str, doc: Mapping, accelerators: Mapping[str, str]):
        self.key = key
        self.title = title
        self.description = doc.get("runtime", "")
        self.types: Mapping[str, Mapping] = doc["types"]
        self._lower = {k.lower(): k for k in self.types}
        self.accelerators = dict(accelerators)
        self._members: Dict[Tuple[str, str], Dict[str, List[int]]] = {}

    def resolve(self, name: str, arity: int = 0) -> Tuple[Optional[str], bool]:
        """(full name, found through an accelerator) of a name as PowerShell resolves it."""
        low = name.lower().replace(" ", "")
        if arity == 0 and low in self.accelerators:
            full = self.accelerators[low]
            return (full if full in self.types else None), True
        suffix = "`%d" % arity if arity else ""
        for candidate in (low + suffix, "system." + low + suffix):
            if candidate in self._lower:
                return self._lower[candidate], False
        return None, False

    def chain(self, full: str) -> List[str]:
        """The type and its bases, as far as the reference knows them."""
        out = []
        current: Optional[str] = full
        while current and current in self.types and current not in out:
            out.append(current)
            current = self.types[current].get("base")
        return out

    def _table(self, full: str, kind: str) -> Dict[str, List[int]]:
        key = (full, kind)
        if key not in self._members:
            table: Dict[str, List[int]] = {}
            for t in self.chain(full):
                for member, counts in self.types[t].get(kind, {}).items():
                    table.setdefault(member.lower(), []).extend(counts)
            self._members[key] = table
        return self._members[key]

    def static_member(self, full: str, member: str) -> Optional[List[int]]:
        return self._table(full, "static").get(member.lower())

    def instance_member(self, full: str, member: str) -> Optional[List[int]]:
        return self._table(full, "instance").get(member.lower())

    def ctors(self, full: str) -> List[int]:
        counts = list(self.types[full].get("ctors", []))
        if self.types[full].get("base") in ("System.ValueType", "System.Enum"):
            counts.append(0)
        return counts

    def assembly(self, full: str) -> str:
        return self.types[full].get("assembly") or ""


@functools.lru_cache(maxsize=4)
def load_runtimes(directory: str = DATA_DIR) -> Tuple[Runtime, ...]:
    """Both runtimes (the JSON files are read once per process)."""
    out = []
    for key, title, accelerators in _RUNTIMES:
        with open(os.path.join(directory, key + ".json"), encoding="utf-8") as f:
            out.append(Runtime(key, title, json.load(f), accelerators))
    return tuple(out)


# --------------------------------------------------------------------------
# Type names
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def parse_type_name(text: str) -> Optional[TypeRef]:
    """``System.Collections.Generic.List[string]``, ``byte[]``, ``Dictionary[[a],[b]]``..."""
    text = text.strip()
    ref, rest = _parse_type(text, 0)
    if ref is None or text[rest:].strip():
        return None
    return ref


def _parse_type(text: str, i: int) -> Tuple[Optional[TypeRef], int]:
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i < n and text[i] == "[":  # a bracketed generic argument: [[a],[b]]
        inner, j = _parse_type(text, i + 1)
        if inner is None or j >= n or text[j] != "]":
            return None, i
        return inner, j + 1
    start = i
    while i < n and (text[i].isalnum() or text[i] in "._`+"):
        i += 1
    name = text[start:i]
    if not name:
        return None, i
    name = re.sub(r"`\d+$", "", name)
    args: List[TypeRef] = []
    rank = 0
    while i < n and text[i] == "[":
        j = i + 1
        while j < n and text[j] in " ,":
            j += 1
        if j < n and text[j] == "]":  # [] or [,]: an array
            rank += 1
            i = j + 1
            continue
        if args or rank:
            return None, i
        i += 1
        while True:
            arg, i = _parse_type(text, i)
            if arg is None:
                return None, i
            args.append(arg)
            while i < n and text[i] == " ":
                i += 1
            if i < n and text[i] == ",":
                i += 1
                continue
            if i < n and text[i] == "]":
                i += 1
                break
            return None, i
    return TypeRef(name, tuple(args), rank), i


# --------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem: in which script and function, where (1-based), what."""

    script: str
    function: str
    line: int
    column: int
    message: str

    @property
    def key(self) -> Tuple[str, str]:
        """What the finding is, wherever it is seen: (function, message)."""
        return self.function, self.message

    def __str__(self) -> str:
        where = self.function or "(script level)"
        return "%s: %s line %d:%d: %s" % (self.script, where, self.line, self.column,
                                          self.message)


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------

_CAPTURED = ("type_literal", "attribute", "invokation_expression", "member_access", "command",
             "assignment_expression", "script_parameter", "foreach_statement",
             "function_statement", "class_statement", "enum_statement", "cast_expression")


@functools.lru_cache(maxsize=1)
def _query() -> tree_sitter.Query:
    lang = pscheck.language()
    body = " ".join("(%s) @%s" % (t, t) for t in _CAPTURED)
    body += ' ((variable) @fnvar (#match? @fnvar "^\\\\$\\\\{?function:"))'
    return tree_sitter.Query(lang, body)


def _captures(node: tree_sitter.Node) -> Dict[str, List[tree_sitter.Node]]:
    cursor = getattr(tree_sitter, "QueryCursor", None)
    if cursor is not None:
        found = cursor(_query()).captures(node)
    else:  # pragma: no cover - older tree-sitter
        found = _query().captures(node)
    return {k: sorted(v, key=lambda n: n.start_byte) for k, v in found.items()}


_WRAPPERS = frozenset(("logical_expression", "bitwise_expression", "comparison_expression",
             "additive_expression", "multiplicative_expression", "format_expression",
             "range_expression", "array_literal_expression", "unary_expression",
             "argument_expression", "logical_argument_expression", "bitwise_argument_expression",
             "comparison_argument_expression", "additive_argument_expression",
             "multiplicative_argument_expression", "format_argument_expression",
             "range_argument_expression", "pipeline", "pipeline_chain", "statement_list",
             "left_assignment_expression", "expression_with_unary_operator"))


def _strip(node: tree_sitter.Node) -> tree_sitter.Node:
    """Descend through nodes that only wrap one expression (and through parentheses)."""
    while True:
        kind = node.type
        if kind in _WRAPPERS:
            if node.child_count != 1 or node.named_child_count != 1:
                return node
            node = node.named_children[0]
        elif kind == "parenthesized_expression":
            named = [c for c in node.named_children if c.type != "comment"]
            if len(named) != 1:
                return node
            node = named[0]
        else:
            return node


def _array_items(node: tree_sitter.Node) -> List[tree_sitter.Node]:
    """The elements of ``a, b, c`` (one element for anything else)."""
    node = _strip(node)
    if node.type == "array_literal_expression" and node.child_count > 1:
        return [c for c in node.named_children if c.type != "comment"]
    return [node]


@dataclasses.dataclass(frozen=True)
class _TypeValue:
    """An expression whose value is a type object: ``[System.IO.File]``."""

    ref: TypeRef


_NULL = object()
_UNTYPED_CASTS = frozenset({"ref", "void", "object", "system.object", "psobject",
                            "pscustomobject", "array", "system.array", "ordered"})


class _Scope:
    """Bindings of variables in one function (or the script level)."""

    def __init__(self) -> None:
        self.constraints: Dict[str, Set[TypeRef]] = {}
        self.values: Dict[str, List[object]] = {}

    def bind(self, name: str, value: object, constraint: Optional[TypeRef] = None) -> None:
        if constraint is not None:
            self.constraints.setdefault(name, set()).add(constraint)
        else:
            self.values.setdefault(name, []).append(value)

    def has(self, name: str) -> bool:
        return name in self.constraints or name in self.values

    def types(self, name: str) -> Optional[Set[object]]:
        """The types a variable's value may have, or None when some binding is unknown."""
        if name in self.constraints:
            return set(self.constraints[name])
        values = [v for v in self.values.get(name, []) if v is not _NULL]
        if not values or any(v is None for v in values):
            return None
        return set(values)


class _Checker:
    def __init__(self, text: str, runtimes: Sequence[Runtime], label: str,
                 function: str = "", line_offset: int = 0, note: str = "") -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.runtimes = runtimes
        self.label = label
        self.default_function = function
        self.line_offset = line_offset
        self.note = note
        self.tree = tree_sitter.Parser(pscheck.language()).parse(self.data)
        self.root = self.tree.root_node
        self.findings: List[Finding] = []
        self.nodes = _captures(self.root)
        self.assemblies: List[Tuple[int, str]] = []
        self.defined: Dict[str, Dict[str, Optional[Set[int]]]] = {}
        self.scopes: Dict[Optional[int], _Scope] = {}
        self._fns = self.nodes.get("function_statement", [])
        self._fn_starts = [fn.start_byte for fn in self._fns]
        self._parts: Dict[int, tuple] = {}
        #: What was checked (lower-case names), for tests that the walk misses nothing.
        self.checked_types: Set[str] = set()
        self.checked_statics: Set[Tuple[str, str]] = set()
        self.checked_ctors: Set[str] = set()

    # ---- helpers -------------------------------------------------------

    def node_text(self, node: tree_sitter.Node) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def function_of(self, node: tree_sitter.Node) -> Optional[tree_sitter.Node]:
        """The innermost function definition around ``node``."""
        i = bisect.bisect_right(self._fn_starts, node.start_byte) - 1
        while i >= 0:
            fn = self._fns[i]
            if fn.end_byte >= node.end_byte and fn.start_byte < node.start_byte:
                return fn
            i -= 1
        return None

    def function_name(self, fn: Optional[tree_sitter.Node]) -> str:
        if fn is None:
            return self.default_function
        name = next((c for c in fn.children if c.type == "function_name"), None)
        return self.node_text(name) if name is not None else "?"

    def report(self, node: tree_sitter.Node, message: str) -> None:
        row, col = node.start_point
        self.findings.append(Finding(
            self.label, self.function_name(self.function_of(node)), row + 1 + self.line_offset,
            col + 1, message + self.note))

    def scope(self, node: tree_sitter.Node) -> _Scope:
        fn = self.function_of(node)
        key = fn.start_byte if fn is not None else None
        return self.scopes.setdefault(key, _Scope())

    def string_value(self, node: tree_sitter.Node) -> Optional[str]:
        """The value of a bare word or a constant string literal."""
        node = _strip(node)
        if node.type == "generic_token":
            return self.node_text(node)
        if node.type == "string_literal" and node.named_children:
            node = node.named_children[0]
        raw = self.node_text(node)
        if node.type == "verbatim_string_characters":
            return pscheck.decode_single_quoted(raw)
        if node.type == "verbatim_here_string_characters":
            return "\n".join(raw.splitlines()[1:-1])
        if node.type in ("expandable_string_literal", "expandable_here_string_literal"):
            if node.named_children:
                return None
            if node.type == "expandable_string_literal":
                return raw[1:-1]
            return "\n".join(raw.splitlines()[1:-1])
        return None

    # ---- the walk ------------------------------------------------------

    def run(self) -> List[Finding]:
        if self.root.has_error:
            first = next(n for n in _walk(self.root) if n.is_error or n.is_missing)
            self.report(first, "the script does not parse here: its .NET use cannot be checked")
            return self.findings
        self.collect_definitions()
        self.collect_bindings()
        for node in self.nodes.get("type_literal", []):
            self.check_type_literal(node)
        for node in self.nodes.get("attribute", []):
            self.check_attribute(node)
        for node in self.nodes.get("command", []):
            self.check_command(node)
        for kind in ("invokation_expression", "member_access"):
            for node in self.nodes.get(kind, []):
                self.check_member(node)
        return self.findings

    def collect_definitions(self) -> None:
        for node in self.nodes.get("class_statement", []) + self.nodes.get("enum_statement", []):
            name = next((c for c in node.named_children if c.type == "simple_name"), None)
            if name is not None:
                self.defined[self.node_text(name).lower()] = {}
        for node in self.nodes.get("command", []):
            name, params, _ = self.command_parts(node)
            if name != "add-type":
                continue
            for pname, value in params:
                if value is None:
                    continue
                if "assemblyname".startswith(pname) and len(pname) >= 2:
                    for item in _array_items(value):
                        assembly = self.string_value(item)
                        if assembly:
                            self.assemblies.append(
                                (node.start_byte, assembly.split(",")[0].strip().lower()))
                elif "typedefinition".startswith(pname) and len(pname) >= 2:
                    for source in self.sources_of(value):
                        self.defined.update(csharp_types(source))

    def sources_of(self, value: tree_sitter.Node) -> List[str]:
        """The C# text an Add-Type -TypeDefinition argument holds (literal or variable)."""
        direct = self.string_value(value)
        if direct is not None:
            return [direct]
        value = _strip(value)
        if value.type != "variable":
            return []
        name = self.node_text(value).lower()
        out = []
        for node in self.nodes.get("assignment_expression", []):
            left = _strip(node.named_children[0])
            if left.type == "variable" and self.node_text(left).lower() == name:
                text = self.string_value(node.named_children[-1])
                if text is not None:
                    out.append(text)
        return out

    def collect_bindings(self) -> None:
        for node in self.nodes.get("assignment_expression", []):
            left = _strip(node.named_children[0])
            op = next((c for c in node.children if c.type == "assignement_operator"), None)
            plain = op is not None and self.node_text(op) == "="
            constraint = None
            if left.type == "cast_expression":
                lit = next((c for c in left.named_children if c.type == "type_literal"), None)
                target = next((c for c in left.named_children if c.type != "type_literal"), None)
                constraint = self.type_ref(lit) if lit is not None else None
                left = _strip(target) if target is not None else left
                if constraint is not None and constraint.name.lower() in _UNTYPED_CASTS:
                    constraint, plain = None, False
            if left.type != "variable":
                continue
            value = self.expr_type(node.named_children[-1]) if plain else None
            self.scope(node).bind(_var_name(self.node_text(left)), value, constraint)
        for node in self.nodes.get("script_parameter", []):
            var = next((c for c in node.named_children if c.type == "variable"), None)
            if var is None:
                continue
            constraint = None
            attrs = next((c for c in node.named_children if c.type == "attribute_list"), None)
            if attrs is not None:
                for attr in attrs.named_children:
                    lit = next((c for c in attr.named_children if c.type == "type_literal"), None)
                    if lit is not None:
                        constraint = self.type_ref(lit)
            if constraint is not None and constraint.name.lower() in _UNTYPED_CASTS:
                constraint = None
            self.scope(node).bind(_var_name(self.node_text(var)), None, constraint)
        for node in self.nodes.get("foreach_statement", []):
            var = next((c for c in node.named_children if c.type == "variable"), None)
            if var is not None:
                self.scope(node).bind(_var_name(self.node_text(var)), None)
        for node in self.nodes.get("cast_expression", []):
            lit = next((c for c in node.named_children if c.type == "type_literal"), None)
            target = next((c for c in node.named_children if c.type != "type_literal"), None)
            if lit is not None and target is not None and \
                    self.node_text(lit).replace(" ", "").lower() == "[ref]":
                target = _strip(target)
                if target.type == "variable":
                    self.scope(node).bind(_var_name(self.node_text(target)), None)
        for node in self.nodes.get("command", []):
            name, params, _ = self.command_parts(node)
            for pname, value in params:
                if value is None:
                    continue
                if pname in ("outvariable", "ov", "errorvariable", "ev", "warningvariable", "wv",
                             "informationvariable", "iv", "pipelinevariable", "pv") or (
                                 name in ("set-variable", "new-variable") and pname == "name"):
                    var = self.string_value(value)
                    if var:
                        self.scope(node).bind(var.lstrip("+").lower(), None)

    def variable_types(self, node: tree_sitter.Node) -> Optional[Set[object]]:
        text = self.node_text(node)
        name = _var_name(text)
        if name in ("null",):
            return {_NULL}
        scoped = text.lower().lstrip("${").startswith(("script:", "global:"))
        local = self.scope(node)
        top = self.scopes.setdefault(None, _Scope())
        if not scoped and local.has(name):
            return local.types(name)
        return top.types(name)

    def expr_type(self, node: tree_sitter.Node) -> object:
        """TypeRef (an instance), _TypeValue (a type), _NULL, or None (not known)."""
        node = _strip(node)
        if node.type == "variable":
            if self.node_text(node).lower() == "$null":
                return _NULL
            return None
        if node.type == "type_literal":
            ref = self.type_ref(node)
            return _TypeValue(ref) if ref is not None else None
        if node.type == "cast_expression":
            lit = next((c for c in node.named_children if c.type == "type_literal"), None)
            ref = self.type_ref(lit) if lit is not None else None
            if ref is None or ref.name.lower() in _UNTYPED_CASTS:
                return None
            return ref
        if node.type == "command":
            name, params, _ = self.command_parts(node)
            if name == "new-object":
                spec = self.new_object_spec(node)
                if spec is not None and spec[0] is not None:
                    return spec[0]
            return None
        if node.type in ("invokation_expression", "member_access"):
            children = node.children
            if len(children) >= 3 and children[1].type == "::":
                receiver = self.receiver_type(children[0])
                if not isinstance(receiver, _TypeValue):
                    return None
                member = self.node_text(children[2]).lower()
                if member == "new" and node.type == "invokation_expression":
                    return receiver.ref
                for rt in self.runtimes:
                    full, _ = rt.resolve(receiver.ref.name, len(receiver.ref.args))
                    if full is not None:
                        returned = STATIC_RETURNS.get((full, member))
                        return parse_type_name(returned) if returned else None
        return None

    def receiver_type(self, node: tree_sitter.Node) -> object:
        node = _strip(node)
        if node.type == "variable":
            types = self.variable_types(node)
            if types is not None and len(types) == 1:
                only = next(iter(types))
                if isinstance(only, _TypeValue):
                    return only
            return types
        return self.expr_type(node)

    def type_ref(self, node: tree_sitter.Node) -> Optional[TypeRef]:
        spec = next((c for c in node.named_children if c.type == "type_spec"), None)
        return parse_type_name(self.node_text(spec)) if spec is not None else None

    # ---- types ---------------------------------------------------------

    def check_type(self, node: tree_sitter.Node, ref: TypeRef,
                   attribute: bool = False) -> Dict[str, Optional[str]]:
        """Report what is wrong with a type name; its full name on each runtime."""
        out: Dict[str, Optional[str]] = {}
        low = ref.name.lower()
        self.checked_types.add(low)
        if low == "ordered" and not ref.args:
            return {rt.key: rt.accelerators.get("ordered") for rt in self.runtimes}
        if low in self.defined and not ref.args:
            return {rt.key: None for rt in self.runtimes}
        for rt in self.runtimes:
            full, accelerated = rt.resolve(ref.name, len(ref.args))
            if attribute and full is None:
                full, accelerated = rt.resolve(ref.name + "Attribute")
            out[rt.key] = full
            if full is None:
                what = "attribute " if attribute else ""
                self.report(node, "%stype [%s] does not exist in %s"
                            % (what, ref, rt.title))
                continue
            if rt.key == "netfx462" and not accelerated:
                self.check_assembly(node, rt, full)
        for arg in ref.args:
            self.check_type(node, arg)
        return out

    def check_assembly(self, node: tree_sitter.Node, rt: Runtime, full: str) -> None:
        assembly = rt.assembly(full)
        low = assembly.lower()
        if not low or low in SURELY_LOADED:
            return
        if any(offset < node.start_byte and name == low for offset, name in self.assemblies):
            return
        self.report(node, "[%s] lives in assembly %s, which Windows PowerShell 5.1 does not load "
                          "by itself: Add-Type -AssemblyName %s earlier in this script"
                    % (full, assembly, assembly))

    def check_type_literal(self, node: tree_sitter.Node) -> None:
        ref = self.type_ref(node)
        if ref is None:
            self.report(node, "type literal %s cannot be read" % self.node_text(node))
            return
        self.check_type(node, ref)

    def check_attribute(self, node: tree_sitter.Node) -> None:
        name = next((c for c in node.named_children if c.type == "attribute_name"), None)
        if name is None:
            return
        ref = parse_type_name(self.node_text(name))
        if ref is None:
            self.report(node, "attribute %s cannot be read" % self.node_text(name))
            return
        self.check_type(node, ref, attribute=True)

    # ---- commands: New-Object, Add-Type ---------------------------------

    def command_parts(self, node: tree_sitter.Node):
        """(lower-case name, [(parameter lower-case, value node or None)], [positional])."""
        if node.id not in self._parts:
            self._parts[node.id] = self._command_parts(node)
        return self._parts[node.id]

    def _command_parts(self, node: tree_sitter.Node):
        name_node = next((c for c in node.named_children if c.type == "command_name"), None)
        name = self.node_text(name_node).lower() if name_node is not None else ""
        name = name.rsplit("\\", 1)[-1]
        elements = next((c for c in node.named_children if c.type == "command_elements"), None)
        params: List[Tuple[str, Optional[tree_sitter.Node]]] = []
        positional: List[tree_sitter.Node] = []
        if elements is None:
            return name, params, positional
        items = [c for c in elements.named_children
                 if c.type not in ("command_argument_sep", "comment")]
        i = 0
        while i < len(items):
            item = items[i]
            if item.type == "command_parameter":
                pname = self.node_text(item).lstrip("-").rstrip(":").lower()
                value = None
                if ":" in self.node_text(item)[1:]:
                    pname = self.node_text(item)[1:].split(":", 1)[0].lower()
                if i + 1 < len(items) and items[i + 1].type != "command_parameter" \
                        and pname not in ("strict",):
                    value = items[i + 1]
                    i += 1
                params.append((pname, value))
            else:
                positional.append(item)
            i += 1
        return name, params, positional

    def new_object_spec(self, node: tree_sitter.Node):
        """(TypeRef or None, argument count, type name node) of a New-Object call; None: COM."""
        _, params, positional = self.command_parts(node)
        type_node = None
        args_node = None
        for pname, value in params:
            if pname and "comobject".startswith(pname):
                return None
            if "typename".startswith(pname) and pname:
                type_node = value
            elif ("argumentlist".startswith(pname) and pname) or pname == "args":
                args_node = value
        rest = list(positional)
        if type_node is None and rest:
            type_node = rest.pop(0)
        if args_node is None and rest:
            args_node = rest.pop(0)
        if type_node is None:
            return (None, 0, node)
        name = self.string_value(type_node)
        if name is None:
            return (None, -1, type_node)
        ref = parse_type_name(name)
        if ref is None:
            return (None, -1, type_node)
        count = 0
        if args_node is not None:
            count = self.argument_count(args_node)
        return (ref, count, type_node)

    def argument_count(self, node: tree_sitter.Node) -> int:
        """How many constructor arguments a -ArgumentList value gives."""
        if node.type == "argument_list":
            return self.call_argument_count(node)
        stripped = _strip(node)
        if stripped.type == "array_expression":  # @(a, b)
            inner = [c for c in stripped.named_children if c.type != "comment"]
            return len(_array_items(inner[0])) if len(inner) == 1 else len(inner)
        return len(_array_items(node))

    def call_argument_count(self, node: tree_sitter.Node) -> int:
        exprs = next((c for c in node.named_children if c.type == "argument_expression_list"),
                     None)
        if exprs is None:
            return 0
        return len([c for c in exprs.named_children if c.type != "comment"])

    def check_command(self, node: tree_sitter.Node) -> None:
        name, _, _ = self.command_parts(node)
        if name != "new-object":
            return
        spec = self.new_object_spec(node)
        if spec is None:
            return  # -ComObject
        ref, count, where = spec
        if ref is None:
            self.report(where, "New-Object without a constant type name cannot be checked")
            return
        fulls = self.check_type(where, ref)
        self.check_ctor(where, ref, fulls, count, "New-Object -TypeName %s" % ref)

    def check_ctor(self, node: tree_sitter.Node, ref: TypeRef, fulls: Mapping[str, Optional[str]],
                   count: int, form: str) -> None:
        self.checked_ctors.add(ref.name.lower())
        if ref.name.lower() in self.defined:
            return
        if ref.rank:
            if count < 1:
                self.report(node, "%s: an array needs its length" % form)
            return
        for rt in self.runtimes:
            full = fulls.get(rt.key)
            if full is None:
                continue
            counts = rt.ctors(full)
            if count not in counts:
                self.report(node, "%s with %d argument%s: [%s] has no such constructor in %s "
                                  "(it has %s)" % (form, count, "" if count == 1 else "s", full,
                                                   rt.title, _counts(counts)))

    # ---- members -------------------------------------------------------

    def check_member(self, node: tree_sitter.Node) -> None:
        children = node.children
        op = next((c for c in children if c.type in ("::", ".")), None)
        member = next((c for c in children if c.type == "member_name"), None)
        if op is None or member is None or children[0] is op:
            return
        if not member.named_children or member.named_children[0].type != "simple_name":
            return
        name = self.node_text(member)
        value = self.receiver_type(children[0])
        if op.type == "::":
            if isinstance(value, _TypeValue):
                self.check_static(node, value.ref, name, self.argument_count_of(node))
            return
        types = {value} if isinstance(value, TypeRef) else value
        if not isinstance(types, set) or not any(isinstance(t, TypeRef) for t in types):
            return
        count = self.argument_count_of(node)
        for ref in types:
            if isinstance(ref, TypeRef):
                self.check_instance(node, ref, name, count)

    def argument_count_of(self, node: tree_sitter.Node) -> Optional[int]:
        """How many arguments a member is called with; None: not called (a property)."""
        args = next((c for c in node.children if c.type == "argument_list"), None)
        if args is None and node.type == "member_access":
            args = self.command_mode_arguments(node)
        return self.call_argument_count(args) if args is not None else None

    def command_mode_arguments(self, node: tree_sitter.Node) -> Optional[tree_sitter.Node]:
        """In a command's arguments the grammar reads ``$x.M(a)`` as ``$x.M`` and then ``(a)``:
        the argument list that directly follows (no blank between), as PowerShell reads it."""
        elem = node
        while elem.parent is not None and elem.parent.type != "command_elements":
            if elem.parent.end_byte != node.end_byte:
                return None
            elem = elem.parent
        after = elem.next_sibling if elem.parent is not None else None
        if after is not None and after.type == "argument_list" and \
                after.start_byte == node.end_byte:
            return after
        return None

    def check_static(self, node: tree_sitter.Node, ref: TypeRef, name: str,
                     count: Optional[int]) -> None:
        low = name.lower()
        self.checked_statics.add((ref.name.lower(), low))
        if ref.name.lower() in self.defined and not ref.args:
            members = self.defined[ref.name.lower()]
            if members and low not in members:
                self.report(node, "[%s]::%s is not a public static member of the type this "
                                  "script defines" % (ref, name))
            elif members and count is not None and members[low] is not None \
                    and count not in members[low]:
                self.report(node, "[%s]::%s with %d arguments: the type this script defines "
                                  "takes %s" % (ref, name, count, _counts(members[low])))
            return
        fulls = {}
        for rt in self.runtimes:
            full, _ = rt.resolve(ref.name, len(ref.args))
            fulls[rt.key] = full
        if low == "new":
            if ref.rank:
                return
            self.check_ctor(node, ref, fulls, count if count is not None else 0,
                            "[%s]::new" % ref)
            return
        if ref.rank:
            return
        seen = []
        for rt in self.runtimes:
            full = fulls[rt.key]
            if full is None:
                continue  # reported with the type literal
            counts = rt.static_member(full, name)
            if counts is None:
                self.report(node, "[%s]::%s: no such static member in %s" % (full, name, rt.title))
                continue
            if count is None:
                if not any(c < 0 for c in counts):
                    self.report(node, "[%s]::%s is a method in %s: without () it is not called"
                                % (full, name, rt.title))
            elif not _takes(rt, full, low, counts, count):
                self.report(node, "[%s]::%s with %d argument%s: no such overload in %s "
                                  "(it takes %s)" % (full, name, count, "" if count == 1 else "s",
                                                     rt.title, _counts(counts)))
            else:
                seen.append(full)
        if count is not None and len(seen) == len(self.runtimes) and len(set(seen)) == 1:
            why = SAME_COUNT_DIVERGENCES.get((seen[0], low, count))
            if why:
                self.report(node, "[%s]::%s with %d arguments: %s" % (seen[0], name, count, why))

    def check_instance(self, node: tree_sitter.Node, ref: TypeRef, name: str,
                       count: Optional[int]) -> None:
        low = name.lower()
        if low in INTRINSIC_MEMBERS or ref.rank or ref.name.lower() in self.defined:
            return
        for rt in self.runtimes:
            full, _ = rt.resolve(ref.name, len(ref.args))
            if full is None:
                continue
            chain = rt.chain(full)
            if any(t in ADAPTED_TYPES for t in chain[:-1]) or full in ADAPTED_TYPES:
                if count is None:
                    continue  # a key lookup
            if any(low in ETS_MEMBERS.get(t, ()) for t in chain):
                continue
            counts = rt.instance_member(full, name)
            if counts is None:
                self.report(node, "%s.%s: [%s] has no such instance member in %s"
                            % (self.node_text(node.children[0]), name, full, rt.title))
            elif count is None and not any(c < 0 for c in counts):
                self.report(node, "%s.%s is a method of [%s] in %s: without () it is not called"
                            % (self.node_text(node.children[0]), name, full, rt.title))
            elif count is not None and not _takes(rt, full, low, counts, count):
                self.report(node, "%s.%s with %d argument%s: [%s] has no such overload in %s "
                                  "(it takes %s)" % (self.node_text(node.children[0]), name, count,
                                                     "" if count == 1 else "s", full, rt.title,
                                                     _counts(counts)))

    # ---- text run in another process -------------------------------------

    def separate_process_functions(self) -> List[str]:
        """Functions whose text the script takes (to start it in another process)."""
        names = []
        for node in self.nodes.get("command", []):
            name, params, positional = self.command_parts(node)
            if name != "get-command":
                continue
            target = next((v for p, v in params if p == "name" and v is not None), None)
            if target is None and positional:
                target = positional[0]
            value = self.string_value(target) if target is not None else None
            if value and self.takes_script_block(node):
                names.append(value)
        for node in self.nodes.get("fnvar", []):
            text = self.node_text(node)
            names.append(text.lstrip("$").strip("{}").split(":", 1)[1])
        out = []
        for n in names:
            if n.lower() not in [o.lower() for o in out]:
                out.append(n)
        return out

    def takes_script_block(self, node: tree_sitter.Node) -> bool:
        parent = node.parent
        for _ in range(12):
            if parent is None:
                return False
            if parent.type in ("member_access", "invokation_expression"):
                member = next((c for c in parent.children if c.type == "member_name"), None)
                return member is not None and self.node_text(member).lower() == "scriptblock"
            parent = parent.parent
        return False

    def function_body(self, name: str) -> Optional[Tuple[str, int]]:
        """(text between the braces, its first line's 0-based row) of function ``name``."""
        for fn in self.nodes.get("function_statement", []):
            if self.function_name(fn).lower() != name.lower():
                continue
            braces = [c for c in fn.children if c.type in ("{", "}")]
            if len(braces) < 2:
                return None
            start, end = braces[0].end_byte, braces[-1].start_byte
            return self.data[start:end].decode("utf-8"), braces[0].end_point[0]
        return None


def _takes(rt: Runtime, full: str, member: str, counts: Sequence[int], count: int) -> bool:
    """Whether a call with ``count`` arguments finds an overload (a parameterized property
    such as ``Item`` takes any)."""
    if count in counts or -1 in counts:
        return True
    for t in rt.chain(full):
        if any(count >= k - 1 for k in PARAMS_ARRAYS.get((t, member), ())):
            return True
    return False


def _walk(node: tree_sitter.Node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _var_name(text: str) -> str:
    name = text.lstrip("$@").strip("{}").lower()
    for prefix in ("script:", "global:", "local:", "private:"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _counts(counts: Iterable[int]) -> str:
    methods = sorted({c for c in counts if c >= 0})
    kinds = []
    if methods:
        kinds.append("%s argument%s" % (", ".join(str(c) for c in methods),
                                        "" if methods == [1] else "s"))
    if -1 in counts:
        kinds.append("a property")
    if -2 in counts:
        kinds.append("a field")
    return " or ".join(kinds) or "none"


_CS_NAMESPACE = re.compile(r"\bnamespace\s+([\w.]+)")
_CS_TYPE = re.compile(r"\bpublic\s+(?:(?:static|sealed|abstract|partial)\s+)*"
                      r"(?:class|struct|enum|interface)\s+(\w+)")
_CS_STATIC_METHOD = re.compile(
    r"\bpublic\s+static\s+(?:(?:extern|unsafe|readonly)\s+)*[\w.<>\[\],\s]+?\s+(\w+)\s*\(([^)]*)\)")


def csharp_types(source: str) -> Dict[str, Dict[str, Optional[Set[int]]]]:
    """Public types of a C# source (full names, lower-case) → public static methods → counts."""
    out: Dict[str, Dict[str, Optional[Set[int]]]] = {}
    namespace = _CS_NAMESPACE.search(source)
    prefix = namespace.group(1) + "." if namespace else ""
    for m in _CS_TYPE.finditer(source):
        out[(prefix + m.group(1)).lower()] = {}
    if len(out) == 1:
        members = next(iter(out.values()))
        for m in _CS_STATIC_METHOD.finditer(source):
            params = [p for p in _split_params(m.group(2)) if p]
            if any(p.startswith("params ") for p in params):
                members[m.group(1).lower()] = None
                continue
            required = len([p for p in params if "=" not in p])
            counts = members.setdefault(m.group(1).lower(), set())
            if counts is not None:
                counts.update(range(required, len(params) + 1))
    return out


def _split_params(text: str) -> List[str]:
    out, depth, current = [], 0, []
    for ch in text:
        if ch in "<[":
            depth += 1
        elif ch in ">]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    out.append("".join(current).strip())
    return out


def check(text: str, runtimes: Optional[Sequence[Runtime]] = None, label: str = "script",
          separate: bool = True) -> List[Finding]:
    """Every finding of ``text``; with ``separate``, also of each function body it starts
    in another process, checked as a script of its own."""
    return check_with_walk(text, runtimes, label, separate)[1]


def check_with_walk(text: str, runtimes: Optional[Sequence[Runtime]] = None,
                    label: str = "script", separate: bool = True):
    """(the walk of ``text``, for what it saw; :func:`check`'s findings)."""
    runtimes = runtimes if runtimes is not None else load_runtimes()
    checker = _Checker(text, runtimes, label)
    findings = list(checker.run())
    if separate and not checker.root.has_error:
        for name in checker.separate_process_functions():
            body = checker.function_body(name)
            if body is None:
                findings.append(Finding(label, name, 1, 1, "the script takes the text of "
                                        "function %s, which it does not define" % name))
                continue
            sub = _Checker(body[0], runtimes, label, function=name, line_offset=body[1],
                           note=" [in the text of %s, run in another process]" % name)
            findings.extend(sub.run())
    return checker, findings


def separate_process_functions(text: str) -> List[str]:
    """Names of the functions whose text ``text`` takes to run in another process."""
    checker = _Checker(text, load_runtimes(), "script")
    return checker.separate_process_functions()
