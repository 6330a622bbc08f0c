"""How much of the templates the engine runs: ``python tests/engine/report.py``.

Every vector that runs on the engine (``engine: false`` ones are counted, not run) is run once
more with line breakpoints on every statement of its rendered script (the same text, run from a
file so that breakpoints can count it).  A statement of a shared function counts once, however
many scripts include it, and counts as executed when any run executed it.  Function
definitions themselves are not statements here.

Prints a table per template file (``ps_templates/*.j2``: the file that defines the function,
or the operation's own file for its body), the statements never executed (``--missed``), and
as its last two lines::

    engine vectors: N of M
    template statements executed: P %
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Set, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))

from smbvol import scripts  # noqa: E402
from tests import contract_runner as cr  # noqa: E402
from tests.engine import fakehost, runner  # noqa: E402
from tests.engine.locate import find_pwsh  # noqa: E402

STATEMENTS_PS1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "statements.ps1")
Key = Tuple[str, str, int]  # (function, statement text, ordinal of that text in the function)


def function_files() -> Dict[str, str]:
    """Function name (lower case) → the template file that defines it."""
    out: Dict[str, str] = {}
    pattern = re.compile(r"^function\s+([A-Za-z0-9_-]+)\s*\{", re.MULTILINE)
    for name in sorted(os.listdir(fakehost.TEMPLATES)):
        with open(os.path.join(fakehost.TEMPLATES, name), encoding="utf-8") as f:
            for match in pattern.finditer(f.read()):
                out.setdefault(match.group(1).lower(), name)
    return out


def statements(pwsh: str, texts: Dict[str, str]) -> Dict[str, List[Tuple[int, str, str]]]:
    """Rendered script name → its statements (line, function, first line of text)."""
    tmp = tempfile.mkdtemp(prefix="smbvol-statements-")
    paths = {}
    for name, text in texts.items():
        path = os.path.join(tmp, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".ps1")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths[path] = name
    proc = subprocess.run([pwsh, "-NoLogo", "-NoProfile", "-NonInteractive", "-File",
                           STATEMENTS_PS1], input=json.dumps(list(paths)),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    found = json.loads(proc.stdout)
    return {paths[p]: [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
            for p, rows in found.items()}


def keyed(rows: List[Tuple[int, str, str]]) -> Dict[int, Key]:
    """Line → the statement's key (function, text, ordinal)."""
    seen: Dict[Tuple[str, str], int] = collections.Counter()
    out = {}
    for line, function, text in rows:
        seen[(function, text)] += 1
        out[line] = (function, text, seen[(function, text)])
    return out


def script_name(vector) -> str:
    options = vector.get("options") or {}
    on = ",".join(sorted(k for k, v in options.items() if v))
    return vector["operation"] + ("[%s]" % on if on else "")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missed", action="store_true", help="list the statements never run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    # The scripts' warnings are logged by the executor; the report shows only its table.
    logging.basicConfig(level=logging.ERROR)
    pwsh, why = find_pwsh()
    if pwsh is None:
        print("no engine: %s" % why)
        return 2
    vectors = cr.load_vectors()
    engine = [v for v in vectors if v.get("engine") is not False]
    texts: Dict[str, str] = {}
    for vector in vectors:
        texts.setdefault(script_name(vector), cr.script_for(vector).text)
    # Every operation under every option, so code no vector reaches still counts.
    for name, op in scripts.OPERATIONS.items():
        for option in [None] + list(op.options):
            options = {option: True} if option else {}
            texts.setdefault(script_name({"operation": name, "options": options}),
                             scripts.render(name, **options).text)
    rows = statements(pwsh, texts)
    owner = function_files()
    lines_of: Dict[str, Dict[int, Key]] = {}
    all_keys: Dict[Key, str] = {}
    for name, found in rows.items():
        op = scripts.get_operation(name.split("[")[0])
        by_line = {}
        for line, (function, text, ordinal) in keyed(found).items():
            low = function.lower()
            if low == "invoke-smbvoloperation":
                template = op.template  # the operation's own body: its own statements
            elif low == "":
                template = "_envelope.ps1.j2"
            else:
                template = owner.get(low, op.template)
            key = (template + ":" + function, text, ordinal)
            by_line[line] = key
            all_keys.setdefault(key, template)
        lines_of[name] = by_line
    hit: Set[Key] = set()
    passed = 0

    def work(chunk):
        out = []
        with runner.EngineSession(pwsh) as session:
            for vector in chunk:
                name = script_name(vector)
                lines = sorted(lines_of[name])
                try:
                    res = runner.run(session, vector, coverage_lines=lines)
                except runner.EngineError as exc:
                    out.append((vector["id"], name, [], ["engine: %s" % exc]))
                    continue
                out.append((vector["id"], name, res["hits"] or [], res["problems"]))
        return out

    chunks = [engine[i::args.workers] for i in range(args.workers)]
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        for part in pool.map(work, chunks):
            for _vid, name, hits, problems in part:
                passed += not problems
                for line in hits:
                    key = lines_of[name].get(int(line))
                    if key is not None:
                        hit.add(key)
    per_template: Dict[str, List[int]] = collections.defaultdict(lambda: [0, 0])
    for key, template in all_keys.items():
        per_template[template][1] += 1
        if key in hit:
            per_template[template][0] += 1
    print("%-28s %10s %10s %7s" % ("template", "executed", "statements", "%"))
    for template in sorted(per_template):
        done, total = per_template[template]
        print("%-28s %10d %10d %6.1f%%" % (template, done, total, 100.0 * done / max(total, 1)))
    if args.missed:
        print("\nnever executed:")
        for key, template in sorted(all_keys.items(), key=lambda kv: (kv[1], kv[0])):
            if key not in hit:
                function = key[0].split(":", 1)[1]
                print("  %s %s: %s" % (template, function or "<script>", key[1][:100]))
    executed = sum(d for d, _ in per_template.values())
    total = sum(t for _, t in per_template.values())
    print("vectors passing on the engine: %d of %d run" % (passed, len(engine)))
    print("engine vectors: %d of %d" % (len(engine), len(vectors)))
    print("template statements executed: %.1f %%" % (100.0 * executed / max(total, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
