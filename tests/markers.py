"""Test markers shared by several modules."""

import sys

import pytest

#: The PowerShell grammar (tree-sitter-powershell) is published for Python 3.10+.
needs_grammar = pytest.mark.skipif(sys.version_info < (3, 10),
                                   reason="the PowerShell grammar needs Python 3.10+")
