"""The executors under faults: the fault matrix over loopback servers, and the hostile inputs.

The matrix (tests/fault_server.py) puts a real-socket fault proxy in front of the PSRP
server and of the WinRM host double and runs every case against both executors.  Each
case checks the exception class, the elapsed time against the call's deadline, how often
the script started (and that the executor never sent the command twice), what was left
open on the host, and that no marker secret appears in any message, attribute, traceback
or log record (the libraries' DEBUG records included).  ``python bench/faults.py`` prints
the same matrix as a table.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import sys
import threading
import time
import traceback

import pytest

import smbvol
from smbvol import connection, envelope, exceptions, opts
from smbvol.cli import errors as cli_errors
from smbvol.executors import base
from smbvol.executors.fake import FakeExecutor
from smbvol.executors.local import LocalExecutor
from smbvol.executors.winrm import WinRMExecutor
from smbvol.locks import LockRegistry
from smbvol.secret import MASK, MIN_MASKABLE, WITHHELD, LogSanitizer, mask
from smbvol.testing import HostDouble
from tests import fault_server
from tests.fault_server import CASES, CLEANUP_SLACK, Bench, run_case

# -- the fault matrix -------------------------------------------------------------------


@pytest.fixture(scope="module")
def benches():
    made = {t: Bench(t) for t in ("psrp", "winrm")}
    yield made
    for b in made.values():
        b.stop()


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_matrix(benches, transport, case):
    out = run_case(benches[transport], case)
    if case.expect is None:
        assert out.error is None, repr(out.error)
    else:
        assert isinstance(out.error, case.expect), repr(out.error)
        # every failure is an smbvol error, and names the host
        assert isinstance(out.error, exceptions.SmbvolError)
        assert "127.0.0.1" in str(out.error) or isinstance(out.error, exceptions.EnvelopeError)
    # one deadline per call, whatever the libraries retry underneath
    assert out.elapsed <= case.deadline + CLEANUP_SLACK, out.elapsed
    if case.expect is exceptions.ExecutorTimeout:
        assert out.elapsed >= case.deadline - 0.1
        assert out.error.setting == "script_timeout"
    elif out.error is not None:
        assert out.elapsed < case.deadline
    assert out.starts in out.allowed_starts, (out.starts, out.allowed_starts)
    assert out.commands <= 1, "the script was sent %d times" % out.commands
    if isinstance(out.error, (exceptions.ExecutorError, exceptions.EnvelopeError)) \
            and out.commands:
        # sent once, then failed: the script may have run; nobody re-runs it blindly
        assert exceptions.outcome_unknown(out.error)
        if isinstance(out.error, exceptions.TransportError):
            assert not exceptions.is_connection_failure(out.error)
    if not case.leaves_open:
        assert out.left_open == 0, "%d pipelines/shells left open" % out.left_open
    assert out.leaks == []
    assert out.library_warnings == 0


def test_matrix_covers_the_issue_probes():
    names = {c.name for c in CASES}
    for probe in ("refused", "reset at create", "reset at command", "reset at receive",
                  "reset at signal", "reset at delete", "401", "500 without WS-Man fault",
                  "500 with WS-Man fault", "silent host", "dripped answer", "cut XML",
                  "doubled XML", "garbage XML", "two envelopes", "no envelope", "huge output"):
        assert probe in names
    assert any(n.startswith("slow host") for n in names)


def test_table_lists_every_case(benches):
    outs = [run_case(benches["winrm"], CASES[0])]
    text = fault_server.table(outs)
    assert "refused" in text and "TransportError" in text and "elapsed s" in text


# -- masking: one rule ------------------------------------------------------------------

@pytest.mark.parametrize("secret", ["o", "pa", "s3c"])
def test_short_secrets_are_never_searched_for_the_text_is_withheld(secret):
    for text in ("response", "no match in here", "smbvol: error", "pa s3c o", ""):
        masked = mask(text, [secret])
        # the same answer whether or not the text holds the secret: nothing to infer
        assert masked == WITHHELD
    assert "res" + MASK not in mask("response", [secret])
    assert len(secret) < MIN_MASKABLE


def test_secrets_of_four_characters_or_more_are_masked_everywhere():
    assert mask("pw=Abcd; again Abcd!", ["Abcd"]) == "pw=***; again ***!"
    # the forms a host or a library may echo: XML- and JSON-escaped
    assert mask("<Text>p&amp;ss&lt;1</Text>", ["p&ss<1"]) == "<Text>***</Text>"
    assert mask('{"m": "a\\"bcd"}', ['a"bcd']) == '{"m": "***"}'
    assert mask("nothing here", ["Abcd", ""]) == "nothing here"
    assert mask("text", []) == "text"


def test_an_executor_error_with_a_short_transport_password_withholds_host_text():
    err = exceptions.RemoteFault(host="winhost", code="HTTP 500",
                                 reason="logon with pw failed (response)")
    masked = base.mask_error(err, ["pw"])
    assert "winhost" in str(masked) and WITHHELD in str(masked)
    assert "response" not in str(masked) and "pw" not in str(masked).replace(WITHHELD, "")


def test_errors_of_a_call_are_masked_with_every_known_secret():
    share_pw = "Share-Pw-Echoed-1"

    def handler(script, params):
        raise exceptions.RemoteFault(host="h", code="x", reason="echo %s" % share_pw)

    ex = FakeExecutor(handler, host="h")
    from smbvol import scripts
    from smbvol.secret import Credential
    script = scripts.render("mount_share", mapping_via_task=False)
    with pytest.raises(exceptions.RemoteFault) as err:
        ex.run(script, {"SharePath": "\\\\fs\\v",
                        "ShareCredential": Credential("u", share_pw)})
    assert share_pw not in str(err.value) and MASK in str(err.value)
    assert share_pw not in json.dumps(err.value.kwargs)
    assert share_pw not in "".join(traceback.format_exception(
        type(err.value), err.value, err.value.__traceback__))


def test_log_sanitizer_masks_escapes_bounds_and_lowers(caplog):
    logger = logging.getLogger("pypsrp.test_faults")
    f = LogSanitizer(["Marker-Secret-9"], demote=True)
    logger.addFilter(f)
    try:
        with caplog.at_level(logging.DEBUG, logger="pypsrp"):
            logger.error("Received message: %s\r\nforged line \x1b[31m\u202e %s",
                         "<x>Marker-Secret-9</x>", "y" * 5000)
    finally:
        logger.removeFilter(f)
    (rec,) = [r for r in caplog.records if r.name == "pypsrp.test_faults"]
    text = rec.getMessage()
    assert "Marker-Secret-9" not in text and MASK in text
    assert "\r" not in text and "\n" not in text and "\x1b" not in text
    assert "\u202e" not in text and "\\u202e" in text
    assert len(text) <= 1000 and rec.levelno == logging.DEBUG


# -- envelope parsing is linear ---------------------------------------------------------

def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        fn(*args, **kwargs)
    except exceptions.SmbvolError:
        pass
    return time.perf_counter() - start


@pytest.mark.parametrize("unit", [envelope.BEGIN, "<Objs", '<S S="Error">', "#< CLIXML\n"])
def test_512_kb_of_unterminated_markers_parse_in_linear_time(unit):
    text = unit * (512 * 1024 // len(unit))
    assert _timed(envelope.parse, text, operation="x") < 0.05
    assert _timed(envelope.parse, "x", operation="x", stderr=text) < 0.05


def test_a_5_mb_result_is_found_quickly():
    doc = envelope.ok({"items": ["v" * 100] * 50000})
    text = "noise\n" * 1000 + envelope.format_envelope(doc) + "\n"
    assert len(text) > 5_000_000
    start = time.perf_counter()
    res = envelope.parse(text, operation="x")
    assert time.perf_counter() - start < 0.2 and len(res.result["items"]) == 50000


def test_envelope_scan_keeps_its_meaning():
    one = envelope.format_envelope(envelope.ok({"a": 1}))
    assert envelope.find_envelopes("junk " + envelope.BEGIN + "stray " + one) == [
        one[len(envelope.BEGIN):-len(envelope.END)]]
    split = one[:10] + "<Objs Version=\"1\"><S S=\"Error\">x</S></Objs>" + one[10:]
    assert envelope.parse(split, operation="x").result == {"a": 1}
    assert envelope.clixml_messages('<S S="Error">a_x000D__x000A_</S><S S="Warning">w</S>') \
        == ["a\r\n", "w"]
    with pytest.raises(exceptions.MultipleEnvelopes):
        envelope.parse(one + one, operation="x")


def test_messages_are_escaped_and_bounded():
    err = exceptions.InvalidInput(field="vm", value="v" * 70000, reason="too long")
    assert len(str(err)) <= 1000
    err = exceptions.VMNotFound(operation="attach", host="h",
                                detail="vm-1\r\n2026 ERROR forged\x1b[2J\u202e")
    text = str(err)
    assert "\r" not in text and "\n" not in text and "\x1b" not in text
    assert "\u202e" not in text and "\\u202e" in text


# -- the local executor -----------------------------------------------------------------

STAND_IN = r'''#!%(python)s
import os, sys, time
sys.stdin.buffer.read()
mode = os.environ.get("FAULT_MODE", "")
if mode == "flood":
    chunk = b"x" * 65536
    while True:
        sys.stdout.buffer.write(chunk)
if mode == "setsid-child":
    pid = os.fork()
    if pid == 0:
        os.setsid()  # leaves the process group: the documented POSIX limit
        with open(os.environ["FAULT_PIDFILE"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(30)
        os._exit(0)
    time.sleep(30)
'''


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "fake-powershell"
    path.write_text(STAND_IN % {"python": sys.executable})
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX stand-in")
def test_local_output_cap_stops_a_flooding_process(stand_in, monkeypatch):
    monkeypatch.setenv("FAULT_MODE", "flood")
    ex = LocalExecutor(powershell_path=stand_in, max_output=1024 * 1024, default_timeout=20)
    start = time.monotonic()
    with pytest.raises(exceptions.OutputLimitExceeded) as err:
        ex.run(fault_server.fault_script(), {"VMName": "vm"})
    assert time.monotonic() - start < 5
    assert "max_output_bytes" in str(err.value)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_local_timeout_reports_the_time_it_really_took(stand_in, monkeypatch, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("FAULT_MODE", "setsid-child")
    monkeypatch.setenv("FAULT_PIDFILE", str(pidfile))
    ex = LocalExecutor(powershell_path=stand_in)
    start = time.monotonic()
    try:
        with pytest.raises(exceptions.ExecutorTimeout) as err:
            ex.run(fault_server.fault_script(), {"VMName": "vm"}, timeout=1)
        took = time.monotonic() - start
        reported = err.value.kwargs["elapsed"]
        # honest: the kill and the drain are in the figure, and neither waits long
        assert abs(took - reported) < 0.3, (took, reported)
        assert took < 1 + 3
        assert err.value.setting == "script_timeout"
    finally:
        # the grandchild that called setsid() survived the group kill (documented limit)
        if pidfile.exists():
            pid = int(pidfile.read_text())
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_powershell_path_on_windows():
    w = base.windows_powershell
    assert w("powershell.exe", {"SystemRoot": "D:\\Win"}, is_32bit_process=False) == \
        "D:\\Win\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert w("powershell.exe", {"SystemRoot": "C:\\Windows", "PROCESSOR_ARCHITEW6432": "AMD64"},
             is_32bit_process=True) == "C:\\Windows\\Sysnative\\WindowsPowerShell\\v1.0\\" \
                                       "powershell.exe"
    assert w("powershell.exe", is_32bit_process=False) == \
        "%SystemRoot%\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert w("pwsh") == "pwsh" and w("D:\\PS\\powershell.exe") == "D:\\PS\\powershell.exe"


def test_winrm_command_line_uses_the_full_path_unless_configured():
    o = fault_server.remote_options(5985, 3)
    assert WinRMExecutor(o).program == \
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert WinRMExecutor(o, powershell_path="pwsh").program == "pwsh"


# -- hostile input through VolumeOps ------------------------------------------------------

def _ops():
    conf = opts.new_conf(hyperv_volume_attach_retry_count=0)
    host = HostDouble()
    return smbvol.VolumeOps(FakeExecutor(host.handler, host=host.host_name), conf,
                            sleep=lambda s: None), host


@pytest.mark.parametrize("bad", ["vm-\udcff", "\ud800", "vm\udc80x"])
def test_lone_surrogates_in_a_vm_name_are_invalid_input(bad):
    ops, _ = _ops()
    ci = {"driver_volume_type": "smbfs",
          "data": {"export": "//fs01/vols", "name": "v.vhdx", "format": "vhdx"}}
    with pytest.raises(exceptions.InvalidInput) as err:
        ops.attach_volume(ci, bad)
    assert "instance_name" in str(err.value) or "VMName" in str(err.value)
    assert cli_errors.exit_code_of(err.value) == cli_errors.EXIT_USAGE


@pytest.mark.parametrize("field, ci", [
    ("export", {"driver_volume_type": "smbfs",
                "data": {"export": "//fs01/vol\udcffs", "name": "v.vhdx", "format": "vhdx"}}),
    ("iqn", {"driver_volume_type": "iscsi",
             "data": {"target_portal": "10.0.0.1:3260", "target_lun": 0,
                      "target_iqn": "iqn.2010-10.org.openstack:v\udcff"}}),
])
def test_lone_surrogates_in_a_share_or_iqn_are_invalid_input(field, ci):
    ops, _ = _ops()
    with pytest.raises(exceptions.InvalidInput) as err:
        ops.attach_volume(ci, "vm-1")
    assert cli_errors.exit_code_of(err.value) == cli_errors.EXIT_USAGE
    assert field in str(err.value).lower() or "share" in str(err.value).lower()


@pytest.mark.parametrize("name", ["vm", "share", "iscsi:iqn.x"])
def test_lock_names_refuse_lone_surrogates_naming_the_field(name):
    reg = LockRegistry()
    kind = "vm" if name == "vm" else "share"
    with pytest.raises(exceptions.InvalidInput) as err:
        with reg.hold("host", name + "\udcff" if kind == "vm" else None,
                      [name + "\udcff"] if kind == "share" else []):
            pass
    expected = {"vm": "instance_name", "share": "share", "iscsi:iqn.x": "target_iqn"}[name]
    assert err.value.field.startswith(expected)


@pytest.mark.parametrize("lun", [2 ** 63, 2 ** 64 - 1])
def test_lun_of_2_63_or_more_is_refused_at_parse_time(lun):
    ci = {"driver_volume_type": "iscsi",
          "data": {"target_portal": "10.0.0.1:3260", "target_iqn": "iqn.2010-10.org.x:v",
                   "target_lun": lun}}
    with pytest.raises(exceptions.InvalidInput) as err:
        connection.parse_iscsi(ci)
    assert "target_lun" in str(err.value)
    ci["data"]["target_lun"] = 2 ** 63 - 1
    assert connection.parse_iscsi(ci).targets[0].lun == 2 ** 63 - 1


def test_external_locks_serialise_two_registries_of_one_process(tmp_path):
    one = LockRegistry(external=True, lock_path=str(tmp_path))
    two = LockRegistry(external=True, lock_path=str(tmp_path))
    inside = threading.Event()
    release = threading.Event()
    entered_two = threading.Event()

    def first():
        with one.vm("host", "vm-1"):
            inside.set()
            release.wait(5)

    def second():
        inside.wait(5)
        with two.vm("HOST", "VM-1"):
            entered_two.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert inside.wait(5)
    assert not entered_two.wait(0.3), "the second VolumeOps' lock did not wait"
    release.set()
    assert entered_two.wait(5)
    for t in threads:
        t.join(5)


def test_unreadable_answer_during_attach_cleans_up_and_exits_3():
    conf = opts.new_conf(hyperv_volume_attach_retry_count=0)
    host = HostDouble()

    def handler(script, params):
        answer = host.handler(script, params)
        if script.name == "attach_vhd":
            raise exceptions.ResponseUnreadable(host=host.host_name,
                                                reason="ParseError in the answer")
        return answer

    ops = smbvol.VolumeOps(FakeExecutor(handler, host=host.host_name), conf,
                           sleep=lambda s: None)
    ci = {"driver_volume_type": "smbfs",
          "data": {"export": "//fs01/vols", "name": "v.vhdx", "format": "vhdx"}}
    host.add_vm("vm-1")
    host.add_share("\\\\fs01\\vols", files=["v.vhdx"])
    with pytest.raises(exceptions.VolumeOperationFailed) as err:
        ops.attach_volume(ci, "vm-1")
    assert isinstance(err.value.__cause__, exceptions.ResponseUnreadable)
    assert host.disks_of("vm-1") == ()  # the clean-up detached what the host attached
    assert cli_errors.exit_code_of(err.value) == cli_errors.EXIT_CONNECTION


def test_a_secret_at_the_cut_of_a_long_record_is_masked_before_the_cut(caplog):
    share_pw = "Straddling-Secret-42"

    def handler(script, params):
        logging.getLogger("smbvol.envelope").warning("%s%s tail%s", "p" * 950, share_pw, "q" * 100)
        return envelope.ok({})

    from smbvol import scripts
    from smbvol.secret import Credential
    ex = FakeExecutor(handler, host="h")
    with caplog.at_level(logging.DEBUG):
        ex.run(scripts.render("mount_share", mapping_via_task=False),
               {"SharePath": "\\\\fs\\v", "ShareCredential": Credential("u", share_pw)})
    texts = [r.getMessage() for r in caplog.records
             if r.name == "smbvol.envelope" and "tail" in r.getMessage()]
    assert texts and all(len(t) <= 1000 for t in texts)
    assert not any(share_pw[:4] in t for t in texts), texts


def test_local_executor_on_windows_starts_the_system_powershell(monkeypatch):
    from smbvol.executors import local
    monkeypatch.setattr(local, "_WINDOWS", True)
    monkeypatch.setenv("SystemRoot", "C:\\Windows")
    monkeypatch.delenv("PROCESSOR_ARCHITEW6432", raising=False)
    asked = []
    monkeypatch.setattr(local.shutil, "which", lambda p: asked.append(p) or p)
    assert LocalExecutor().command_line()[0] == \
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert LocalExecutor(powershell_path="pwsh").command_line()[0] == "pwsh"
    monkeypatch.setattr(local, "_WINDOWS", False)
    asked.clear()
    LocalExecutor().command_line()
    assert asked == ["powershell.exe"]  # elsewhere the configured name, on PATH
