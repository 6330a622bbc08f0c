"""Structure of the SMB templates (mount/unmount, attach/detach, list), read with tree-sitter.

These tests hold the templates to the catalog in smbvol.scripts (result keys, error kinds), to
the host-side locking rules (slot selection and mount/unmount only under the mutexes), to module
qualification of Hyper-V and SmbShare cmdlets, to "no stray output" in the operation body, and
to the secret rules of the mapping code (no plain password handed to any cmdlet, nothing secret
on a scheduled task's command line).
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import os
import re

import pytest
import tree_sitter
import tree_sitter_powershell

from smbvol import scripts
from smbvol.secret import Credential, Secret

SMB_OPERATIONS = ("mount_share", "unmount_share", "attach_vhd", "attach_vhds", "detach_vhd",
                  "list_attachments")
HERE = os.path.dirname(os.path.abspath(__file__))
CMDLETS_CANDIDATES = (os.path.join(HERE, "data", "cmdlets.json"),
                      "/work/shared/reference/cmdlets.json")

CRED = Credential("DOM\\svc", Secret("S3cret'\u2019\"$(calc)`x"))
SAMPLE_PARAMETERS = {
    "mount_share": {"SharePath": "\\\\srv\\vols\\sub", "DiskName": "a.vhdx",
                    "ShareCredential": CRED},
    "unmount_share": {"SharePath": "\\\\srv\\vols", "Force": True},
    "attach_vhd": {"VMName": "vm 1", "SharePath": "\\\\srv\\vols", "DiskName": "a.vhdx",
                   "ShareCredential": CRED, "DiskBus": "scsi", "MaximumIops": 500,
                   "MinimumIops": 10},
    "attach_vhds": {"VMName": "vm1", "SharePaths": ["\\\\srv\\vols", "\\\\srv2\\x"],
                    "DiskNames": ["a.vhdx", "b.vhd"], "ShareCredentials": [CRED, None],
                    "MaximumIops": [0, 5], "MinimumIops": [0, 0]},
    "detach_vhd": {"VMName": "vm1", "SharePath": "\\\\srv\\vols", "DiskName": "a.vhdx"},
    "list_attachments": {"VMName": ""},
}

#: Commands that may stand alone as a statement: they write nothing to the output.
VOID_COMMANDS = {
    "stop-smbvol", "stop-smbvolfromerror", "exit-smbvollock", "add-smbvolwarning",
    "assert-smbvoldiskname", "assert-smbvoliops", "invoke-smbvolfolderprobe", "undo-smbvolmount",
    "remove-smbvolmappingobject", "remove-smbvolmappingrecord", "set-smbvolmappingrecord",
    "add-type", "start-sleep", "set-strictmode",
    "write-smbvolenvelope", "write-output", "set-smbvoldiskqos", "write-smbvoljobfile",
    "assert-smbvolprivatedirectory", "assert-smbvolvmstatefordisks",
}
#: .NET methods that may stand alone as a statement (they return void).
VOID_METHODS = {
    "add", "addaccessrule", "setaccessruleprotection", "setvalue", "deletevalue", "dispose",
    "clear", "delete", "writealltext", "move", "appendchar", "makereadonly", "getbytes", "copy",
    "zerofreebstr", "connect", "stop", "deletetask", "setaccesscontrol", "sort",
    "releasemutex", "setowner", "write", "flush",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _parser():
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


class Tree:
    def __init__(self, text):
        self.text = text
        self.src = text.encode("utf-8")
        self.tree = _parser().parse(self.src)
        self._all = None
        self._functions = None

    def t(self, node):
        return self.src[node.start_byte:node.end_byte].decode("utf-8")

    def walk(self, node=None):
        if node is None:
            # the whole tree: walked once, kept (the trees are cached per rendering)
            if self._all is None:
                self._all = list(self._walk(self.tree.root_node))
            return iter(self._all)
        return self._walk(node)

    @staticmethod
    def _walk(node):
        stack = [node]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(reversed(n.children))

    def functions(self):
        if self._functions is None:
            out = {}
            for n in self.walk():
                if n.type == "function_statement":
                    name = [c for c in n.named_children if c.type == "function_name"][0]
                    out[self.t(name).lower()] = n
            self._functions = out
        return dict(self._functions)

    def commands(self, node=None):
        for n in self.walk(node):
            if n.type == "command":
                names = [c for c in n.named_children if c.type == "command_name"]
                if names:
                    yield self.t(names[0]), n

    def arg(self, command, name):
        """Text of the argument following -name in a command, or None."""
        elements = [c for c in command.named_children if c.type == "command_elements"]
        if not elements:
            return None
        kids = [c for c in elements[0].named_children if c.type != "command_argument_sep"]
        for i, k in enumerate(kids):
            if k.type == "command_parameter" and self.t(k).lower() == "-" + name.lower():
                if i + 1 < len(kids):
                    return self.t(kids[i + 1])
        return None


def _options(op):
    for values in itertools.product((False, True), repeat=len(op.options)):
        yield dict(zip(op.options, values))


def _renders():
    for name in SMB_OPERATIONS:
        op = scripts.OPERATIONS[name]
        for opts in _options(op):
            yield name, opts


RENDERS = list(_renders())
RENDER_IDS = ["%s-%s" % (n, "+".join(k for k, v in o.items() if v) or "plain")
              for n, o in RENDERS]


@functools.lru_cache(maxsize=None)
def _tree(name, opts_items):
    return Tree(scripts.render(name, **dict(opts_items)).text)


def tree_of(name, opts):
    return _tree(name, tuple(sorted(opts.items())))


def operation_body(tree):
    return tree.functions()["invoke-smbvoloperation"]


@functools.lru_cache(maxsize=1)
def smb_modules():
    for path in CMDLETS_CANDIDATES:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                cmdlets = json.load(f)["cmdlets"]
            return {name.lower(): info["module"] for name, info in cmdlets.items()
                    if info["module"] in ("Hyper-V", "SmbShare")}
    pytest.fail("no cmdlets.json in %s: the module check needs it" % ", ".join(CMDLETS_CANDIDATES))


_VALUE_CONTEXTS = ("array_expression", "sub_expression", "parenthesized_expression",
                   "script_block_expression")


def _statement_pipelines(tree, node):
    """Every pipeline whose output goes to the output of a function or of the script: a
    statement of a function body or of the script, not of a @(...)/$(...)/(...) or of a script
    block passed as an argument."""
    for n in tree.walk(node):
        if n.type != "pipeline" or n.parent is None or n.parent.type != "statement_list":
            continue
        anc = n.parent
        ok = True
        while anc is not None:
            if anc.type in _VALUE_CONTEXTS:
                ok = False
                break
            if anc.type == "script_block":
                ok = anc.parent is None or anc.parent.type in ("function_statement", "program")
                break
            anc = anc.parent
        if ok:
            yield n


def _unwrap(node):
    while node.named_child_count == 1 and node.type not in ("command", "invokation_expression"):
        node = node.named_children[0]
    return node


def _hash_keys(tree, hash_node):
    body = [c for c in hash_node.named_children if c.type == "hash_literal_body"]
    if not body:
        return set()
    keys = set()
    for entry in body[0].named_children:
        if entry.type == "hash_entry":
            key = [c for c in entry.named_children if c.type == "key_expression"][0]
            keys.add(tree.t(key))
    return keys


def _returns(tree, node):
    for n in tree.walk(node):
        if n.type == "flow_control_statement" and tree.t(n).lower().startswith("return"):
            yield n


def _first_hash(tree, node):
    for n in tree.walk(node):
        if n.type == "hash_literal_expression":
            return n
    return None


# --------------------------------------------------------------------------
# rendering and parsing
# --------------------------------------------------------------------------

def _parse_problems(tree):
    return ["%s at %s: %r" % (n.type if not n.is_missing else "MISSING " + n.type,
                              n.start_point, tree.t(n)[:60])
            for n in tree.walk() if n.type == "ERROR" or n.is_missing]


@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_parameter_mode_parses_cleanly(name, opts):
    tree = tree_of(name, opts)
    assert _parse_problems(tree) == []
    assert "invoke-smbvoloperation" in tree.functions()


@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_standalone_mode_parses_cleanly_and_holds_no_secret(name, opts):
    text = scripts.render_standalone(name, SAMPLE_PARAMETERS[name], **opts)
    assert _parse_problems(Tree(text)) == []
    assert CRED.password.reveal() not in text
    assert "S3cret" not in text


def test_option_chooses_the_task_code():
    for name in ("mount_share", "attach_vhd", "attach_vhds"):
        plain = scripts.render(name, mapping_via_task=False).text
        task = scripts.render(name, mapping_via_task=True).text
        assert "Schedule.Service" not in plain
        assert "Schedule.Service" in task
        assert "New-SmbvolGlobalMappingViaTask -Share" in task
        assert "New-SmbvolGlobalMappingViaTask -Share" not in plain


# --------------------------------------------------------------------------
# the catalog: result keys and error kinds
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_every_result_hashtable_has_exactly_the_catalog_fields(name, opts):
    tree = tree_of(name, opts)
    body = operation_body(tree)
    returns = list(_returns(tree, body))
    assert returns, "no return in the body of %s" % name
    expected = set(scripts.OPERATIONS[name].result_fields)
    for ret in returns:
        table = _first_hash(tree, ret)
        assert table is not None, "return without a hashtable: %s" % tree.t(ret)[:80]
        assert tree.t(ret).split(None, 1)[1].lstrip().startswith("@{"), tree.t(ret)[:80]
        assert _hash_keys(tree, table) == expected, (name, tree.t(ret)[:200])


@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_stop_smbvol_kinds_are_the_catalog_kinds(name, opts):
    tree = tree_of(name, opts)
    kinds = set(scripts.OPERATIONS[name].error_kinds)
    used = set()
    # host_busy and invalid_parameters (a negative wait) of the envelope's lock helper count
    # only when the body takes a lock
    locks = any(cmd.lower() == "enter-smbvollock"
                for cmd, _ in tree.commands(operation_body(tree)))
    lock_helper = tree.functions()["enter-smbvollock"]
    for cmd, node in tree.commands():
        inside_helper = lock_helper.start_byte <= node.start_byte < lock_helper.end_byte
        if inside_helper and not locks:
            continue
        if cmd.lower() == "stop-smbvol":
            arg = tree.arg(node, "Kind")
            assert arg is not None, tree.t(node)[:80]
            if arg.startswith("'"):
                used.add(arg.strip("'"))
            else:
                # a computed kind must have been filtered through $SmbvolErrorKinds
                assert arg == "$kind", tree.t(node)[:120]
    if locks:
        assert {"host_busy", "invalid_parameters"} <= used
    assert used <= kinds, sorted(used - kinds)
    assert used, "no Stop-Smbvol at all"


@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_declared_error_kinds_equal_the_catalog(name, opts):
    tree = tree_of(name, opts)
    match = re.search(r"^\$SmbvolErrorKinds = @\(([^)]*)\)$", tree.text, re.M)
    assert match, "template %s does not declare $SmbvolErrorKinds" % name
    declared = re.findall(r"'([a-z_]+)'", match.group(1))
    assert len(declared) == len(set(declared))
    assert set(declared) == set(scripts.OPERATIONS[name].error_kinds)


def test_computed_kinds_are_filtered_through_the_declared_kinds():
    tree = tree_of("attach_vhd", {"mapping_via_task": True})
    # every place of the templates (not the envelope's last-resort classification) that turns
    # an error code into a kind checks it against $SmbvolErrorKinds
    text = "\n".join(tree.t(fn) for name, fn in tree.functions().items()
                     if name != "get-smbvolerror")
    computed = text.count("$kind = Get-SmbvolErrorKind")
    assert computed >= 2
    assert text.count("if ($SmbvolErrorKinds -notcontains $kind)") == computed


# --------------------------------------------------------------------------
# module qualification and stray output
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_hyperv_and_smbshare_cmdlets_are_module_qualified(name, opts):
    modules = smb_modules()
    tree = tree_of(name, opts)
    seen = 0
    for cmd, node in tree.commands():
        if "\\" in cmd:
            module, _, bare = cmd.partition("\\")
            if bare.lower() in modules:
                assert modules[bare.lower()] == module, cmd
                seen += 1
        else:
            assert cmd.lower() not in modules, "unqualified %s: %s" % (cmd, tree.t(node)[:80])
    assert seen > 0


@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_no_stray_output_statements(name, opts):
    tree = tree_of(name, opts)
    functions = tree.functions()
    for fn_name in VOID_COMMANDS & set(functions):
        for ret in _returns(tree, functions[fn_name]):
            assert tree.t(ret).strip().lower() == "return", (fn_name, tree.t(ret))
    problems = []
    for pipeline in _statement_pipelines(tree, tree.tree.root_node):
        first = pipeline.named_children[0]
        if first.type == "assignment_expression":
            continue
        if first.type == "pipeline_chain":
            commands = [c for c in first.named_children if c.type == "command"]
            names = [tree.t([k for k in c.named_children if k.type == "command_name"][0]).lower()
                     for c in commands if any(k.type == "command_name"
                                              for k in c.named_children)]
            if names and names[-1] == "out-null":
                continue
            if len(commands) == 1 and len(names) == 1 and names[0] in VOID_COMMANDS:
                continue
            if not commands:
                inner = _unwrap(first)
                if inner.type == "invokation_expression":
                    member = [c for c in inner.named_children if c.type == "member_name"]
                    if member and tree.t(member[0]).lower() in VOID_METHODS:
                        continue
        problems.append("%s: %s" % (pipeline.start_point, tree.t(pipeline)[:100]))
    assert problems == []


# --------------------------------------------------------------------------
# host-side locking
# --------------------------------------------------------------------------

def _lock_holder(tree, enter):
    """Where an Enter-SmbvolLock result is kept: `$x = Enter...` or `$x.Add((Enter...))`."""
    anc = enter.parent
    while anc is not None:
        if anc.type == "assignment_expression":
            return tree.t(anc.named_children[0]).strip()
        if anc.type == "invokation_expression":
            return tree.t(anc.named_children[0]).strip()
        anc = anc.parent
    return None


def _lock_protected(tree, body, target):
    """For each call of `target` in the body: the keys of the locks taken before it and released
    (Exit-SmbvolLock on the same variable) in the finally of a try that encloses it."""
    enters = [(node, tree.arg(node, "Key"), _lock_holder(tree, node))
              for cmd, node in tree.commands(body) if cmd.lower() == "enter-smbvollock"]
    results = []
    for cmd, node in tree.commands(body):
        if cmd.lower() != target.lower():
            continue
        held = []
        for enter, key, holder in enters:
            if enter.start_byte > node.start_byte or holder is None:
                continue
            anc = node.parent
            while anc is not None and anc != body:
                if anc.type == "try_statement":
                    fin = [c for c in anc.named_children if c.type == "finally_clause"]
                    exits = [tree.arg(n, "Mutex") or "" for c, n in tree.commands(fin[0])
                             if c.lower() == "exit-smbvollock"] if fin else []
                    if any(e == holder or e.startswith(holder + "[") for e in exits):
                        held.append(key)
                        break
                anc = anc.parent
        results.append(held)
    return results


LOCKED_CALLS = [
    ("mount_share", "Mount-SmbvolShare", {"share"}),
    ("unmount_share", "Get-SmbvolShareHolders", {"share"}),
    ("unmount_share", "Remove-SmbvolMappingObject", {"share"}),
    ("attach_vhd", "Mount-SmbvolShare", {"vm", "share"}),
    ("attach_vhd", "Add-SmbvolAttachment", {"vm", "share"}),
    ("attach_vhds", "Mount-SmbvolShare", {"vm", "share"}),
    ("attach_vhds", "Add-SmbvolAttachment", {"vm", "share"}),
    ("detach_vhd", "Hyper-V\\Remove-VMHardDiskDrive", {"vm"}),
]


def _kind_of_key(key):
    if key is None:
        return None
    if "Get-SmbvolVMLockKey" in key:
        return "vm"
    if key in ("$share.key", "$key"):
        return "share"
    return key


@pytest.mark.parametrize("name,target,wanted", LOCKED_CALLS,
                         ids=["%s-%s" % (n, t.split("\\")[-1]) for n, t, _ in LOCKED_CALLS])
def test_mutating_calls_run_under_the_host_mutexes(name, target, wanted):
    op = scripts.OPERATIONS[name]
    for opts in _options(op):
        tree = tree_of(name, opts)
        protected = _lock_protected(tree, operation_body(tree), target)
        assert protected, "%s is not called in %s" % (target, name)
        for held in protected:
            assert {_kind_of_key(k) for k in held} >= wanted, (name, target, held)


def test_lock_keys_are_share_root_and_vm_id():
    text = scripts.render("attach_vhd").text
    tree = Tree(text)
    fns = tree.functions()
    split = tree.t(fns["split-smbvolsharepath"])
    assert "key = ('share:' + $root).ToLowerInvariant()" in split
    assert "$root = '\\\\' + $match.Groups[1].Value + '\\' + $match.Groups[2].Value" in split
    vm_key = tree.t(fns["get-smbvolvmlockkey"])
    assert "('vm:' + [string]$VM.Id).ToLowerInvariant()" in vm_key


def test_slot_selection_only_inside_the_locked_attachment():
    for name in ("attach_vhd", "attach_vhds"):
        tree = tree_of(name, {})
        fns = tree.functions()
        callers = set()
        for fn_name, fn in fns.items():
            for cmd, _ in tree.commands(fn):
                if cmd.lower() in ("find-smbvolfreeslot", "hyper-v\\add-vmharddiskdrive"):
                    callers.add(fn_name)
        assert callers == {"add-smbvolattachment"}, callers
        # and the attachment itself is only called by the locked body
        callers = {fn_name for fn_name, fn in fns.items()
                   for cmd, _ in tree.commands(fn) if cmd.lower() == "add-smbvolattachment"}
        assert callers == {"invoke-smbvoloperation"}


def test_lock_order_vm_before_shares():
    for name in ("attach_vhd", "attach_vhds"):
        tree = tree_of(name, {})
        keys = [tree.arg(node, "Key") for cmd, node in tree.commands(operation_body(tree))
                if cmd.lower() == "enter-smbvollock"]
        assert "Get-SmbvolVMLockKey" in keys[0], keys
        assert all(_kind_of_key(k) == "share" for k in keys[1:]), keys


def test_attach_vhds_takes_share_locks_in_sorted_order():
    body = tree_of("attach_vhds", {}).t(operation_body(tree_of("attach_vhds", {})))
    sort_at = body.index("$keys.Sort([System.StringComparer]::Ordinal)")
    assert sort_at < body.index("foreach ($key in $keys)")


# --------------------------------------------------------------------------
# secrets in the mapping code
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_no_plain_password_reaches_a_cmdlet(name, opts):
    tree = tree_of(name, opts)
    text = tree.text
    assert "GetNetworkCredential" not in text
    assert "-AsPlainText" not in text
    for cmd, node in tree.commands():
        command_text = tree.t(node)
        assert "-Password" not in command_text, command_text[:120]
        if cmd.lower() == "smbshare\\new-smbmapping":
            assert "-UserName" not in command_text


def test_task_command_line_and_definition_carry_no_secret():
    tree = tree_of("mount_share", {"mapping_via_task": True})
    fns = tree.functions()
    fn = tree.t(fns["new-smbvolglobalmappingviatask"])
    # the command line is the fixed runner, encoded: no script file, no value, no -File
    args = re.search(r"^\s*\$action\.Arguments = (.*)$", fn, re.M).group(1)
    assert set(re.findall(r"\$\w+", args)) == {"$encodedRunner"}
    assert "-EncodedCommand" in args and "-File" not in fn and "ExecutionPolicy" not in fn
    assert "$runner = (Get-Command -Name 'Invoke-SmbvolMappingTaskScript' -CommandType " \
           "Function).ScriptBlock.ToString()" in fn
    assert "WriteAllText($scriptPath" not in fn and ".ps1" not in fn
    register = re.search(r"RegisterTaskDefinition\(([^)]*)\)", fn).group(1)
    assert [a.strip() for a in register.split(",")] == [
        "$taskName", "$definition", "6", "'SYSTEM'", "$null", "5"]
    # the runner takes no input: no param block, no $args, nothing from the environment
    # (its own helper functions take their arguments from it)
    runner = tree.t(fns["invoke-smbvolmappingtaskscript"])
    own = re.sub(r"(?ms)^(\s*)function [\w-]+ \{\n.*?^\1\}\n", "", runner)
    assert own != runner and not re.search(r"(?m)^\s*function ", own.split("{", 1)[1])
    assert "param(" not in own and "$args" not in runner and "$env:" not in runner
    # the job file holds a DPAPI blob, never the credential object, its password or the entropy
    job = re.search(r"\$job = @\{(.*?)\n\s*\}", fn, re.S).group(1)
    assert "Protect-SmbvolPassword" in job
    assert ".Password" not in job
    assert sorted(re.findall(r"^\s*(\w+) =", job, re.M)) == ["blob", "remote_path", "user_name"]
    # ... created new (never an existing file) with an explicit owner and protected DACL
    writer = tree.t(fns["write-smbvoljobfile"])
    assert "[System.IO.FileMode]::CreateNew" in writer
    assert "New-SmbvolPrivateSecurity -Directory $false -Owner $true" in writer
    security = tree.t(fns["new-smbvolprivatesecurity"])
    assert "SetAccessRuleProtection($true, $false)" in security
    assert "@('S-1-5-18', 'S-1-5-32-544')" in security
    # the directory is refused when it is a reparse point or owned by anyone else
    check = tree.t(fns["assert-smbvolprivatedirectory"])
    assert "ReparsePoint" in check and "GetOwner(" in check
    assert check.index("ReparsePoint") < check.index("Set-Acl -LiteralPath")
    assert check.index("GetOwner(") < check.index("-Directory $true -Owner $false")
    # the runner checks the same before it reads anything
    assert runner.index("ReparsePoint") < runner.index("ReadAllText")
    assert runner.index("GetOwner(") < runner.index("ReadAllText")
    # task removed and files deleted in the finally block
    finally_part = fn[fn.rindex("} finally {"):]
    assert "$folder.DeleteTask($taskName, 0)" in finally_part
    assert "[System.IO.File]::Delete($leftover)" in finally_part
    # bounded wait
    assert "AddSeconds(120)" in fn and "Start-Sleep -Milliseconds" in fn


@pytest.mark.parametrize("task", [False, True])
def test_credentials_never_make_a_mapping_only_this_logon_session_has(task):
    """Without New-SmbGlobalMapping (Windows Server 2016) no user mapping is made: it would
    vanish with the remoting session and VMMS would not see it."""
    tree = tree_of("attach_vhd", {"mapping_via_task": task})
    fn = tree.t(tree.functions()["new-smbvolmapping"])
    assert "NetApi" not in fn and "New-SmbMapping" not in fn
    guard = fn.index("if ($null -eq (Get-Command -Name 'New-SmbGlobalMapping'")
    refusal = fn.index("Stop-Smbvol -Kind 'invalid_parameters'", guard)
    create = fn.index("New-SmbvolGlobalMappingViaTask" if task else "SmbShare\\New-SmbGlobalMapping")  # noqa: E501
    assert guard < refusal < create
    assert "return 'global'" in fn and "'user'" not in fn


def test_global_mapping_is_guarded_and_recorded():
    tree = tree_of("mount_share", {})
    fn = tree.t(tree.functions()["new-smbvolmapping"])
    guard = "if ($null -eq (Get-Command -Name 'New-SmbGlobalMapping' " \
            "-ErrorAction SilentlyContinue)) {"
    assert fn.index(guard) < fn.index("SmbShare\\New-SmbGlobalMapping -RemotePath")
    mount = tree.t(tree.functions()["mount-smbvolshare"])
    assert mount.index("New-SmbvolMapping -Share") < mount.index(
        "Set-SmbvolMappingRecord -Root $Share.root -Kind $kind")


def test_unmount_removes_only_owned_mappings_unless_forced():
    tree = tree_of("unmount_share", {})
    body = tree.t(operation_body(tree))
    refuse = body.index("if (-not $owned -and -not $Force) {")
    in_use = body.index("if ($users.Count -gt 0) {")
    remove = body.index("Remove-SmbvolMappingObject -Mapping $mapping")
    assert refuse < in_use < remove
    assert "Stop-Smbvol -Kind 'disk_in_use'" in body[in_use:remove]


# --------------------------------------------------------------------------
# SmbShare error handling, the scheduled-task runner, VM state, share users
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,opts", RENDERS, ids=RENDER_IDS)
def test_every_smbshare_call_stops_on_error(name, opts):
    # SmbShare cmdlets are CDXML functions: they do not see the script's
    # $ErrorActionPreference (PowerShell issue #4568), so without -ErrorAction Stop a failure
    # under a caller's 'Continue' (render_standalone) would be reported as success.
    tree = tree_of(name, opts)
    calls = [(cmd, node) for cmd, node in tree.commands() if cmd.lower().startswith("smbshare\\")]
    for _cmd, node in calls:
        assert tree.arg(node, "ErrorAction") == "Stop", tree.t(node)[:120]
    if name != "list_attachments":
        assert calls, name


def _runner_command_text(tree):
    """What the caller puts on the command line: the runner's body with every line trimmed and
    blank lines and comment lines left out (as the template's -split/Trim/Where-Object does)."""
    fn = tree.functions()["invoke-smbvolmappingtaskscript"]
    body = [c for c in fn.named_children if c.type == "script_block"][0]
    lines = [line.strip() for line in re.split(r"\r?\n", tree.t(body))]
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def test_encoded_runner_is_stripped_and_stays_under_8000_characters():
    tree = tree_of("mount_share", {"mapping_via_task": True})
    fn = tree.t(tree.functions()["new-smbvolglobalmappingviatask"])
    strip = ("$runner = (@($runner -split \"`r?`n\" | ForEach-Object { $_.Trim() } | "
             "Where-Object { $_ -ne '' -and -not $_.StartsWith('#') }) -join \"`n\")")
    assert strip in fn
    assert fn.index(strip) < fn.index("$encodedRunner = ")
    runner = tree.t(tree.functions()["invoke-smbvolmappingtaskscript"])
    # stripping line by line is safe: no multi-line string, no comment after code
    assert "@'" not in runner and '@"' not in runner and "<#" not in runner
    for line in runner.splitlines()[1:]:
        assert "#" not in line or line.strip().startswith("#"), line
    encoded = base64.b64encode(_runner_command_text(tree).encode("utf-16-le"))
    assert len(encoded) < 8000, len(encoded)


def test_task_runner_runs_only_its_own_job_and_is_stopped_only_when_it_overran():
    tree = tree_of("mount_share", {"mapping_via_task": True})
    fns = tree.functions()
    runner = tree.t(fns["invoke-smbvolmappingtaskscript"])
    # the job id comes from the task's working directory, never from a listing of the folder
    assert "GetFiles(" not in runner and "*.job" not in runner
    assert "[System.Environment]::CurrentDirectory" in runner
    assert runner.index("CurrentDirectory") < runner.index("ReadAllText")
    fn = tree.t(fns["new-smbvolglobalmappingviatask"])
    assert "$action.WorkingDirectory = $base" in fn
    assert "Assert-SmbvolPrivateDirectory -Path $base" in fn
    # after the result: a bounded wait for the runner to leave the Running state (4)
    result_wait = fn.index("while (-not [System.IO.File]::Exists($resultPath))")
    exit_wait = fn.index("while ([int]$task.State -eq 4 -and [System.DateTime]::UtcNow -lt "
                         "$exitDeadline)")
    finished = fn.index("$finished = [int]$task.State -ne 4")
    assert result_wait < exit_wait < finished
    # Stop only when it did not finish; the task is deleted after that
    final = fn[fn.rindex("} finally {"):]
    guard = final.index("if (-not $finished) {")
    assert guard < final.index("$task.Stop(0)") < final.index("$folder.DeleteTask($taskName, 0)")
    assert fn.count(".Stop(0)") == 1


def test_lock_wait_is_checked_before_waiting():
    tree = tree_of("unmount_share", {})
    lock = tree.t(tree.functions()["enter-smbvollock"])
    check = lock.index("if ($TimeoutSeconds -lt 0) {")
    assert check < lock.index("Stop-Smbvol -Kind 'invalid_parameters'") < lock.index("WaitOne(")


def test_every_template_with_a_lock_timeout_reports_invalid_parameters():
    for op in scripts.OPERATIONS.values():
        if any(p.name == "LockTimeoutSeconds" for p in op.params):
            assert "invalid_parameters" in op.error_kinds, op.name


@pytest.mark.parametrize("name", ["attach_vhd", "attach_vhds", "detach_vhd"])
def test_vm_state_is_checked_before_any_change(name):
    tree = tree_of(name, {})
    body = tree.t(operation_body(tree))
    check = body.index("Assert-SmbvolVMStateForDisks -VM $vm -Action")
    assert body.index("$vm = Hyper-V\\Get-VM -Id $vm.Id") < check
    if name == "detach_vhd":
        assert check < body.index("Hyper-V\\Remove-VMHardDiskDrive")
    else:
        assert check < body.index("Mount-SmbvolShare")
    helper = tree.t(tree.functions()["assert-smbvolvmstatefordisks"])
    assert "@('Off', 'Running') -notcontains $state" in helper
    assert "Stop-Smbvol -Kind 'invalid_state'" in helper


@pytest.mark.parametrize("name", ["attach_vhd", "attach_vhds", "detach_vhd"])
def test_windows_error_5023_is_invalid_state(name):
    tree = tree_of(name, {})
    hyperv_calls = 0
    for cmd, node in tree.commands():
        if cmd.lower() != "stop-smbvolfromerror":
            continue
        message = tree.arg(node, "Message") or ""
        if "VM" in message or "QoS" in message:
            hyperv_calls += 1
            assert "'5023' = 'invalid_state'" in (tree.arg(node, "Extra") or ""), \
                tree.t(node)[:160]
    assert hyperv_calls >= 1


def test_unmount_counts_every_way_a_vm_uses_the_share():
    tree = tree_of("unmount_share", {})
    holders = tree.t(tree.functions()["get-smbvolshareholders"])
    inventory = tree.t(tree.functions()["get-smbvolvminventory"])
    for needle in ("Hyper-V\\Get-VMHardDiskDrive -VM $VM", "Hyper-V\\Get-VMDvdDrive -VM $VM",
                   "Hyper-V\\Get-VMSnapshot -VM $VM",
                   "Hyper-V\\Get-VMHardDiskDrive -VMSnapshot $checkpoint",
                   "Hyper-V\\Get-VMDvdDrive -VMSnapshot $checkpoint"):
        assert needle in inventory, needle
    for needle in ("$inventory = Get-SmbvolVMInventory -VM $vm", "@($inventory.disks)",
                   "Resolve-SmbvolImagePath -Path $path", "@($inventory.dvds)",
                   "$vm.ConfigurationLocation",
                   "$vm.SnapshotFileLocation", "$vm.SmartPagingFilePath",
                   "Test-SmbvolPathAtOrUnder -Path $folder"):
        assert needle in holders, needle
    body = tree.t(operation_body(tree))
    assert "$users = @(Get-SmbvolShareHolders -Prefixes $prefixes)" in body


def test_vm_not_found_message_names_the_rights_needed():
    for name in ("attach_vhd", "list_attachments"):
        tree = tree_of(name, {})
        message = tree.t(tree.functions()["get-smbvolvmnotfoundmessage"])
        assert "Hyper-V Administrators" in message
        for cmd, node in tree.commands():
            if cmd.lower() == "stop-smbvol" and tree.arg(node, "Kind") == "'vm_not_found'":
                assert tree.arg(node, "Message").startswith("(Get-SmbvolVMNotFoundMessage")
