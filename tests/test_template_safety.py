"""Structural checks of the host-side safety logic of the rendered PowerShell scripts.

There is no PowerShell here, so the rendered scripts are read with the tree-sitter grammar
(``tests/pscheck.py``) and their *meaning* is pinned, not their text: which branch a destructive
call sits in, which guard statements run before it, where the values it acts on come from, and
which ``catch``/``finally`` undoes what was made.  Every check names the rule it enforces, so a
change that keeps the text of a template but drops a safety rule (an empty in-use list, a missing
rollback, a lock that is never waited for) fails here.

Vocabulary of the helpers:

* a *fact* is what is known to hold at a statement: ``("empty", "users")`` (``$users.Count`` is
  0), ``("is", text)`` / ``("not", text)`` (a condition is true / false);
* a statement is *guarded* by an ``if (c) { ...; exit }`` without ``else`` that comes before it in
  one of its enclosing statement lists (``exit`` being ``return``, ``throw``, ``continue``,
  ``break`` or ``Stop-Smbvol -Kind k``): there ``c`` is false; inside the body of ``if (c)`` ``c``
  is true, inside its ``else`` ``c`` is false.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import os
import re
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

from tests import pscheck

scripts = importlib.import_module("smbvol.scripts")

Fact = Tuple[str, str]


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

def _renderings(name: str) -> List[Tuple[str, str]]:
    """(option id, parameter-mode text) of ``name`` under every option combination."""
    op = scripts.OPERATIONS[name]
    out = []
    for values in itertools.product((False, True), repeat=len(op.options)):
        opts = dict(zip(op.options, values))
        oid = ",".join("%s=%d" % (k, v) for k, v in opts.items()) or "no-options"
        out.append((oid, scripts.render(name, **opts).text))
    return out


def _cases(*names: str):
    return [pytest.param(name, oid, text, id="%s-%s" % (name, oid))
            for name in names for oid, text in _renderings(name)]


# --------------------------------------------------------------------------
# Tree helpers
# --------------------------------------------------------------------------

def _t(node) -> str:
    return node.text.decode("utf-8")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _key(node) -> Tuple[int, int, str]:
    return node.start_byte, node.end_byte, node.type


def _walk(node) -> Iterator:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _unwrap(node):
    """Through grouping, ``@(...)`` and ``$(...)`` holding one statement, to the expression."""
    while True:
        node = pscheck._strip(node)
        if node.type == "left_assignment_expression" and len(node.named_children) == 1:
            node = node.named_children[0]
            continue
        if node.type in ("array_expression", "sub_expression", "parenthesized_expression"):
            lists = [c for c in node.named_children if c.type == "statement_list"]
            inner = [c for c in lists[0].named_children if c.type != "comment"] if lists else []
            if len(inner) == 1:
                node = inner[0]
                continue
            if node.type == "parenthesized_expression":
                named = [c for c in node.named_children if c.type != "comment"]
                if len(named) == 1:
                    node = named[0]
                    continue
        return node


def _line(node) -> int:
    return node.start_point[0] + 1


class Script:
    """A rendered script: its tree and its functions by lower-case name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tree = pscheck.parse(text)
        assert not self.tree.root_node.has_error, pscheck.parse_errors(text)[:3]
        self.functions: Dict[str, object] = {}
        for node in pscheck._source(text).nodes("function_statement"):  # in text order
            name = next(c for c in node.named_children if c.type == "function_name")
            self.functions[_t(name).lower()] = node

    def fn(self, name: str):
        node = self.functions.get(name.lower())
        assert node is not None, "the script defines no function %s" % name
        return node

    def body(self):
        return self.fn("Invoke-SmbvolOperation")

    def callers_of(self, bases: Set[str]) -> Set[str]:
        """The lower-case base names in ``bases`` and every script function reaching one."""
        found = set(bases)
        calls = {name: {_base(c) for c in _commands(node)}
                 for name, node in self.functions.items()}
        changed = True
        while changed:
            changed = False
            for name, called in calls.items():
                if name not in found and called & found:
                    found.add(name)
                    changed = True
        return found


def _commands(node) -> List:
    return [n for n in _walk(node) if n.type == "command"]


def _name(cmd) -> str:
    for child in cmd.named_children:
        if child.type == "command_name":
            return _t(child)
        if child.type == "command_name_expr":
            return _t(child)
    return ""


def _base(cmd) -> str:
    return _name(cmd).rpartition("\\")[2].lower()


def _args(cmd) -> List[Tuple[Optional[str], List]]:
    """(lower-case parameter name or None, [argument nodes]) in order."""
    out: List[Tuple[Optional[str], List]] = []
    elements = next((c for c in cmd.named_children if c.type == "command_elements"), None)
    if elements is None:
        return out
    current = None
    for child in elements.named_children:
        if child.type == "command_argument_sep" or child.type == "comment":
            continue
        if child.type == "command_parameter":
            current = (_t(child).lstrip("-").rstrip(":").lower(), [])
            out.append(current)
        elif current is not None and not current[1]:
            current[1].append(child)
        else:
            current = None
            out.append((None, [child]))
    return out


def _arg(cmd, pname: str):
    for name, values in _args(cmd):
        if name == pname.lower() and values:
            return values[0]
    return None


def _var(node) -> Optional[str]:
    """The lower-case name of a plain variable expression, else None."""
    node = _unwrap(node)
    if node.type == "variable":
        return _t(node).lstrip("$").lower()
    return None


def _piped_into(cmd) -> bool:
    chain = cmd.parent
    return chain is not None and chain.named_children and _key(chain.named_children[0]) != _key(cmd)


def _assignments(scope, var: str) -> List:
    """The right-hand sides of every ``$var = ...`` under ``scope``."""
    out = []
    for node in _walk(scope):
        if node.type == "assignment_expression":
            left = node.named_children[0]
            if _var(left) == var:
                out.append(node.named_children[-1])
    return out


def _foreach_parts(stmt) -> Tuple[Optional[str], object, object]:
    """(loop variable, iterable node, body block) of a foreach_statement."""
    var = None
    iterable = None
    body = None
    for child in stmt.named_children:
        if child.type == "variable" and var is None:
            var = _t(child).lstrip("$").lower()
        elif child.type == "statement_block":
            body = child
        elif child.type not in ("comment",) and iterable is None and var is not None:
            iterable = child
    return var, iterable, body


def _loop_of(node, var: str, stop):
    """The innermost foreach enclosing ``node`` whose loop variable is ``$var`` (or None)."""
    for parent in _ancestors(node, stop):
        if parent.type == "foreach_statement" and _foreach_parts(parent)[0] == var:
            return parent
    return None


def _enclosing(node, type_: str, stop=None):
    parent = node.parent
    while parent is not None and (stop is None or _key(parent) != _key(stop)):
        if parent.type == type_:
            return parent
        parent = parent.parent
    return None


def _method_calls(scope, method: str) -> List[Tuple[str, object]]:
    """(receiver text lower-case, call node) of every ``receiver.method(...)`` under scope."""
    out = []
    for node in _walk(scope):
        if node.type == "invokation_expression":
            member = next((c for c in node.named_children if c.type == "member_name"), None)
            if member is not None and _t(member).lower() == method.lower():
                out.append((_norm(_t(node.named_children[0])), node))
    return out


def _call_argument(call):
    """The first argument of a method call node (or None)."""
    arglist = next((c for c in call.named_children if c.type == "argument_list"), None)
    if arglist is None:
        return None
    for node in _walk(arglist):
        if node.type == "argument_expression":
            return node
    return None


def _statements(block) -> List:
    lst = next((c for c in block.named_children if c.type == "statement_list"), None)
    if lst is None and block.type == "script_block":
        body = next((c for c in block.named_children if c.type == "script_block_body"), None)
        if body is not None:
            lst = next((c for c in body.named_children if c.type == "statement_list"), None)
    return [] if lst is None else [c for c in lst.named_children if c.type != "comment"]


# --------------------------------------------------------------------------
# Conditions, exits, guards
# --------------------------------------------------------------------------

_EMPTY_WHEN_FALSE = {("-gt", "0"), ("-ne", "0"), ("-ge", "1")}
_EMPTY_WHEN_TRUE = {("-eq", "0"), ("-lt", "1"), ("-le", "0")}


def facts(cond, want: bool) -> Set[Fact]:
    """What is known when ``cond`` evaluates to ``want``."""
    n = pscheck._strip(cond)
    if n.type == "logical_expression" and len(n.children) == 3:
        op = _t(n.children[1]).lower()
        left, right = n.children[0], n.children[2]
        if op == "-and":
            return facts(left, True) | facts(right, True) if want else set()
        if op == "-or":
            return set() if want else facts(left, False) | facts(right, False)
        return set()
    if n.type == "expression_with_unary_operator" and _t(n.children[0]).lower() in ("-not", "!"):
        return facts(n.children[1], not want)
    if n.type == "comparison_expression" and len(n.children) == 3:
        lhs = _norm(_t(n.children[0]))
        op = _norm(_t(n.children[1]))
        rhs = _norm(_t(n.children[2]))
        m = re.fullmatch(r"@?\(?\$(\w+)\)?\.count", lhs)
        if m and ((want and (op, rhs) in _EMPTY_WHEN_TRUE)
                  or (not want and (op, rhs) in _EMPTY_WHEN_FALSE)):
            return {("empty", m.group(1))}
    return {("is" if want else "not", _norm(_t(n)))}


def exit_kind(block) -> Optional[str]:
    """How a block always ends: return/throw/break/continue/exit, ``stop:<kind>``, or None."""
    statements = _statements(block)
    if not statements:
        return None
    last = statements[-1]
    if last.type == "flow_control_statement":
        return last.children[0].type
    cmd = pscheck._strip(last)
    if cmd.type == "command" and _base(cmd) == "stop-smbvol":
        kind = _arg(cmd, "kind")
        return "stop:" + (_t(kind).strip("'\"").lower() if kind is not None else "?")
    return None


def _if_parts(stmt) -> Tuple[object, object, Optional[object], bool]:
    """(condition, then block, else block, has elseif) of an if_statement."""
    cond = stmt.child_by_field_name("condition")
    blocks = [c for c in stmt.named_children if c.type == "statement_block"]
    els = next((c for c in stmt.named_children if c.type == "else_clause"), None)
    elseif = any(c.type == "elseif_clauses" for c in stmt.named_children)
    if cond is None:
        cond = next(c for c in stmt.named_children if c.type == "pipeline")
    else_block = None
    if els is not None:
        else_block = next(c for c in els.named_children if c.type == "statement_block")
    return cond, blocks[0], else_block, elseif


def dominating(node, stop) -> Iterator[Tuple[object, bool, Optional[str], object]]:
    """(condition, value it has at ``node``, exit kind of a guard or None, the if statement).

    Guards: earlier ``if`` statements (no else) of an enclosing statement list whose body
    always exits.  Branches: the ``if`` whose then/else block encloses ``node``.
    """
    child = node
    parent = node.parent
    while parent is not None and _key(parent) != _key(stop):
        if parent.type == "statement_list":
            for sib in parent.named_children:
                if _key(sib) == _key(child):
                    break
                if sib.type == "if_statement":
                    cond, then, els, elseif = _if_parts(sib)
                    kind = exit_kind(then)
                    if els is None and not elseif and kind is not None:
                        yield cond, False, kind, sib
        if parent.type == "statement_block":
            owner = parent.parent
            if owner is not None and owner.type == "if_statement":
                cond, then, els, elseif = _if_parts(owner)
                if _key(then) == _key(parent):
                    yield cond, True, None, owner
            elif owner is not None and owner.type == "else_clause":
                cond, then, els, elseif = _if_parts(owner.parent)
                if not elseif:
                    yield cond, False, None, owner.parent
        child = parent
        parent = parent.parent


def facts_at(node, stop, exits: Optional[Set[str]] = None) -> Set[Fact]:
    """Facts holding at ``node``: from branches, and from guards exiting by one of ``exits``."""
    out: Set[Fact] = set()
    for cond, value, kind, _stmt in dominating(node, stop):
        if kind is None or exits is None or kind in exits:
            out |= facts(cond, value)
    return out


# --------------------------------------------------------------------------
# Shared rules
# --------------------------------------------------------------------------

MAPPING_REMOVERS = {"remove-smbglobalmapping", "remove-smbmapping"}


def inventory_problems(script: Script, scope, var: str) -> List[str]:
    """Why ``$var`` (in ``scope``) is not the VMs using the share by the full inventory."""
    problems = []
    rhs = _assignments(scope, var)
    if not rhs:
        return ["$%s is never assigned" % var]
    for value in rhs:
        cmd = _unwrap(value)
        if cmd.type != "command" or _piped_into(cmd):
            problems.append("$%s = %s is not an in-use inventory call" % (var, _t(value)))
            continue
        base = _base(cmd)
        given = {name for name, _ in _args(cmd)}
        if base == "get-smbvolshareholders":
            prefixes = _arg(cmd, "prefixes")
            pvar = _var(prefixes) if prefixes is not None else None
            sources = _assignments(scope, pvar) if pvar else []
            if not sources or not all(
                    _unwrap(s).type == "command" and _base(_unwrap(s)) == "get-smbvolshareprefixes"
                    for s in sources):
                problems.append("Get-SmbvolShareHolders -Prefixes must be the share's prefixes "
                                "(Get-SmbvolSharePrefixes), got %s"
                                % (_t(prefixes) if prefixes is not None else "nothing"))
        elif base == "get-smbvolshareusers":
            drives = _arg(cmd, "drives")
            dcmd = _unwrap(drives) if drives is not None else None
            if dcmd is None or dcmd.type != "command" or _base(dcmd) != "get-smbvolalldrives" \
                    or [k for k, _v in _args(dcmd)] != ["withcheckpoints"]:
                problems.append("Get-SmbvolShareUsers -Drives must be (Get-SmbvolAllDrives "
                                "-WithCheckpoints), got %s"
                                % (_t(drives) if drives is not None else "nothing"))
            prefixes = _arg(cmd, "prefixes")
            ptext = _norm(_t(prefixes)) if prefixes is not None else ""
            if not re.fullmatch(r"@\(\$[\w.]+\)", ptext):
                problems.append("Get-SmbvolShareUsers -Prefixes must be the share root, got %r"
                                % ptext)
            if "exceptvmid" in given:
                problems.append("Get-SmbvolShareUsers must not leave out a VM (-ExceptVMId)")
        else:
            problems.append("$%s = %s is not an in-use inventory call" % (var, _t(value)))
    return problems


def removal_problems(script: Script, fn_name: str, exits: Set[str],
                     checked: Set[str] = frozenset()) -> List[str]:
    """Every mapping removal in ``fn_name`` must be reached only when no VM uses the share.

    ``checked``: functions that remove a mapping under their own in-use guard (checked apart).
    """
    fn = script.fn(fn_name)
    removers = script.callers_of(MAPPING_REMOVERS) - set(checked)
    calls = [c for c in _commands(fn) if _base(c) in removers]
    problems = []
    if not calls:
        problems.append("%s removes no mapping at all" % fn_name)
    for call in calls:
        known = facts_at(call, fn, exits)
        empties = sorted(v for kind, v in known if kind == "empty")
        good = [v for v in empties if not inventory_problems(script, fn, v)]
        if not good:
            detail = "; ".join(p for v in empties for p in inventory_problems(script, fn, v))
            problems.append("%s line %d: %s is reachable while the share may be in use "
                            "(no guard 'the in-use list is empty' dominates it%s)"
                            % (fn_name, _line(call), _name(call),
                               ": " + detail if detail else ""))
        for v in good:
            if len(_assignments(fn, v)) != 1:
                problems.append("%s: the in-use list $%s is assigned more than once"
                                % (fn_name, v))
    return problems


# --------------------------------------------------------------------------
# unmount_share: never unmap a share still in use
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,oid,text", _cases("unmount_share"))
def test_unmount_removes_mapping_only_when_no_vm_uses_the_share(name, oid, text):
    script = Script(text)
    problems = removal_problems(script, "Invoke-SmbvolOperation", {"stop:disk_in_use"})
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name,oid,text", _cases("unmount_share"))
def test_unmount_in_use_guard_is_not_bypassed_by_force(name, oid, text):
    """The disk_in_use guard runs whatever -Force says: no Force in its condition or above it."""
    script = Script(text)
    body = script.body()
    guards = []
    for node in _walk(body):
        if node.type == "if_statement":
            cond, then, els, elseif = _if_parts(node)
            if exit_kind(then) == "stop:disk_in_use":
                guards.append(node)
    assert guards, "unmount_share has no disk_in_use guard"
    for guard in guards:
        cond, _then, _els, _elseif = _if_parts(guard)
        assert "$force" not in _norm(_t(cond)), "the in-use guard depends on Force: %s" % _t(cond)
        for above, value, kind, _stmt in dominating(guard, body):
            if kind is not None:
                continue  # an earlier early exit only decides whether the guard is reached
            assert "$force" not in _norm(_t(above)), (
                "the in-use guard only runs when %s is %s" % (_t(above), value))


@pytest.mark.parametrize("name,oid,text", _cases("unmount_share"))
def test_unmount_share_holders_read_every_vm_inventory(name, oid, text):
    """Get-SmbvolShareHolders looks at every VM's hard disks, DVD drives and folders."""
    script = Script(text)
    fn = script.fn("Get-SmbvolShareHolders")
    vm_loops = []
    for loop in (n for n in _walk(fn) if n.type == "foreach_statement"):
        var, iterable, body = _foreach_parts(loop)
        cmd = _unwrap(iterable)
        if cmd.type == "command" and _name(cmd).lower() == "hyper-v\\get-vm":
            assert not _args(cmd) and not _piped_into(cmd) and \
                len(cmd.parent.named_children) == 1, "Get-VM is filtered: %s" % _t(iterable)
            vm_loops.append((var, body))
    assert len(vm_loops) == 1, "Get-SmbvolShareHolders must loop over every VM (Hyper-V\\Get-VM)"
    vm, vm_body = vm_loops[0]

    inventories = [_var(a.named_children[0]) for a in _walk(vm_body)
                   if a.type == "assignment_expression"
                   and _unwrap(a.named_children[-1]).type == "command"
                   and _base(_unwrap(a.named_children[-1])) == "get-smbvolvminventory"
                   and [(k, _norm(_t(v[0]))) for k, v in _args(_unwrap(a.named_children[-1]))]
                   == [("vm", "$" + vm)]]
    assert len(inventories) == 1, \
        "Get-SmbvolShareHolders must read each VM's drives with Get-SmbvolVMInventory -VM $%s" % vm
    inventory = inventories[0]
    flags = {}
    for loop in (n for n in _walk(vm_body) if n.type == "foreach_statement"):
        var, iterable, body = _foreach_parts(loop)
        text_ = _norm(_t(iterable))
        if text_ == "@($%s.disks)" % inventory:
            what = "get-vmharddiskdrive"
        elif text_ == "@($%s.dvds)" % inventory:
            what = "get-vmdvddrive"
        else:
            if not all("$%s.%s" % (vm, p) in text_ for p in
                       ("configurationlocation", "snapshotfilelocation", "smartpagingfilepath")):
                continue
            what = "folders"
        set_true = []
        for rhs_owner in (n for n in _walk(body) if n.type == "assignment_expression"):
            if _norm(_t(rhs_owner.named_children[-1])) != "$true":
                continue
            known = facts_at(rhs_owner, body)
            tests = [t for k, t in known if k == "is" and t.startswith("test-smbvolpath")
                     and "-prefixes $prefixes" in t]
            if tests:
                set_true.append(_var(rhs_owner.named_children[0]))
        flags[what] = set_true
    for what in ("get-vmharddiskdrive", "get-vmdvddrive", "folders"):
        assert flags.get(what), "Get-SmbvolShareHolders does not mark a VM as using the share " \
                                "by its %s (under one of -Prefixes)" % what
    flag_names = set(itertools.chain.from_iterable(flags.values()))
    assert len(flag_names) == 1, flag_names
    flag = flag_names.pop()
    resets = [s for s in _statements(vm_body) if pscheck._strip(s).type == "assignment_expression"
              and _var(pscheck._strip(s).named_children[0]) == flag]
    assert resets and _norm(_t(pscheck._strip(resets[0]).named_children[-1])) == "$false", \
        "$%s must start $false for every VM" % flag

    adds = [(recv, call) for recv, call in _method_calls(vm_body, "Add")
            if ("is", "$" + flag) in facts_at(call, vm_body)]
    assert adds, "a VM name must be added when $%s is set" % flag
    for recv, call in adds:
        extra = facts_at(call, vm_body) - {("is", "$" + flag),
                                           ("not", "%s.contains($name)" % recv)}
        assert not extra, "a VM using the share is only added when also %s" % sorted(extra)
    names = {recv for recv, _ in adds}
    returns = [n for n in _walk(fn) if n.type == "flow_control_statement"
               and n.children[0].type == "return"]
    assert returns and all(_norm(_t(r)) in {"return %s.toarray()" % n for n in names}
                           for r in returns), "Get-SmbvolShareHolders must return the names found"


def _inventory_lists(fn) -> Dict[str, Set[str]]:
    """Get-SmbvolVMInventory: list variable → the normalised drive commands added to it."""
    found: Dict[str, Set[str]] = {}
    for loop in (n for n in _walk(fn) if n.type == "foreach_statement"):
        var, iterable, body = _foreach_parts(loop)
        cmd = _unwrap(iterable)
        if cmd.type != "command":
            continue
        for recv, call in _method_calls(body, "Add"):
            if _norm(_t(_call_argument(call))) == "$" + var:
                found.setdefault(recv, set()).add(
                    "%s %s" % (_base(cmd), " ".join("-%s %s" % (k, _norm(_t(v[0])))
                                                    for k, v in _args(cmd))))
    return found


@pytest.mark.parametrize("name,oid,text", _cases("unmount_share", "attach_vhd", "mount_share"))
def test_vm_inventory_holds_the_drives_of_every_checkpoint(name, oid, text):
    """A checkpoint still refers to an image detached since it was taken: the inventory that
    decides whether a mapping may go holds the VM's drives and those of each checkpoint."""
    script = Script(text)
    fn = script.fn("Get-SmbvolVMInventory")
    snapshot_loops = [n for n in _walk(fn) if n.type == "foreach_statement"
                      and _unwrap(_foreach_parts(n)[1]).type == "command"
                      and _base(_unwrap(_foreach_parts(n)[1])) == "get-vmsnapshot"]
    assert len(snapshot_loops) == 1, "every checkpoint of the VM: Hyper-V\\Get-VMSnapshot -VM $VM"
    checkpoint = _foreach_parts(snapshot_loops[0])[0]
    lists = _inventory_lists(fn)
    wanted = {
        "get-vmharddiskdrive -vm $vm", "get-vmharddiskdrive -vmsnapshot $" + checkpoint,
    }
    dvd_wanted = {"get-vmdvddrive -vm $vm", "get-vmdvddrive -vmsnapshot $" + checkpoint}
    assert wanted in lists.values() and dvd_wanted in lists.values(), lists
    alld = script.fn("Get-SmbvolAllDrives")
    assert "get-smbvolvminventory" in {_base(c) for c in _commands(alld)}
    if name != "unmount_share":
        for fn_name in ("Undo-SmbvolMount", "Mount-SmbvolShare"):
            calls = [c for c in _commands(script.fn(fn_name)) if _base(c) == "get-smbvolalldrives"]
            assert calls and all(_t(c).endswith("-WithCheckpoints") for c in calls), fn_name


@pytest.mark.parametrize("name,oid,text", _cases("unmount_share"))
def test_unmount_share_prefixes_always_hold_the_share_root(name, oid, text):
    script = Script(text)
    fn = script.fn("Get-SmbvolSharePrefixes")
    top = _statements(fn.named_children[-1])
    added = [recv for st in top for recv, call in _method_calls(st, "Add")
             if st.type == "pipeline" and _norm(_t(_call_argument(call))) == "$share.root"
             and not _enclosing(call, "if_statement", fn)]
    assert added, "Get-SmbvolSharePrefixes must always hold the share root"
    returns = [n for n in _walk(fn) if n.type == "flow_control_statement"
               and n.children[0].type == "return"]
    assert returns and all(_norm(_t(r)) == "return %s.toarray()" % added[0] for r in returns)


@pytest.mark.parametrize("name,oid,text", _cases("attach_vhd", "attach_vhds", "mount_share"))
def test_share_users_and_all_drives_see_every_hard_disk(name, oid, text):
    """The inventory of Undo-SmbvolMount and of a stale mapping's removal: every VM's disks."""
    script = Script(text)
    alld = script.fn("Get-SmbvolAllDrives")
    rets = [n for n in _walk(alld) if n.type == "flow_control_statement"]
    assert len(rets) == 2
    pipe = [c for c in _walk(rets[0]) if c.type == "command"]
    assert [(_name(c).lower(), _args(c)) for c in pipe] == [
        ("hyper-v\\get-vm", []), ("hyper-v\\get-vmharddiskdrive", [])], \
        "Get-SmbvolAllDrives must be every hard disk of every VM: %s" % _t(rets[0])
    users = script.fn("Get-SmbvolShareUsers")
    loops = [n for n in _walk(users) if n.type == "foreach_statement"
             and _var(_foreach_parts(n)[1]) == "drives"]
    assert loops, "Get-SmbvolShareUsers must look at every one of -Drives"
    adds = [call for _recv, call in _method_calls(loops[0], "Add")
            if any(k == "is" and t.startswith("test-smbvolpathunder")
                   and "-prefixes $prefixes" in t
                   for k, t in facts_at(call, loops[0]))]
    assert adds, "Get-SmbvolShareUsers must add a VM whose disk lies under -Prefixes"


# --------------------------------------------------------------------------
# mount rollback: attach_vhd, attach_vhds, mount_share
# --------------------------------------------------------------------------

def _undo_targets(block, undo: str = "undo-smbvolmount") -> List[str]:
    """The normalised -Mount arguments of every undo call in ``block``."""
    return [_norm(_t(_arg(c, "mount"))) for c in _commands(block)
            if _base(c) == undo and _arg(c, "mount") is not None]


def _catch_blocks(try_stmt) -> List:
    out = []
    for node in try_stmt.named_children:
        if node.type == "catch_clauses":
            for clause in node.named_children:
                out.extend(c for c in clause.named_children if c.type == "statement_block")
    return out


def _finally_block(try_stmt):
    clause = next((c for c in try_stmt.named_children if c.type == "finally_clause"), None)
    if clause is None:
        return None
    return next(c for c in clause.named_children if c.type == "statement_block")


def _undoes(try_stmt, var: str, lists: Set[str]) -> bool:
    """Whether a catch (ending in throw) or the finally of ``try_stmt`` undoes $var."""
    blocks = [b for b in _catch_blocks(try_stmt) if exit_kind(b) == "throw"]
    fin = _finally_block(try_stmt)
    if fin is not None:
        blocks.append(fin)
    for block in blocks:
        for target in _undo_targets(block):
            if target == "$" + var or any(target.startswith("$%s[" % lst) for lst in lists):
                return True
    return False


def mount_rollback_problems(script: Script) -> List[str]:
    """After each Mount-SmbvolShare of the operation, whatever can fail is covered by an undo."""
    body = script.body()
    mounts = [c for c in _commands(body) if _base(c) == "mount-smbvolshare"]
    problems = []
    if not mounts:
        return ["the operation mounts nothing"]
    for call in mounts:
        assign = _enclosing(call, "assignment_expression", body)
        var = _var(assign.named_children[0]) if assign is not None else None
        if var is None:
            problems.append("line %d: the result of Mount-SmbvolShare is not kept" % _line(call))
            continue
        registered: Set[str] = set()
        node = assign
        verdict = None
        while verdict is None:
            stmt = node
            while stmt.parent is not None and stmt.parent.type != "statement_list":
                stmt = stmt.parent
            lst = stmt.parent
            if lst is None or _key(stmt) == _key(body):
                verdict = "ok"
                break
            siblings = [c for c in lst.named_children if c.type != "comment"]
            after = siblings[[_key(s) for s in siblings].index(_key(stmt)) + 1:]
            for sib in after:
                for recv, add in _method_calls(sib, "Add"):
                    arg = _call_argument(add)
                    if arg is not None and _norm(_t(arg)) == "$" + var \
                            and re.fullmatch(r"\$\w+", recv):
                        registered.add(recv.lstrip("$"))
                if not _commands(sib):
                    continue
                if sib.type == "try_statement" and _undoes(sib, var, set()):
                    verdict = "ok"
                    break
                covering = [t for t in _ancestors(sib, body) if t.type == "try_statement"
                            and registered and _undoes(t, var, registered)]
                if covering:
                    verdict = "ok"
                    break
                verdict = ("line %d: %s can fail after Mount-SmbvolShare (line %d) with no "
                           "catch/finally undoing $%s (Undo-SmbvolMount)"
                           % (_line(sib), _norm(_t(sib))[:60], _line(call), var))
                break
            if verdict is None:
                node = lst.parent
                if node is None or _key(node) == _key(body):
                    verdict = "ok"
                else:
                    # leave the enclosing block: a try body, a loop body, a branch
                    owner = node
                    while owner.parent is not None and owner.parent.type != "statement_list":
                        owner = owner.parent
                    node = owner
        if verdict != "ok":
            problems.append(verdict)
    return problems


def _ancestors(node, stop) -> Iterator:
    parent = node.parent
    while parent is not None and _key(parent) != _key(stop):
        yield parent
        parent = parent.parent


@pytest.mark.parametrize("name,oid,text", _cases("attach_vhd", "attach_vhds", "mount_share"))
def test_every_mount_is_undone_when_a_later_step_fails(name, oid, text):
    problems = mount_rollback_problems(Script(text))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name,oid,text", _cases("attach_vhd", "attach_vhds", "mount_share"))
def test_mount_undoes_its_mapping_when_the_image_check_fails(name, oid, text):
    script = Script(text)
    fn = script.fn("Mount-SmbvolShare")
    checks = [c for c in _commands(fn) if _base(c) == "assert-smbvolimage"]
    assert checks, "Mount-SmbvolShare must check the image"
    for check in checks:
        tries = [t for t in _ancestors(check, fn) if t.type == "try_statement"
                 and _undoes(t, "mount", set())]
        assert tries, "line %d: a failed image check must undo the mount" % _line(check)


@pytest.mark.parametrize("name,oid,text", _cases("attach_vhd", "attach_vhds", "mount_share"))
def test_undo_removes_only_a_mapping_this_call_created(name, oid, text):
    script = Script(text)
    fn = script.fn("Undo-SmbvolMount")
    removers = script.callers_of(MAPPING_REMOVERS)
    calls = [c for c in _commands(fn) if _base(c) in removers]
    assert calls, "Undo-SmbvolMount removes nothing"
    for call in calls:
        known = facts_at(call, fn, {"return", "throw"})
        assert ("is", "$mount['mapping_created']") in known, (
            "line %d: the mapping is removed without Mount['mapping_created'] being true"
            % _line(call))
        assert ("not", "$mount['mapping_recreated']") in known, (
            "line %d: a recreated (pre-existing) mapping may be removed" % _line(call))
    problems = removal_problems(script, "Undo-SmbvolMount", {"return", "throw"})
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name,oid,text", _cases("attach_vhd", "attach_vhds", "mount_share"))
def test_stale_mapping_is_removed_only_when_no_vm_uses_the_share(name, oid, text):
    problems = removal_problems(Script(text), "Mount-SmbvolShare", set(),
                                checked={"undo-smbvolmount"})
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# host locks
# --------------------------------------------------------------------------

ALL_OPERATIONS = tuple(sorted(scripts.OPERATIONS))


def test_enter_lock_waits_and_refuses_when_not_acquired():
    script = Script(scripts.render("host_info").text)
    fn = script.fn("Enter-SmbvolLock")
    values = [_norm(_t(v)) for v in _assignments(fn, "acquired")]
    waits = [v for v in _assignments(fn, "acquired")
             if _unwrap(v).type == "invokation_expression"
             and _norm(_t(_unwrap(v))).startswith("$mutex.waitone(")]
    assert waits, "$acquired must be the result of $mutex.WaitOne(...)"
    for wait in waits:
        assert "$timeoutseconds" in _norm(_t(wait)), "WaitOne must wait -TimeoutSeconds"
    for value in _assignments(fn, "acquired"):
        text = _norm(_t(value))
        if value in waits or any(_key(value) == _key(w) for w in waits):
            continue
        if text == "$false":
            continue
        catch = _enclosing(value, "catch_clause", fn)
        assert text == "$true" and catch is not None and \
            "abandonedmutexexception" in _norm(_t(catch).split("{")[0]), (
                "$acquired = %s: only WaitOne (or an abandoned mutex) may acquire; all: %s"
                % (text, values))
    stops = [c for c in _commands(fn) if _base(c) == "stop-smbvol"
             and _norm(_t(_arg(c, "kind"))) == "'host_busy'"]
    assert stops, "Enter-SmbvolLock never says host_busy"
    for stop in stops:
        assert ("not", "$acquired") in facts_at(stop, fn), (
            "host_busy must be raised exactly when the mutex was not acquired")
    returns = [n for n in _walk(fn) if n.type == "flow_control_statement"
               and n.children[0].type == "return"]
    for ret in returns:
        assert ("not", "$acquired") not in facts_at(ret, fn) and \
            ("is", "$acquired") in facts_at(ret, fn, {"stop:host_busy"}), (
                "line %d: the mutex is returned without $acquired" % _line(ret))
    exit_fn = script.fn("Exit-SmbvolLock")
    assert [r for r, _c in _method_calls(exit_fn, "ReleaseMutex") if r == "$mutex"], \
        "Exit-SmbvolLock must release the mutex"


def lock_pairing_problems(script: Script) -> List[str]:
    acquirers = {"enter-smbvollock"}
    releasers = script.callers_of({"exit-smbvollock"})
    for name, node in script.functions.items():
        if name.startswith("enter-") and any(_base(c) == "enter-smbvollock"
                                             for c in _commands(node)):
            acquirers.add(name)
    problems = []
    for name, fn in script.functions.items():
        for call in (c for c in _commands(fn) if _base(c) in acquirers):
            # a function handing its locks to the caller may release them in a catch instead
            holder_fn_ok = name in acquirers and name != "enter-smbvollock"
            assign = _enclosing(call, "assignment_expression", fn)
            released = False
            if assign is not None and _var(assign.named_children[0]) not in (None, "null"):
                var = _var(assign.named_children[0])
                stmt = assign
                while stmt.parent.type != "statement_list":
                    stmt = stmt.parent
                siblings = [c for c in stmt.parent.named_children if c.type != "comment"]
                idx = [_key(s) for s in siblings].index(_key(stmt))
                nxt = siblings[idx + 1] if idx + 1 < len(siblings) else None
                fin = _finally_block(nxt) if nxt is not None and nxt.type == "try_statement" \
                    else None
                released = fin is not None and any(
                    _base(c) in releasers and any(_norm(_t(v[0])) == "$" + var
                                                  for _p, v in _args(c) if v)
                    for c in _commands(fin))
            else:
                adds = [recv for recv, add in _method_calls(fn, "Add")
                        if any(_key(n) == _key(call) for n in _walk(add))]
                for recv in adds:
                    for t in _ancestors(call, fn):
                        if t.type != "try_statement":
                            continue
                        blocks = [b for b in [_finally_block(t)] if b is not None]
                        if holder_fn_ok:
                            blocks += [b for b in _catch_blocks(t) if exit_kind(b) == "throw"]
                        for block in blocks:
                            for c in _commands(block):
                                if _base(c) in releasers and any(
                                        _norm(_t(v[0])).startswith(recv)
                                        for _p, v in _args(c) if v):
                                    released = True
            if not released:
                problems.append("%s line %d: %s is not paired with a release in a finally"
                                % (name, _line(call), _name(call)))
    return problems


@pytest.mark.parametrize("name,oid,text", _cases(*ALL_OPERATIONS))
def test_every_lock_is_released_in_a_finally(name, oid, text):
    problems = lock_pairing_problems(Script(text))
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# detach_vhd: never detach a disk not asked for
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,oid,text", _cases("detach_vhd"))
def test_detach_removes_only_drives_matched_by_path(name, oid, text):
    script = Script(text)
    body = script.body()
    removes = [c for c in _commands(script.tree.root_node)
               if _base(c) == "remove-vmharddiskdrive"]
    assert removes
    for cmd in removes:
        assert not _piped_into(cmd), "line %d: drives are piped into Remove-VMHardDiskDrive" \
            % _line(cmd)
        assert [k for k, _v in _args(cmd) if k != "erroraction"] == ["vmharddiskdrive"], _t(cmd)
    removes = [c for c in removes if _enclosing(c, "function_statement") is not None
               and _key(_enclosing(c, "function_statement")) == _key(body)]
    assert removes, "detach_vhd removes no drive"
    for cmd in removes:
        dvar = _var(_arg(cmd, "vmharddiskdrive"))
        assert dvar, "Remove-VMHardDiskDrive must get one selected drive, got %s" % _t(cmd)
        for rhs in _assignments(body, dvar):
            m = re.fullmatch(r"\$(\w+)\.drive", _norm(_t(rhs)))
            assert m, "$%s = %s is not a matched drive" % (dvar, _t(rhs))
            loop = _loop_of(rhs, m.group(1), body)
            assert loop is not None and _var(_foreach_parts(loop)[1]) == "found", \
                "$%s must range over the matches ($found)" % m.group(1)
        for rhs in _assignments(body, "found"):
            assert _norm(_t(_unwrap(rhs))) == "$scan.found", "$found = %s" % _t(rhs)
        for rhs in _assignments(body, "scan"):
            scan = _unwrap(rhs)
            assert scan.type == "command" and _base(scan) == "find-smbvolimagedrives", _t(rhs)
            cands = _norm(_t(_arg(scan, "candidates")))
            assert re.fullmatch(r"\$paths(\.toarray(\(\))?)?", cands), cands
    adds = [call for recv, call in _method_calls(body, "Add") if recv == "$paths"]
    assert adds and all("$diskname" in _norm(_t(_call_argument(a))) for a in adds), \
        "every candidate path must be the requested image ($DiskName)"
    for rhs in _assignments(body, "paths"):
        assert _norm(_t(rhs)).startswith("new-object"), "$paths = %s" % _t(rhs)


@pytest.mark.parametrize("name,oid,text", _cases("detach_vhd", "attach_vhd", "attach_vhds"))
def test_image_drives_are_selected_by_comparing_paths(name, oid, text):
    script = Script(text)
    fn = script.fn("Find-SmbvolImageDrives")
    loops = [n for n in _walk(fn) if n.type == "foreach_statement"]
    drive_loops = []
    for loop in loops:
        var, iterable, body = _foreach_parts(loop)
        cmd = _unwrap(iterable)
        if cmd.type == "command" and _base(cmd) == "get-vmharddiskdrive":
            assert [(k, _norm(_t(v[0]))) for k, v in _args(cmd)] == [("vm", "$vm")]
            drive_loops.append((var, body))
    assert len(drive_loops) == 1
    dvar, dbody = drive_loops[0]
    adds = [call for recv, call in _method_calls(fn, "Add") if recv == "$found"]
    assert adds, "Find-SmbvolImageDrives finds nothing"
    for add in adds:
        assert _enclosing(add, "foreach_statement", fn) is not None
        known = facts_at(add, fn)
        matched = [t for k, t in known if k == "is" and t.startswith("test-smbvolsamepath")
                   and "-candidates $candidates" in t]
        assert matched, "line %d: a drive is found without comparing its path" % _line(add)
        m = re.search(r"-path \$(\w+)\.path", matched[0])
        assert m, matched[0]
        for rhs in _assignments(dbody, m.group(1)):
            r = _unwrap(rhs)
            assert r.type == "command" and _base(r) == "resolve-smbvolimagepath" and \
                _norm(_t(_arg(r, "path"))) in ("([string]$%s.path)" % dvar, "$%s.path" % dvar)
        assert "drive = $%s;" % dvar in _norm(_t(_call_argument(add))).replace("\n", " "), \
            "the found drive must be the one whose path was compared"
    same = script.fn("Test-SmbvolSamePath")
    for ret in (n for n in _walk(same) if n.type == "flow_control_statement"):
        if _norm(_t(ret)) == "return $true":
            known = facts_at(ret, same)
            assert any(k == "is" and t.startswith("[string]::equals(") for k, t in known), \
                "Test-SmbvolSamePath says true without comparing"
    last = _statements(same.named_children[-1])[-1]
    assert _norm(_t(last)) == "return $false"


# --------------------------------------------------------------------------
# iscsi_disconnect: log out only when nothing uses the target, only its sessions
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,oid,text", _cases("iscsi_disconnect"))
def test_iscsi_disconnect_logs_out_only_after_the_in_use_checks(name, oid, text):
    script = Script(text)
    body = script.body()
    disconnectors = script.callers_of({"disconnect-iscsitarget"})
    calls = [c for c in _commands(body) if _base(c) in disconnectors]
    assert calls, "iscsi_disconnect logs out of nothing"
    all_guards = []
    for node in _walk(body):
        if node.type == "if_statement":
            cond, then, els, elseif = _if_parts(node)
            if exit_kind(then) == "stop:disk_in_use":
                all_guards.append(node)
    for call in calls:
        dom = [stmt for _c, _v, kind, stmt in dominating(call, body)
               if kind == "stop:disk_in_use"]
        missing = [g for g in all_guards if not any(_key(g) == _key(d) for d in dom)]
        assert not missing, "line %d: the in-use check at line %s does not run before the " \
            "logout" % (_line(call), [_line(g) for g in missing])
        empties = {v for k, v in facts_at(call, body, {"stop:disk_in_use"}) if k == "empty"}
        drive_fed = set()
        host_fed = set()
        for var in empties:
            for _recv, add in (x for x in _method_calls(body, "Add") if x[0] == "$" + var):
                for loop in _ancestors(add, body):
                    if loop.type != "foreach_statement":
                        continue
                    lvar, iterable, lbody = _foreach_parts(loop)
                    src = _unwrap(iterable)
                    if src.type == "command" and _base(src) == "get-smbvolalldrives":
                        drive_fed.add(var)
                    skips = [n for n in _walk(lbody) if n.type == "if_statement"
                             and exit_kind(_if_parts(n)[1]) == "continue"]
                    for skip in skips:
                        f = facts(_if_parts(skip)[0], True)
                        if ("is", "[bool]$%s.offline" % lvar) in f and \
                                ("not", "[bool]$%s.clustered" % lvar) in f:
                            host_fed.add(var)
        assert len(drive_fed) >= 2, (
            "the logout must wait for the VM checks (disks of VMs on the target, passthrough "
            "disks no session accounts for): %s" % sorted(drive_fed))
        assert host_fed, "the logout must wait for the online/clustered host disk check " \
            "(skipping only disks that are offline and not clustered)"
        drives = [lp for lp in _walk(body) if lp.type == "foreach_statement"
                  and _unwrap(_foreach_parts(lp)[1]).type == "command"
                  and _base(_unwrap(_foreach_parts(lp)[1])) == "get-smbvolalldrives"]
        for lp in drives:
            assert not _args(_unwrap(_foreach_parts(lp)[1]))


@pytest.mark.parametrize("name,oid,text", _cases("iscsi_disconnect"))
def test_iscsi_disconnect_logs_out_only_sessions_of_the_requested_target(name, oid, text):
    script = Script(text)
    body = script.body()
    calls = [c for c in _commands(body) if _base(c) == "disconnect-smbvoliscsisession"]
    assert calls
    for call in calls:
        svar = _var(_arg(call, "session"))
        loop = _loop_of(call, svar, body)
        assert loop is not None and _var(_foreach_parts(loop)[1]) == "sessions", \
            "line %d: the sessions logged out must be the target's ($sessions)" % _line(call)
    for rhs in _assignments(body, "sessions"):
        assert _norm(_t(rhs)).startswith(("new-object", "[system.collections.generic.list")), \
            _t(rhs)
    adds = [call for recv, call in _method_calls(body, "Add") if recv == "$sessions"]
    assert adds
    for add in adds:
        item = _norm(_t(_call_argument(add))).lstrip("$")
        loop = _loop_of(add, item, body)
        assert loop is not None, "$sessions gets %s, not a session of the target" % item
        src = _unwrap(_foreach_parts(loop)[1])
        assert src.type == "command" and _base(src) == "get-smbvoliscsisessions", _t(src)
        ivar = _var(_arg(src, "iqn"))
        iloop = _loop_of(loop, ivar, body) if ivar else None
        assert iloop is not None and _var(_foreach_parts(iloop)[1]) == "iqns", \
            "sessions must be looked up for each requested target ($iqns)"
    for recv, add in _method_calls(body, "Add"):
        if recv == "$iqns":
            arg = _norm(_t(_call_argument(add)))
            m = re.fullmatch(r"\[string\]\$(\w+)\.iqn", arg)
            assert m, arg
            loop = _loop_of(add, m.group(1), body)
            assert loop is not None and _var(_foreach_parts(loop)[1]) == "paths", \
                "the targets must be the requested paths' IQNs"
    for rhs in _assignments(body, "paths"):
        cmd = _unwrap(rhs)
        assert cmd.type == "command" and _base(cmd) == "get-smbvoliscsipaths"
        assert _norm(_t(_arg(cmd, "iqns"))) == "$targetiqns"
    sessions_fn = script.fn("Get-SmbvolIscsiSessions")
    wheres = [c for c in _commands(sessions_fn) if _base(c) == "where-object"]
    assert wheres and all(_piped_into(w) for w in wheres)
    filters = [_norm(_t(w)) for w in wheres]
    assert any(re.search(r"\[string\]::equals\(\[string\]\$_\.targetnodeaddress, \$iqn,", f)
               and " -or " not in f for f in filters), filters
    disc = script.fn("Disconnect-SmbvolIscsiSession")
    for cmd in (c for c in _commands(disc) if _base(c) == "disconnect-iscsitarget"):
        assert _norm(_t(_arg(cmd, "sessionidentifier"))) == "$id"
        assert _norm(_t(_arg(cmd, "nodeaddress"))) == "([string]$session.targetnodeaddress)"
    assert [_norm(_t(v)) for v in _assignments(disc, "id")] == \
        ["[string]$session.sessionidentifier"]


# --------------------------------------------------------------------------
# The .NET runtime floor: Windows PowerShell 5.1 (.NET Framework 4.6.2) and PowerShell 7.6
# --------------------------------------------------------------------------

def _dotnet_reference_dir() -> Optional[str]:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in (os.path.join(here, "tests", "data", "dotnet-api"),
                   os.path.join(os.path.dirname(here), "shared", "reference", "dotnet-api")):
        if os.path.isfile(os.path.join(folder, "netfx462.json")):
            return folder
    return None


@functools.lru_cache(maxsize=None)
def _dotnet_types(runtime: str) -> Dict[str, dict]:
    folder = _dotnet_reference_dir()
    if folder is None:
        pytest.skip("no .NET API reference (tests/data/dotnet-api or ../shared/reference)")
    with open(os.path.join(folder, runtime + ".json"), encoding="utf-8") as handle:
        return json.load(handle)["types"]


#: Assemblies Windows PowerShell 5.1 has loaded in a fresh powershell.exe -EncodedCommand.
FIVE_ONE_LOADED = {"mscorlib", "System", "System.Core", "System.Management.Automation",
                   "Microsoft.Management.Infrastructure", "System.Xml", "System.Configuration",
                   "System.DirectoryServices", "System.Management", "System.Numerics",
                   "System.Data"}


def _runner_text(text: str) -> str:
    """The task runner's text exactly as New-SmbvolGlobalMappingViaTask puts it on the task's
    command line: the function's body, comment and blank lines dropped, lines trimmed."""
    fn = Script(text).fn("Invoke-SmbvolMappingTaskScript")
    block = next(c for c in fn.named_children if c.type == "script_block")
    body = _t(block)
    lines = [line.strip() for line in re.split(r"\r?\n", body)]
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def _code(text: str) -> str:
    """The text with comments and string contents masked ('x'), so that neither can look like
    a call, and a string argument still counts as an argument."""
    src = pscheck._source(text)
    chars = list(src.text)
    for start, end in pscheck._comment_and_string_spans(src):
        for i in range(start, end):
            if chars[i] not in "\r\n":
                chars[i] = "x"
    return "".join(chars)


def _top_level_argument_count(code: str, open_paren: int) -> Tuple[int, int]:
    """(number of arguments, index of the closing parenthesis) of the call at ``open_paren``."""
    depth, count, seen = 0, 0, False
    for i in range(open_paren, len(code)):
        c = code[i]
        if c in "([{":
            depth += 1
            if depth == 1:
                continue
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return (count + 1 if seen else 0), i
        elif c == "," and depth == 1:
            count += 1
        if depth >= 1 and not c.isspace():
            seen = True
    raise AssertionError("unbalanced call at %d" % open_paren)


def dotnet_floor_problems(text: str) -> List[str]:
    """.NET members a script names that one of the two runtimes lacks: static methods by
    argument count, New-Object constructors by argument count, and the .NET Framework-only
    ACL instance methods (FileInfo/DirectoryInfo.GetAccessControl, SetAccessControl)."""
    code = _code(text)
    problems = []
    runtimes = ("netfx462", "pwsh76")
    for m in re.finditer(r"\[([A-Za-z][\w.]*)\]::(\w+)\(", code):
        type_name, member = m.group(1), m.group(2)
        count, _end = _top_level_argument_count(code, m.end() - 1)
        for runtime in runtimes:
            known = _dotnet_types(runtime).get(type_name)
            if known is None:
                continue
            counts = known.get("static", {}).get(member)
            if member.lower() == "new":  # PowerShell's ::new() is the type's constructor
                counts = known.get("ctors")
            if (runtime == "pwsh76" and type_name == "System.IO.Directory"
                    and member == "CreateDirectory" and count == 2):
                # .NET's 2-argument form takes a UnixFileMode, not a DirectorySecurity.
                counts = None
            if counts is None or count not in counts:
                problems.append("%s: [%s]::%s with %d argument(s)" % (runtime, type_name, member,
                                                                        count))
    for m in re.finditer(r"New-Object -TypeName ([A-Za-z][\w.]*) -ArgumentList ", code):
        type_name = m.group(1)
        rest = code[m.end():].split("\n", 1)[0]
        depth, count = 0, 1
        for c in rest:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                count += 1
        for runtime in runtimes:
            known = _dotnet_types(runtime).get(type_name)
            if known is not None and count not in known.get("ctors", []):
                problems.append("%s: new %s with %d argument(s)" % (runtime, type_name, count))
    for m in re.finditer(r"\.(GetAccessControl|SetAccessControl)\(", code):
        problems.append("pwsh76: instance method %s (an extension method in .NET, not a "
                        "member PowerShell 7 can call)" % m.group(1))
    return problems


@pytest.mark.parametrize("name,oid,text", _cases(*scripts.OPERATIONS))
def test_every_dotnet_member_exists_in_windows_powershell_and_powershell_7(name, oid, text):
    problems = dotnet_floor_problems(text)
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_dotnet_floor_check_sees_the_framework_only_acl_forms():
    bad = "\n".join([
        "$a = [System.IO.Directory]::GetAccessControl($p, 'Owner')",
        "[System.IO.Directory]::SetAccessControl($p, $s)",
        "$null = [System.IO.Directory]::CreateDirectory($p, $s)",
        "$o = $file.GetAccessControl('Owner')",
        "$f = New-Object -TypeName System.IO.FileStream -ArgumentList $p, $m, $r, $s, 4096, $o, $x",
    ])
    problems = " ".join(dotnet_floor_problems(bad))
    for expected in ("GetAccessControl with 2", "SetAccessControl with 2",
                     "CreateDirectory with 2", "instance method GetAccessControl",
                     "new System.IO.FileStream with 7"):
        assert expected in problems, (expected, problems)
    good = "\n".join(["$null = [System.IO.Directory]::CreateDirectory($p)",
                      "$f = New-Object -TypeName System.IO.FileStream -ArgumentList $p, $m, $a, $s"])  # noqa: E501
    assert dotnet_floor_problems(good) == []


def runner_assembly_problems(runner: str) -> List[str]:
    """Types the runner names whose .NET Framework assembly a fresh Windows PowerShell 5.1 does
    not load, with no ``Add-Type -AssemblyName`` of it before their first use."""
    code = _code(runner)
    problems = []
    for m in re.finditer(r"\[([A-Za-z][\w.]*)\]", code):
        known = _dotnet_types("netfx462").get(m.group(1))
        if known is None or known["assembly"] in FIVE_ONE_LOADED:
            continue
        loaded = re.search(r"(?im)^\s*Add-Type -AssemblyName %s\s*$" % re.escape(
            known["assembly"]), runner[:m.start()])
        if not loaded:
            problems.append("[%s] (assembly %s) is used before Add-Type -AssemblyName %s"
                            % (m.group(1), known["assembly"], known["assembly"]))
    return problems


@pytest.mark.parametrize("name", ["mount_share", "attach_vhd", "attach_vhds"])
def test_the_task_runner_loads_every_assembly_it_uses(name):
    """The runner is its own process (powershell.exe -EncodedCommand as SYSTEM): ProtectedData
    is in System.Security, which 5.1 does not load by itself."""
    runner = _runner_text(scripts.render(name, mapping_via_task=True).text)
    assert "ProtectedData" in runner
    assert runner_assembly_problems(runner) == []
    assert runner_assembly_problems(
        "$x = [System.Security.Cryptography.ProtectedData]::Unprotect($a, $b, 'LocalMachine')")


@pytest.mark.parametrize("name,before,after", [
    ("iscsi_attach", "Assert-SmbvolVMStateForDisks -VM $vm -Action 'attached'",
     "Connect-SmbvolIscsi"),
    ("iscsi_detach", "if ($found.Count -eq 0)", "Assert-SmbvolVMStateForDisks -VM $vm -Action 'removed'"),  # noqa: E501
    ("iscsi_detach", "Assert-SmbvolVMStateForDisks -VM $vm -Action 'removed'",
     "Hyper-V\\Remove-VMHardDiskDrive"),
])
def test_iscsi_templates_refuse_a_saved_or_paused_vm_like_the_smb_ones(name, before, after):
    """Hyper-V changes disks only while a VM is Off or Running: iscsi_attach refuses before it
    logs in, iscsi_detach only when it has a disk to remove."""
    body = _t(Script(scripts.render(name).text).body())
    assert before in body and after in body, (before, after)
    assert body.index(before) < body.index(after)
