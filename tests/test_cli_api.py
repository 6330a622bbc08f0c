"""The public Python surface says what it does: signatures, docstrings, annotations, py.typed.

(Named with the command-line tests: the API is what ``smbvol`` and Nova's driver share.)
"""

from __future__ import annotations

import inspect
import os
import pydoc
import subprocess
import sys
import tempfile
import textwrap
import typing

import pytest

import smbvol
import smbvol.testing
from smbvol import exceptions, executors, opts, results
from smbvol.drivers.iscsi import IscsiAttachment, IscsiConnection, IscsiDisconnection
from smbvol.secret import Credential, Secret
from smbvol.testing import HostDouble, hostdouble
from smbvol.volumeops import VolumeOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMB_INFO = {"driver_volume_type": "smbfs",
            "data": {"export": "//fs01/vols", "name": "volume-1.vhdx"}}
IQN = "iqn.2010-10.org.openstack:volume-7"
ISCSI_INFO = {"driver_volume_type": "iscsi",
              "data": {"target_portal": "10.0.0.50:3260", "target_iqn": IQN,
                       "target_lun": 1, "auth_method": "CHAP", "auth_username": "chap-user",
                       "auth_password": "chap-secret-12"}}

#: The public modules mypy checks (the test command runs it; see test_mypy_*).
PUBLIC_MODULES = ("smbvol/__init__.py", "smbvol/volumeops.py", "smbvol/connection.py",
                  "smbvol/drivers", "smbvol/opts.py", "smbvol/testing/__init__.py",
                  "smbvol/results.py", "smbvol/secret.py", "smbvol/exceptions.py",
                  "smbvol/envelope.py", "smbvol/scripts.py")


def host_double():
    host = HostDouble("hv01")
    host.add_vm("instance-1")
    host.add_share("//fs01/vols", files=["volume-1.vhdx"])
    host.add_target(IQN, ["10.0.0.50:3260"], {1: 5},
                    credential=Credential("chap-user", Secret("chap-secret-12")))
    return host


def volume_ops(host):
    return VolumeOps(host.executor(), opts.new_conf(hyperv_volume_attach_retry_count=0),
                     sleep=lambda s: None)


# -- HostDouble ----------------------------------------------------------------------------

def test_host_double_shows_its_real_signature_and_a_public_docstring():
    params = inspect.signature(HostDouble).parameters
    assert list(params)[:1] == ["host_name"]
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    # The same parameters as the double it extends (no drift).
    base = inspect.signature(hostdouble.HostDouble.__init__).parameters
    assert list(params) == [p for p in base if p != "self"]
    assert all(params[n].default == base[n].default for n in params)
    doc = inspect.getdoc(HostDouble)
    assert "exports" not in doc and "host_name" in doc and "executor" in doc


def test_the_documented_example_runs_as_it_is_written():
    doc = smbvol.testing.__doc__
    code = doc.split("This runs as it is::", 1)[1].split("\n\n", 1)[1]
    code = textwrap.dedent(code.split("\nWhat the double", 1)[0])
    assert 'add_share("//fs01/vols"' in code
    exec(compile(code, "smbvol.testing docstring", "exec"), {})
    # What a reader copies from the source is what help() shows (a raw docstring).
    with open(smbvol.testing.__file__, encoding="utf-8") as f:
        assert code.splitlines()[-2].strip() in f.read()


def test_no_example_in_the_double_doubles_backslashes():
    for module in (smbvol.testing, hostdouble):
        assert "\\\\\\\\" not in inspect.getsource(module).split('"""', 2)[1]
        assert "\\\\\\\\" not in (module.__doc__ or "")


@pytest.mark.parametrize("root", ["//fs01/vols", "\\\\fs01\\vols"])
def test_add_share_takes_both_slash_styles(root):
    host = HostDouble()
    share = host.add_share(root, files=["v.vhdx"])
    assert share.root == "\\\\fs01\\vols"
    with pytest.raises(ValueError):
        host.add_share("//fs01/vols/sub")


# -- executors -----------------------------------------------------------------------------

def test_fake_executor_is_documented_and_get_executor_builds_it():
    doc = inspect.getdoc(executors.FakeExecutor)
    assert doc and doc != inspect.getdoc(executors.Executor)
    assert "handler" in doc
    ex = executors.get_executor(opts.new_conf(), host="hv7", name="fake")
    assert isinstance(ex, executors.FakeExecutor) and ex.host == "hv7"
    facts = VolumeOps(ex, opts.new_conf()).execute(VolumeOps(ex, opts.new_conf())
                                                   .plan_host_info(), context="facts")
    assert facts.result["host_name"] == "hv7"


# -- annotations that say what is returned -------------------------------------------------

@pytest.mark.parametrize("method, types", [
    ("connect_volume", {results.ShareConnection, IscsiConnection}),
    ("disconnect_volume", {results.ShareDisconnection, IscsiDisconnection}),
])
def test_connect_and_disconnect_are_annotated_with_both_drivers_results(method, types):
    hint = typing.get_type_hints(getattr(VolumeOps, method))["return"]
    assert set(typing.get_args(hint)) == types
    host = host_double()
    ops = volume_ops(host)
    for info in (SMB_INFO, ISCSI_INFO):
        if method == "disconnect_volume":
            ops.connect_volume(info)
        assert isinstance(getattr(ops, method)(info), tuple(types))


def test_an_iscsi_attachment_reports_sessions_not_a_share_mapping():
    ops = volume_ops(host_double())
    att = ops.attach_volume(ISCSI_INFO, "instance-1")
    assert isinstance(att, IscsiAttachment) and isinstance(att, results.Attachment)
    assert att.mapping_created is False and att.mapping_kind is None
    assert att.sessions_created == 1 and att.connection_created
    assert att.disk_number == 5 and att.disk_path == "\\\\.\\PHYSICALDRIVE5"
    again = ops.attach_volume(ISCSI_INFO, "instance-1")
    assert again.sessions_created == 0 and not again.connection_created


def test_attach_volume_vm_not_found_names_the_attach():
    ops = volume_ops(host_double())
    with pytest.raises(exceptions.VMNotFound) as excinfo:
        ops.attach_volume(SMB_INFO, "no-such-vm")
    exc = excinfo.value
    assert exc.operation == "attach_vhd" and exc.kwargs["operation"] == "attach_vhd"
    chain = []
    seen = exc
    while seen is not None:
        chain.append(str(seen))
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    assert not any("list_attachments" in text for text in chain), chain
    assert "no VM named no-such-vm" in str(exc)


# -- help(smbvol), py.typed, mypy -------------------------------------------------------------

def test_help_of_the_package_shows_the_api():
    text = pydoc.render_doc(smbvol, renderer=pydoc.plaintext)
    assert "class VolumeOps" in text
    for name in ("attach_volume", "connect_volume", "smbvol.executors", "smbvol.testing",
                 "register_opts"):
        assert name in text


def test_py_typed_is_shipped_with_the_package(tmp_path):
    assert os.path.isfile(os.path.join(ROOT, "smbvol", "py.typed"))
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib",
                    str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    assert (tmp_path / "smbvol" / "py.typed").is_file()
    with open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8") as f:
        assert "smbvol/py.typed" in f.read()


MYPY_CONFIG = """\
[mypy]
ignore_missing_imports = True
follow_imports = skip
warn_unused_ignores = True
[mypy-smbvol.*]
follow_imports = silent
"""

#: A user's code: what mypy must accept, and one wrong annotation it must reject.
USER_CODE = '''\
from smbvol import VolumeOps, results
from smbvol.drivers.iscsi import IscsiConnection
from smbvol.testing import HostDouble


def connected(ops: VolumeOps) -> "results.ShareConnection | IscsiConnection":
    return ops.connect_volume({})


def wrong(ops: VolumeOps) -> results.ShareConnection:
    return ops.connect_volume({})  # iSCSI gives an IscsiConnection: an error


double: HostDouble = HostDouble("hv01", serialize=True)
'''


def run_mypy(tmp_path, *paths):
    pytest.importorskip("mypy")
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    cache = os.path.join(tempfile.gettempdir(), "smbvol-mypy-cache-%d%d" % sys.version_info[:2])
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config),
                           "--cache-dir", cache, "--no-error-summary", "--hide-error-context",
                           *paths], cwd=ROOT, capture_output=True, text=True)


def test_mypy_checks_the_public_api_and_rejects_a_wrong_annotation(tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    res = run_mypy(tmp_path, *PUBLIC_MODULES, str(user))
    errors = [line for line in res.stdout.splitlines() if ": error:" in line]
    ours = [line for line in errors if "user_code.py" not in line]
    assert ours == [], res.stdout + res.stderr
    (wrong,) = [line for line in errors if "user_code.py" in line]
    assert ":11: error: Incompatible return value type" in wrong, res.stdout
