"""``--dry-run``: exactly the standalone script on stdout, checked with the PowerShell grammar."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from smbvol import scripts
from smbvol.cli import app as cli_app
from smbvol.cli import errors, grammar
from smbvol.executors.fake import FakeExecutor
from smbvol.opts import new_conf
from smbvol.volumeops import VolumeOps
from tests import pscheck

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE_PASSWORD = "Dr7!dry-run-SHARE-secret-5512"
MARKER = "PWN3D"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("SMBVOL_PASSWORD", "SMBVOL_SHARE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    grammar._language.cache_clear()
    yield
    grammar._language.cache_clear()


def never(conf, host):
    raise AssertionError("a dry run built an executor for %s" % host)


def run(argv, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    rc = cli_app.main(list(argv), executor_factory=never, stdin=io.StringIO(stdin),
                      stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def expected_script(method, connection_info, *args, conf=None, **kwargs):
    """The script computed without the CLI: VolumeOps' plan, rendered standalone."""
    def refuse(script, params):
        raise AssertionError("nothing may run")

    ops = VolumeOps(FakeExecutor(refuse), conf or new_conf())
    inv = getattr(ops, method)(connection_info, *args, **kwargs)
    return scripts.render_standalone(inv.operation, inv.parameters, **inv.options)


def smb(export="//fs01/vols", name="volume-1.vhdx", **data):
    return {"driver_volume_type": "smbfs", "data": dict(data, export=export, name=name)}


def assert_valid(text):
    assert pscheck.parse_errors(text) == []
    assert pscheck.quote_issues(text) == []


CASES = [
    (["volume", "attach", "instance-0001"], "plan_attach", ("instance-0001", "scsi"),
     "attach_vhd"),
    (["volume", "detach", "instance-0001"], "plan_detach", ("instance-0001",), "detach_vhd"),
    (["share", "mount"], "plan_connect", (), "mount_share"),
]


@pytest.mark.parametrize("argv,method,args,operation", CASES)
def test_dry_run_prints_exactly_the_standalone_script(argv, method, args, operation):
    rc, out, err = run(argv + ["--dry-run", "--export", "//fs01/vols", "--name",
                               "volume-1.vhdx"])
    assert rc == 0, err
    assert out == expected_script(method, smb(), *args)
    assert out.startswith("# smbvol %s (standalone)" % operation)
    assert_valid(out)
    assert "smbvol: dry run: %s" % operation in err
    assert "SharePath = '\\\\fs01\\vols'" in err


def test_unmount_dry_run_with_force():
    rc, out, err = run(["share", "unmount", "--dry-run", "--force", "--export",
                        "//fs01/vols/sub"])
    assert rc == 0, err
    assert out == expected_script("plan_disconnect", smb("//fs01/vols/sub"), force=True)
    assert "$SmbvolParameters['Force'] = $true" in out
    assert "$SmbvolParameters['SharePath'] = '\\\\fs01\\vols'" in out
    assert_valid(out)


def test_attach_dry_run_ide_and_config_options(tmp_path):
    path = tmp_path / "smbvol.conf"
    path.write_text("[hyperv]\nsmb_mapping_via_scheduled_task = true\nhost_lock_timeout = 17\n")
    rc, out, err = run(["--config-file", str(path), "volume", "attach", "vm1", "--dry-run",
                        "--disk-bus", "ide", "--export", "//fs01/vols", "--name", "d.vhd"])
    assert rc == 0, err
    conf = new_conf(["--config-file", str(path)])
    assert out == expected_script("plan_attach", smb(name="d.vhd"), "vm1", "ide", conf=conf)
    assert "$SmbvolParameters['DiskBus'] = 'ide'" in out
    assert "$SmbvolParameters['LockTimeoutSeconds'] = 17" in out
    assert "mapping_via_task=true" in err
    assert_valid(out)


def test_share_user_dry_run_reads_the_password_on_the_host(monkeypatch):
    monkeypatch.setenv("SMBVOL_SHARE_PASSWORD", SHARE_PASSWORD)
    rc, out, err = run(["volume", "attach", "vm1", "--dry-run", "--share-username",
                        "DOM\\svc", "--export", "//fs01/vols", "--name", "v.vhdx"])
    assert rc == 0, err
    assert "Read-SmbvolSecret -Variable 'SMBVOL_SHARE_PASSWORD'" in out
    assert "'DOM\\svc'" in out
    assert "ShareCredential = DOM\\svc/***" in err
    assert "$env:SMBVOL_SHARE_PASSWORD" in err
    assert SHARE_PASSWORD not in out + err
    assert_valid(out)


def test_share_user_dry_run_needs_no_password_and_no_terminal():
    rc, out, err = run(["share", "mount", "--dry-run", "--share-username", "svc",
                        "--export", "//fs01/vols", "--name", "v.vhdx"])
    assert rc == 0, err
    assert_valid(out)


def test_connection_info_password_never_printed():
    doc = smb(options="-o username=svc,password=%s" % SHARE_PASSWORD.replace("!", ""),
              volume_id="vol-77")
    rc, out, err = run(["volume", "attach", "vm1", "--dry-run", "--connection-info", "-"],
                       stdin=json.dumps(doc))
    assert rc == 0, err
    assert SHARE_PASSWORD.replace("!", "") not in out + err
    assert "'svc'" in out
    assert "of volume vol-77" in err
    assert_valid(out)


def test_many_hosts_print_the_script_once():
    rc, out, err = run(["--host", "hv01", "--host", "hv02", "volume", "attach", "vm1",
                        "--dry-run", "--export", "//fs01/vols", "--name", "v.vhdx"])
    assert rc == 0, err
    assert out.count("# smbvol attach_vhd (standalone)") == 1
    assert "hv01, hv02" in err


def test_dry_run_with_bad_input_prints_nothing():
    rc, out, err = run(["volume", "attach", "vm1", "--dry-run", "--export", "fs01/vols",
                        "--name", "v.vhdx"])
    assert rc == errors.EXIT_USAGE
    assert out == ""
    assert "export" in err


def test_dry_run_refused_without_the_grammar(monkeypatch):
    monkeypatch.setitem(sys.modules, "tree_sitter_powershell", None)
    rc, out, err = run(["volume", "attach", "vm1", "--dry-run", "--export", "//fs01/vols",
                        "--name", "v.vhdx"])
    assert rc == errors.EXIT_USAGE
    assert out == ""
    assert "tree-sitter-powershell" in err and "--dry-run" in err


def test_a_script_that_does_not_parse_is_not_printed(monkeypatch):
    monkeypatch.setattr(scripts, "render_standalone",
                        lambda *a, **k: "& { $x = 'unterminated\n")
    rc, out, err = run(["volume", "attach", "vm1", "--dry-run", "--export", "//fs01/vols",
                        "--name", "v.vhdx"])
    assert rc == errors.EXIT_FAILED
    assert out == ""
    assert "does not parse" in err


def test_a_script_with_an_undoubled_typographic_quote_is_not_printed(monkeypatch):
    monkeypatch.setattr(scripts, "render_standalone",
                        lambda *a, **k: "$x = 'a\u2019; Stop-Computer; \u2019'\n")
    rc, out, err = run(["volume", "detach", "vm1", "--dry-run", "--export", "//fs01/vols",
                        "--name", "v.vhdx"])
    assert rc == errors.EXIT_FAILED
    assert out == ""


# -- hostile values -------------------------------------------------------------------

HOSTILE_VMS = [
    "vm'; Remove-Item -Recurse C:\\ %s; '" % MARKER,
    "vm\u2018%s\u2019; Stop-Computer; \u2019" % MARKER,
    "\u201a\u201b%s''" % MARKER,
    "$(Stop-Computer %s)" % MARKER,
    "vm`; %s`n`$x" % MARKER,
    'vm" ; %s ; "' % MARKER,
    "a;b|%s&c" % MARKER,
    "@'\n%s\n'@" % MARKER,
    "vm\u201c%s\u201d$(x)" % MARKER,
    "} @SmbvolParameters; %s & {" % MARKER,
]
HOSTILE_DIRS = [
    "it's\u2018%s\u2019$(x);`y" % MARKER,
    "o'brien'; %s; '" % MARKER,
    "\u201b%s\u201a {x}" % MARKER,
]
HOSTILE_FILES = [
    "it's\u2018%s\u2019$(x);`y.vhdx" % MARKER,
    "a;%s$(b)'.vhdx" % MARKER,
    "\u201b%s\u201a @(1).vhd" % MARKER,
]


def assert_only_quoted(text, *values):
    """The script parses, and each value is one single-quoted literal, never code."""
    assert_valid(text)
    literals = pscheck.string_literals(text)
    decoded = {lit.value for lit in literals if lit.kind == "single"}
    for value in values:
        assert value in decoded, value
    spans = [(lit.start, lit.end) for lit in literals]
    positions = pscheck.value_positions(text, MARKER)
    assert positions
    for start, end in positions:
        assert any(s <= start and end <= e for s, e in spans), text[start - 40:end + 40]


@pytest.mark.parametrize("vm", HOSTILE_VMS)
@pytest.mark.parametrize("command", ["attach", "detach"])
def test_hostile_vm_names(command, vm):
    rc, out, err = run(["volume", command, "--dry-run", "--export", "//fs01/vols", "--name",
                        "v.vhdx", "--", vm])
    assert rc == 0, err
    assert_only_quoted(out, vm)


@pytest.mark.parametrize("directory", HOSTILE_DIRS)
@pytest.mark.parametrize("argv", [
    ["volume", "attach", "vm1", "--name", "v.vhdx"],
    ["volume", "detach", "vm1", "--name", "v.vhdx"],
    ["share", "mount", "--name", "v.vhdx"],
])
def test_hostile_exports(argv, directory):
    rc, out, err = run(argv + ["--dry-run", "--export", "//fs01/vols/" + directory])
    assert rc == 0, err
    assert_only_quoted(out, "\\\\fs01\\vols\\" + directory)


@pytest.mark.parametrize("name", HOSTILE_FILES)
@pytest.mark.parametrize("argv", [
    ["volume", "attach", "vm1"],
    ["volume", "detach", "vm1"],
    ["share", "mount"],
])
def test_hostile_file_names(argv, name):
    rc, out, err = run(argv + ["--dry-run", "--export", "//fs01/vols", "--name", name])
    assert rc == 0, err
    assert_only_quoted(out, name)


def test_hostile_everything_at_once_with_share_user():
    vm, directory, name = HOSTILE_VMS[1], HOSTILE_DIRS[0], HOSTILE_FILES[0]
    user = "DOM\\o'brien\u2019"
    rc, out, err = run(["volume", "attach", "--dry-run", "--export", "//fs01/vols/" + directory,
                        "--name", name, "--share-username", user, "--", vm])
    assert rc == 0, err
    assert_only_quoted(out, vm, name, "\\\\fs01\\vols\\" + directory, user)
    assert "UTF-8 with a BOM" in err


def test_share_unmount_hostile_export():
    directory = HOSTILE_DIRS[1]
    rc, out, err = run(["share", "unmount", "--dry-run", "--export",
                        "//fs01/vols/" + directory])
    assert rc == 0, err
    assert_valid(out)  # unmount acts on the share root: the directory is not in the script
    assert MARKER not in out


# -- the main job on a fresh machine --------------------------------------------------

def test_main_job_as_a_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMBVOL_")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "smbvol.cli.app", "volume", "attach", "--dry-run",
         "instance-0001", "--export", "//fs01/vols", "--name", "volume-1.vhdx"],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected_script("plan_attach", smb(), "instance-0001", "scsi")
    assert "$SmbvolParameters['VMName'] = 'instance-0001'" in proc.stdout
    assert_valid(proc.stdout)
    assert "nothing was run" in proc.stderr
    assert "BOM" not in proc.stderr  # plain ASCII
