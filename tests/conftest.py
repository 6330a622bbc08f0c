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
