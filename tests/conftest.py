"""Shared test configuration.

The PowerShell grammar (tree-sitter-powershell) is published for Python 3.10 and newer.
On Python 3.9 the modules that parse PowerShell are not collected (CI runs 3.11, where
a missing grammar is an error, never a skip).
"""

import sys

import pytest

GRAMMAR_MODULES = ("test_cli_dryrun.py", "test_pscheck.py", "test_smb_templates.py",
                   "test_templates_verified.py", "test_dotnet_floor.py")

if sys.version_info < (3, 10):
    collect_ignore = list(GRAMMAR_MODULES)

#: The files by how long they take, longest first: the two test workers take whole files
#: (``--dist loadfile``, in this order with ``--no-loadscope-reorder``), so the long ones start
#: early and the short ones even out the end, where a long file started last would keep one
#: worker busy after the other has finished.  test_faults.py, which mostly waits for its slow
#: servers, comes before test_remote_engine.py, which waits for deadlines too, so that the two
#: seldom wait side by side.
SLOW_FIRST = ("test_engine.py", "test_remote_vectors.py", "test_templates_verified.py",
              "test_engine_local.py", "test_faults.py", "test_remote_engine.py",
              "test_template_safety.py", "test_host_defects_engine.py", "test_cli_dryrun.py",
              "test_packaging.py", "test_task_mapping_engine.py", "test_smb_templates.py",
              "test_executor_psrp.py", "test_live_suite.py", "test_dotnet_floor.py",
              "test_connection.py", "test_contract.py")


def pytest_collection_modifyitems(config, items):
    def weight(item):
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=weight)  # stable: the order within a file stays


@pytest.fixture(scope="session")
def engine_session():
    """This test worker's engine process (tests/engine/harness.ps1), shared by every test that
    runs scripts against the fake host: each script gets a fresh runspace of its own, so the
    tests share nothing but the process (whose start and warm-up are paid once)."""
    from tests.engine import runner
    from tests.engine.locate import pwsh_or_skip

    pwsh = pwsh_or_skip()
    try:
        session = runner.EngineSession(pwsh)
    except Exception as exc:  # the fake host cannot be built
        pytest.fail("the fake host does not build: %s" % exc)
    with session:
        yield session
