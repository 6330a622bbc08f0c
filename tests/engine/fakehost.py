"""The fake Hyper-V host's PowerShell modules, generated from Microsoft's documentation.

Every cmdlet a template calls becomes an advanced function in a module named like the real
one (``Hyper-V``, ``SmbShare``, ``Storage``, ``iSCSI``, ``NetTCPIP``, ``StorageQoS``), carrying
the parameter sets, types, mandatory flags, positions, pipeline input, aliases and accepted
values that ``tests/data/cmdlets.json`` records, so PowerShell's own binder accepts or refuses
each call as Windows would.  The body of every function hands the bound parameters to the
hand-written model of the host in ``tests/engine/FakeHost/`` (objects, state, errors), which
holds no smbvol logic.  Core cmdlets that touch what Linux lacks (the registry, UNC paths,
services, ACLs) are generated the same way into ``FakeHost.Core``, whose functions shadow the
real cmdlets (a function beats a cmdlet) and hand every other path to the real cmdlet.

The Hyper-V module's classes and enums (``../shared/reference/hyperv-types.json``, vendored in
``tests/data/``) are compiled once into ``FakeHost.Types.dll``.

:func:`module_dir` builds everything into a cache directory (rebuilt when an input changes) and
returns the folder to put first on ``PSModulePath``; :func:`engine_env` is the environment of
a pwsh whose fake host reads its state from a JSON file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
CHECKOUT = os.path.dirname(TESTS)
DATA = os.path.join(TESTS, "data")
CMDLETS_JSON = os.path.join(DATA, "cmdlets.json")
HYPERV_TYPES_JSON = os.path.join(DATA, "hyperv-types.json")
MODEL_DIR = os.path.join(HERE, "FakeHost")
TEMPLATES = os.path.join(CHECKOUT, "ps_templates")

#: The environment variable naming the JSON file the fake host reads and writes its state to.
STATE_ENV = "SMBVOL_FAKEHOST_STATE"
#: The environment variable naming the fake host (its own namespace of named mutexes).
HOST_ID_ENV = "SMBVOL_FAKEHOST_ID"

#: Modules generated under their real names.
HOST_MODULES = ("Hyper-V", "SmbShare", "Storage", "iSCSI", "NetTCPIP", "StorageQoS")
#: Core cmdlets the fake host shadows (module ``FakeHost.Core``): paths Linux does not have.
CORE_SHADOWS = ("Test-Path", "Get-ItemProperty", "New-Item", "New-ItemProperty",
                "Remove-ItemProperty", "Get-ChildItem", "Get-Service", "Start-Service",
                "Set-Service", "Get-Acl", "Set-Acl", "New-Object")
#: Core cmdlets absent from PowerShell on Linux: the shadow has no real cmdlet behind it.
CORE_ABSENT = ("Get-Service", "Start-Service", "Set-Service", "Get-Acl", "Set-Acl")

#: Parameter types of the docs → PowerShell type literal.  Anything else that is not a Hyper-V
#: type becomes [object] (the docs' short names of CIM enums, for instance); CIM instances are
#: checked by their PSTypeNames (a CimInstance cannot be made without the native MI library).
_SIMPLE_TYPES = {
    "string": "string", "int16": "int16", "int32": "int", "int64": "long", "uint16": "uint16",
    "uint32": "uint32", "uint64": "uint64", "boolean": "bool", "switch": "switch",
    "switchparameter": "switch", "byte": "byte", "char": "char", "double": "double",
    "guid": "guid", "datetime": "datetime", "timespan": "timespan", "pscredential": "pscredential",
    "securestring": "securestring", "hashtable": "hashtable", "scriptblock": "scriptblock",
    "psobject": "psobject", "object": "object", "uri": "uri", "version": "version",
    "cimsession": "Microsoft.Management.Infrastructure.CimSession",
    "registryvaluekind": "Microsoft.Win32.RegistryValueKind",
    "testpathtype": "Microsoft.PowerShell.Commands.TestPathType",
    "servicestartuptype": "object", "encoding": "object",
}


def _inputs_digest() -> str:
    h = hashlib.sha256()
    for path in [CMDLETS_JSON, HYPERV_TYPES_JSON, __file__] + sorted(
            os.path.join(MODEL_DIR, n) for n in os.listdir(MODEL_DIR)) + sorted(
            os.path.join(TEMPLATES, n) for n in os.listdir(TEMPLATES)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def cache_root() -> str:
    base = os.environ.get("SMBVOL_ENGINE_CACHE") or os.path.join(
        tempfile.gettempdir(), "smbvol-engine-%d" % os.getuid())
    return base


def load_cmdlets() -> Dict[str, dict]:
    with open(CMDLETS_JSON, encoding="utf-8") as f:
        return json.load(f)["cmdlets"]


def load_hyperv_types() -> dict:
    with open(HYPERV_TYPES_JSON, encoding="utf-8") as f:
        return json.load(f)


def used_cmdlets(cmdlets: Mapping[str, dict], modules: Iterable[str]) -> List[str]:
    """The cmdlets of ``modules`` that any template names."""
    wanted = set(modules)
    text = "".join(open(os.path.join(TEMPLATES, n), encoding="utf-8").read()
                   for n in sorted(os.listdir(TEMPLATES)))
    out = []
    for name, info in sorted(cmdlets.items()):
        if info.get("module") in wanted and re.search(
                r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text, re.IGNORECASE):
            out.append(name)
    return out


# --------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------

def _short_index(types: dict) -> Dict[str, str]:
    index = {}
    for full in list(types["classes"]) + list(types["enums"]):
        index.setdefault(full.rsplit(".", 1)[-1].lower(), full)
    return index


def type_literal(doc_type: str, hyperv_index: Mapping[str, str]) -> Tuple[str, bool]:
    """``(PowerShell type, is CIM instance)`` for a parameter type of the docs."""
    t = doc_type.strip()
    array = t.endswith("[]")
    base = t[:-2] if array else t
    low = base.lower()
    if low in ("ciminstance", "microsoft.management.infrastructure.ciminstance"):
        return ("psobject[]" if array else "psobject"), True
    if low in _SIMPLE_TYPES:
        lit = _SIMPLE_TYPES[low]
    elif low in hyperv_index:
        lit = hyperv_index[low]
    elif base.startswith("Nullable") or "`" in base:
        lit = "object"
    else:
        lit = "object"
    if lit == "switch":
        return "switch", False
    return (lit + "[]" if array else lit), False


_CS_KEYWORDS = {"object", "string", "class", "namespace", "event", "params", "base", "checked",
                "fixed", "lock", "operator", "out", "ref", "internal", "default"}


def _cs_type(net_type: str, known: set) -> str:
    """A property type of hyperv-types.json as C#, or ``object`` when it is not at hand."""
    t = net_type.strip()
    m = re.match(r"^System\.Nullable<(.+)>$", t)
    if m:
        inner = _cs_type(m.group(1), known)
        return "object" if inner == "object" else "System.Nullable<%s>" % inner
    if t.endswith("[]"):
        inner = _cs_type(t[:-2], known)
        return "object[]" if inner == "object" else inner + "[]"
    simple = {"System.String", "System.Int32", "System.Int64", "System.UInt16", "System.UInt32",
              "System.UInt64", "System.Boolean", "System.Guid", "System.DateTime",
              "System.TimeSpan", "System.Byte", "System.Double", "System.Int16", "System.Char"}
    if t in simple or t in known:
        return t
    return "object"


def types_source(types: dict) -> str:
    known = set(types["classes"]) | set(types["enums"])
    known = {k for k in known if ".Commands." not in k}
    by_ns: Dict[str, List[str]] = {}
    for full, values in sorted(types["enums"].items()):
        if ".Commands." in full:
            continue
        ns, name = full.rsplit(".", 1)
        members = ", ".join("%s = %d" % (k, v)
                            for k, v in sorted(values.items(), key=lambda kv: kv[1]))
        by_ns.setdefault(ns, []).append("    public enum %s { %s }" % (name, members))
    for full, info in sorted(types["classes"].items()):
        if ".Commands." in full:
            continue
        ns, name = full.rsplit(".", 1)
        base = info.get("base")
        base_full = None
        if base:
            base_full = base if "." in base else ns + "." + base
            if base_full not in known:
                base_full = None
        props = []
        inherited = set()
        if base_full:
            inherited = set(types["classes"][base_full]["properties"])
        for pname, ptype in sorted(info["properties"].items()):
            if pname in inherited or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", pname):
                continue
            ident = "@" + pname if pname.lower() in _CS_KEYWORDS else pname
            props.append("        public %s %s { get; set; }" % (_cs_type(ptype, known), ident))
        head = "    public class %s%s" % (name, " : " + base_full if base_full else "")
        by_ns.setdefault(ns, []).append(head + "\n    {\n" + "\n".join(props) + "\n    }")
    parts = []
    for ns, items in sorted(by_ns.items()):
        parts.append("namespace %s\n{\n%s\n}\n" % (ns, "\n".join(items)))
    with open(os.path.join(MODEL_DIR, "FakeHost.Extra.cs"), encoding="utf-8") as f:
        parts.append(f.read())
    return "\n".join(parts)


# --------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------

def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _merge_provider_sets(sets: Mapping[str, list]) -> Dict[str, list]:
    """Core cmdlets list one set per provider ('Path - All providers', 'Path - FileSystem
    provider'): the real cmdlet has one set and dynamic parameters.  Keep one set per base name
    (the all-providers one, with the provider-only parameters added as optional)."""
    groups: Dict[str, List[Tuple[str, list]]] = {}
    for name, params in sets.items():
        base = re.split(r"\s+-\s+", name)[0].strip()
        groups.setdefault(base, []).append((name, params))
    out: Dict[str, list] = {}
    for members in groups.values():
        members.sort(key=lambda m: (0 if "all providers" in m[0].lower() else 1, m[0]))
        first_name, first = members[0]
        seen = {p["name"].lower() for p in first}
        merged = [dict(p) for p in first]
        for _, params in members[1:]:
            for p in params:
                if p["name"].lower() not in seen:
                    seen.add(p["name"].lower())
                    q = dict(p)
                    q["mandatory"] = False
                    merged.append(q)
        out[first_name] = merged
    return out


def _unique_aliases(aliases: Mapping[str, List[str]], sets: Mapping[str, list]
                    ) -> Dict[str, List[str]]:
    """The docs list some aliases under two parameters (Set-Acl: PSPath under LiteralPath and
    ClearCentralAccessPolicy), which no function can declare.  Such an alias stays only with a
    parameter that is mandatory in some set (LiteralPath); with none or several, with none."""
    mandatory = {p["name"] for ps in sets.values() for p in ps if p.get("mandatory")}
    owners: Dict[str, List[str]] = {}
    for param, names in aliases.items():
        for n in names:
            owners.setdefault(n.lower(), []).append(param)
    out: Dict[str, List[str]] = {}
    for param, names in aliases.items():
        kept = []
        for n in names:
            claim = owners[n.lower()]
            if len(claim) == 1 or [c for c in claim if c in mandatory] == [param]:
                kept.append(n)
        out[param] = kept
    return out


def function_source(name: str, info: Mapping, hyperv_index: Mapping[str, str],
                    model_call: str) -> str:
    sets = info.get("parameter_sets") or {}
    if any(" - " in s for s in sets):
        sets = _merge_provider_sets(sets)
    default = info.get("default_parameter_set")
    if default not in sets:
        # A provider set's name ('pathSet  - Alias provider') names the merged set of its base.
        base = re.split(r"\s+-\s+", default or "")[0].strip()
        default = None
        for s in sets:
            if default is None or (base and re.split(r"\s+-\s+", s)[0].strip() == base):
                default = s
                if base and re.split(r"\s+-\s+", s)[0].strip() == base:
                    break
    aliases = _unique_aliases(info.get("aliases") or {}, sets)
    accepted = info.get("accepted_values") or {}
    should_process = any(p["name"] in ("WhatIf", "Confirm") for ps in sets.values() for p in ps)
    params: Dict[str, dict] = {}
    order: List[str] = []
    for set_name, plist in sets.items():
        position = 0
        for p in plist:
            pname = p["name"]
            if pname in ("WhatIf", "Confirm", "CommonParameters", "InformationAction",
                         "InformationVariable"):
                continue
            key = pname.lower()
            if key not in params:
                params[key] = {"name": pname, "type": p["type"], "sets": []}
                order.append(key)
            attrs = {"set": set_name, "mandatory": bool(p.get("mandatory"))}
            switch = p.get("type", "").lower() in ("switch", "switchparameter")
            if p.get("positional") and not switch:
                attrs["position"] = position
                position += 1
            pipeline = p.get("pipeline") or []
            attrs["by_value"] = "ByValue" in pipeline
            attrs["by_name"] = "ByPropertyName" in pipeline
            params[key]["sets"].append(attrs)
    lines = []
    binding = ["PositionalBinding = $false"]
    if default:
        binding.insert(0, "DefaultParameterSetName = %s" % _ps_quote(default))
    if should_process:
        binding.append("SupportsShouldProcess = $true")
    lines.append("function %s {" % name)
    lines.append("    [CmdletBinding(%s)]" % ", ".join(binding))
    lines.append("    param(")
    blocks = []
    for key in order:
        p = params[key]
        attrs = []
        for a in p["sets"]:
            bits = ["ParameterSetName = %s" % _ps_quote(a["set"])]
            if a["mandatory"]:
                bits.append("Mandatory = $true")
            if "position" in a:
                bits.append("Position = %d" % a["position"])
            if a["by_value"]:
                bits.append("ValueFromPipeline = $true")
            if a["by_name"]:
                bits.append("ValueFromPipelineByPropertyName = $true")
            attrs.append("        [Parameter(%s)]" % ", ".join(bits))
        literal, is_cim = type_literal(p["type"], hyperv_index)
        names = aliases.get(p["name"]) or []
        if names:
            attrs.append("        [Alias(%s)]" % ", ".join(_ps_quote(n) for n in names))
        values = accepted.get(p["name"]) or []
        if values and literal not in ("switch", "bool"):
            attrs.append("        [ValidateSet(%s)]" % ", ".join(_ps_quote(v) for v in values))
        if is_cim:
            attrs.append("        [ValidateScript({ FakeHost\\Test-FakeCimInstance "
                         "-InputObject $_ })]")
        attrs.append("        [%s]$%s" % (literal, p["name"]))
        blocks.append("\n".join(attrs))
    lines.append(",\n".join(blocks))
    lines.append("    )")
    lines.append("    process {")
    lines.append("        %s -Cmdlet $PSCmdlet -Name %s -Bound $PSBoundParameters"
                 % (model_call, _ps_quote(name)))
    lines.append("    }")
    lines.append("}")
    return "\n".join(lines)


#: A host module's first line: the model loaded first.  The harness's runspaces have it
#: already, and asking Get-Module is cheaper than Import-Module's search of the module path for
#: a module that is loaded.
IMPORT_MODEL = "if ($null -eq (Get-Module -Name FakeHost)) { Import-Module -Name FakeHost -Global }"


def module_source(module: str, functions: List[str], sources: List[str]) -> str:
    head = ["# Generated from tests/data/cmdlets.json by tests/engine/fakehost.py: do not edit.",
            "# The fake %s module: Microsoft's parameter sets, the fake host's behaviour." % module,
            IMPORT_MODEL, ""]
    tail = ["", "Export-ModuleMember -Function @(%s)" % ", ".join(_ps_quote(f) for f in functions)]
    return "\n".join(head) + "\n\n".join(sources) + "\n" + "\n".join(tail) + "\n"


def build(target: str) -> None:
    """Write every module into ``target`` (a PSModulePath folder) and compile the types."""
    cmdlets = load_cmdlets()
    types = load_hyperv_types()
    index = _short_index(types)
    os.makedirs(target, exist_ok=True)
    for module in HOST_MODULES:
        names = used_cmdlets(cmdlets, [module])
        sources = [function_source(n, cmdlets[n], index, "FakeHost\\Invoke-FakeCmdlet")
                   for n in names]
        folder = os.path.join(target, module)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, module + ".psm1"), "w", encoding="utf-8") as f:
            f.write(module_source(module, names, sources))
    core = [n for n in CORE_SHADOWS if n in cmdlets]
    sources = [function_source(n, cmdlets[n], index, "FakeHost\\Invoke-FakeCoreCmdlet")
               for n in core]
    folder = os.path.join(target, "FakeHost.Core")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "FakeHost.Core.psm1"), "w", encoding="utf-8") as f:
        # FakeHost imports FakeHost.Core itself
        f.write(module_source("FakeHost.Core", core, sources).replace(IMPORT_MODEL + "\n", ""))
    model = os.path.join(target, "FakeHost")
    if os.path.isdir(model):
        shutil.rmtree(model)
    shutil.copytree(MODEL_DIR, model)
    with open(os.path.join(model, "FakeHost.Types.cs"), "w", encoding="utf-8") as f:
        f.write(types_source(types))


def compile_types(target: str, pwsh: str) -> None:
    """``FakeHost/FakeHost.Types.dll`` from the generated C# (once per build)."""
    model = os.path.join(target, "FakeHost")
    dll = os.path.join(model, "FakeHost.Types.dll")
    src = os.path.join(model, "FakeHost.Types.cs")
    script = ("$ErrorActionPreference = 'Stop'; Add-Type -Path %s -OutputAssembly %s "
              "-OutputType Library" % (_ps_quote(src), _ps_quote(dll)))
    proc = subprocess.run([pwsh, "-NoLogo", "-NoProfile", "-NonInteractive", "-Command", script],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not os.path.isfile(dll):
        raise RuntimeError("compiling the fake host's types failed:\n%s\n%s"
                           % (proc.stdout[-4000:], proc.stderr[-4000:]))


def module_dir(pwsh: Optional[str] = None) -> str:
    """The folder to put first on ``PSModulePath`` (built and compiled when needed)."""
    if pwsh is None:
        from tests.engine.locate import find_pwsh
        pwsh, why = find_pwsh()
        if pwsh is None:
            raise RuntimeError(why)
    root = cache_root()
    target = os.path.join(root, _inputs_digest(), "Modules")
    done = os.path.join(target, ".complete")
    if os.path.isfile(done):
        return target
    staging = tempfile.mkdtemp(prefix="build-", dir=_ensure(root))
    build(staging)
    compile_types(staging, pwsh)
    with open(os.path.join(staging, ".complete"), "w") as f:
        f.write("ok\n")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not os.path.isfile(done):
            raise
    return target


def _ensure(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def engine_env(state_path: Optional[str] = None, pwsh: Optional[str] = None,
               base: Optional[Mapping[str, str]] = None, computer_name: str = "HV01",
               host_id: Optional[str] = None) -> Dict[str, str]:
    """The environment of a pwsh whose fake host keeps its state in ``state_path``.

    ``host_id`` names the fake host: its named mutexes live in a namespace of their own
    (``Global\\fakehost-<id>-...``), so fake hosts running side by side never share a lock."""
    env = dict(os.environ if base is None else base)
    modules = module_dir(pwsh)
    env["PSModulePath"] = modules + os.pathsep + env.get("PSModulePath", "")
    env["COMPUTERNAME"] = computer_name
    # The engine's processes run many short scripts: the JIT's profile-guided recompilation
    # costs them about a tenth of their CPU and gains nothing (behaviour is unchanged).
    env.setdefault("DOTNET_TieredPGO", "0")
    env[HOST_ID_ENV] = host_id or new_host_id()
    if state_path is not None:
        env[STATE_ENV] = state_path
    else:
        env.pop(STATE_ENV, None)
    return env


def new_host_id() -> str:
    return os.urandom(6).hex()


def host_mutex(name: str, host_id: str) -> str:
    """The name a mutex of the templates has on the fake host ``host_id``."""
    local = name[7:] if name.startswith("Global\\") else name
    return "Global\\fakehost-%s-%s" % (host_id, local)
