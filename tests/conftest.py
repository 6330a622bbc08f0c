"""Shared test configuration.

The PowerShell grammar (tree-sitter-powershell) is published for Python 3.10 and newer.
On Python 3.9 the modules that parse PowerShell are not collected (CI runs 3.11, where
a missing grammar is an error, never a skip).
"""

import sys

GRAMMAR_MODULES = ("test_cli_dryrun.py", "test_pscheck.py", "test_smb_templates.py",
                   "test_templates_verified.py", "test_dotnet_floor.py")

if sys.version_info < (3, 10):
    collect_ignore = list(GRAMMAR_MODULES)

#: The files that take longest (each runs PowerShell processes), first: the two test workers
#: take whole files (``--dist loadfile``), and a long file started last keeps one of them busy
#: after the other has finished.
SLOW_FIRST = ("test_engine.py", "test_remote_vectors.py", "test_engine_local.py",
              "test_templates_verified.py", "test_remote_engine.py",
              "test_host_defects_engine.py", "test_faults.py")


def pytest_collection_modifyitems(config, items):
    def weight(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=weight)  # stable: the order within a file stays
