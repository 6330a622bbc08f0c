"""The local executor, on Linux, with a stand-in ``powershell.exe`` the test puts on PATH.

The stand-in is a small Python program: it records its argv and stdin to files,
decodes the stdin payload like the bootstrap does and prints an envelope — or,
when the script text asks for it, fails without an envelope or starts a child
and sleeps (to prove the timeout kills the whole tree).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time

import pytest

from smbvol import envelope, exceptions, opts
from smbvol.executors import base, get_executor
from smbvol.executors.local import LocalExecutor
from smbvol.scripts import OPERATIONS, Script
from smbvol.secret import Credential, Secret
from tests.winrm_server import contains_secret, decode_payload

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX stand-in executable")

SHARE_PW = "L0cal-Sh4re-unique-3"
UNICODE = "Ünïcødé ✓ 日本"

STAND_IN = r'''#!%(python)s
import base64, json, os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
data = sys.stdin.buffer.read()
with open(os.path.join(here, "argv.json"), "w") as f:
    json.dump(sys.argv, f)
with open(os.path.join(here, "stdin.bin"), "wb") as f:
    f.write(data)
b64 = lambda s: base64.b64decode(s.strip()).decode("utf-8")
lines = data.decode("ascii").split("\n")
text, params = b64(lines[0]), json.loads(b64(lines[1]))
secrets = [l.split("\t") for l in lines[2:] if l.strip()]
if "#mode:sleep" in text:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(here, "pids.txt"), "w") as f:
        f.write("%%d %%d" %% (os.getpid(), child.pid))
    time.sleep(120)
if "#mode:fail" in text:
    sys.stdout.write("partial output\n")
    sys.stderr.write("boom: access with " + b64(secrets[0][-1]) + " refused\n")
    sys.exit(3)
doc = {"ok": True, "warnings": [], "result": {
    "params": params, "script_chars": len(text), "script_tail": text[-40:],
    "secret_names": [b64(s[1]) for s in secrets], "const": %(unicode)r}}
out = %(begin)r + json.dumps(doc, ensure_ascii=False) + %(end)r + "\r\n"
sys.stdout.buffer.write(out.encode("utf-8"))
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A ``powershell.exe`` on PATH; returns its directory."""
    path = tmp_path / "powershell.exe"
    path.write_text(STAND_IN % {"python": sys.executable, "unicode": UNICODE,
                                "begin": envelope.BEGIN, "end": envelope.END},
                    encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    return tmp_path


def script(text: str = "param()\n'x'\n") -> Script:
    return Script(operation=OPERATIONS["attach_vhd"], text=text)


def params(**kw) -> dict:
    p = {"VMName": "instance-0002", "SharePath": "\\\\fs1\\vols", "DiskName": "v2.vhdx",
         "ShareCredential": Credential("CORP\\share-user", Secret(SHARE_PW))}
    p.update(kw)
    return p


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for an absent reaper counts as dead)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_run_sends_parameters_over_stdin_and_nothing_on_argv(stand_in):
    res = LocalExecutor().run(script(), params(MaximumIops=250))
    assert res.result["params"] == {"VMName": "instance-0002", "SharePath": "\\\\fs1\\vols",
                                    "DiskName": "v2.vhdx", "MaximumIops": 250}
    assert res.result["secret_names"] == ["ShareCredential"]
    argv = json.loads((stand_in / "argv.json").read_text())
    assert argv[1:] == list(base.POWERSHELL_ARGS)
    assert "-NoLogo" in argv and "-NoProfile" in argv and "-NonInteractive" in argv
    stdin = (stand_in / "stdin.bin").read_bytes()
    text, plain, secrets = decode_payload(stdin.decode("ascii"))
    assert plain["VMName"] == "instance-0002" and text == script().text
    assert secrets[0]["value"] == SHARE_PW


def test_no_secret_in_argv_in_any_encoding_but_in_stdin(stand_in):
    LocalExecutor().run(script(), params())
    argv = " ".join(json.loads((stand_in / "argv.json").read_text())).encode("utf-8")
    assert not contains_secret(argv, SHARE_PW)
    assert contains_secret((stand_in / "stdin.bin").read_bytes(), SHARE_PW)


def test_non_ascii_round_trip(stand_in):
    res = LocalExecutor().run(script("param()\n# " + UNICODE + "\n"),
                              params(VMName="vm-" + UNICODE))
    assert res.result["params"]["VMName"] == "vm-" + UNICODE
    assert res.result["const"] == UNICODE
    assert res.result["script_tail"].endswith(UNICODE + "\n")


def test_script_of_12kb(stand_in):
    text = "param()\n" + "".join("# line %05d ..........................................\n"
                                 % i for i in range(240)) + "'tail marker'\n"
    assert len(text) > 12 * 1024
    res = LocalExecutor().run(script(text), params())
    assert res.result["script_chars"] == len(text)
    assert res.result["script_tail"] == text[-40:]
    assert b"tail marker" not in (stand_in / "argv.json").read_bytes()


def test_nonzero_exit_without_envelope_is_a_clear_error(stand_in):
    with pytest.raises(exceptions.NoEnvelope) as err:
        LocalExecutor().run(script("#mode:fail\n"), params())
    assert err.value.kwargs["exit_code"] == 3
    text = str(err.value)
    assert "exit code 3" in text and "partial output" in text and "boom" in text
    assert SHARE_PW not in text and "***" in text


def test_timeout_kills_the_whole_process_tree(stand_in):
    start = time.monotonic()
    with pytest.raises(exceptions.ExecutorTimeout) as err:
        LocalExecutor().run(script("#mode:sleep\n"), params(), timeout=1.0)
    assert time.monotonic() - start < 30
    assert err.value.kwargs["elapsed"] >= 1.0 and err.value.kwargs["timeout"] == 1.0
    assert "after" in str(err.value)
    pids = [int(p) for p in (stand_in / "pids.txt").read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)]


def test_missing_powershell_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(exceptions.ConfigError) as err:
        LocalExecutor(powershell_path="pwsh").run(script(), params())
    assert "smbvol.powershell_path" in str(err.value) and "pwsh" in str(err.value)


def test_from_conf_uses_powershell_path_and_script_timeout(stand_in):
    pwsh = stand_in / "pwsh"
    pwsh.write_bytes((stand_in / "powershell.exe").read_bytes())
    pwsh.chmod(0o755)
    conf = opts.new_conf(smbvol_transport="local", smbvol_powershell_path=str(pwsh),
                         smbvol_script_timeout=42)
    ex = get_executor(conf)
    assert isinstance(ex, LocalExecutor)
    assert ex.default_timeout == 42.0 and ex.powershell_path == str(pwsh)
    assert ex.command_line()[0] == str(pwsh)
    assert ex.run(script(), params()).result["params"]["DiskName"] == "v2.vhdx"
    assert SHARE_PW not in repr(ex)
