"""The smbvol command end to end: main() against the host double, every command and format."""

from __future__ import annotations

import csv
import io
import json
import os
import threading

import pytest
import yaml

from smbvol import exceptions
from smbvol.cli import app as cli_app
from smbvol.cli import errors
from smbvol.executors.fake import FakeExecutor
from smbvol.secret import Credential, Secret
from smbvol.testing import HostDouble

SHARE = r"\\fs01\vols"
EXPORT = "//fs01/vols"
IMAGE = "volume-1.vhdx"
VM_NAME = "instance-0001"
SHARE_PASSWORD = "Zq8!share-PASSWORD-7731,=;x"
HOST_PASSWORD = "Hx5!remoting-PASSWORD-9902"
OPTIONS_PASSWORD = "Ci9-options-PASSWORD-4411"

FORMATS = ("table", "json", "yaml", "value", "csv")


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def rows(self):
        return json.loads(self.out)

    def __repr__(self):
        return "<rc=%s out=%r err=%r>" % (self.rc, self.out, self.err)


class TTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("SMBVOL_PASSWORD", "SMBVOL_SHARE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    def no_sleep(seconds):
        raise AssertionError("a test slept for %s s" % seconds)

    monkeypatch.setattr("time.sleep", no_sleep)


@pytest.fixture
def conf_file(tmp_path):
    """Configuration without retries (the unreachable hosts below are transient errors)."""
    path = tmp_path / "smbvol.conf"
    path.write_text("[hyperv]\nvolume_attach_retry_count = 0\n"
                    "[smbvol]\nconnection_retry_count = 0\n")
    return str(path)


def make_double(name="hv01", credential=None):
    double = HostDouble(name)
    double.add_vm(VM_NAME)
    double.add_share(SHARE, files=[IMAGE, "volume-2.vhdx"], credential=credential)
    return double


def run(argv, doubles=None, *, stdin="", stderr=None, factory=None):
    """main(argv) with each host answered by its double (``doubles``: host → HostDouble)."""
    if factory is None and doubles is not None:
        def factory(conf, host):
            return doubles[host].executor(host)
    out = io.StringIO()
    err = stderr if stderr is not None else io.StringIO()
    rc = cli_app.main(list(argv), executor_factory=factory,
                      stdin=stdin if not isinstance(stdin, str) else io.StringIO(stdin),
                      stdout=out, stderr=err)
    return Result(rc, out.getvalue(), err.getvalue())


VOLUME = ["--export", EXPORT, "--name", IMAGE]


def prepared(command):
    """A double in the state the command needs, and the command line."""
    double = make_double()
    if command == "volume attach":
        argv = ["volume", "attach", VM_NAME] + VOLUME
    elif command == "volume detach":
        double.attach_disk(VM_NAME, SHARE + "\\" + IMAGE)
        argv = ["volume", "detach", VM_NAME] + VOLUME
    elif command == "volume list":
        double.attach_disk(VM_NAME, SHARE + "\\" + IMAGE)
        argv = ["volume", "list", VM_NAME]
    elif command == "share mount":
        argv = ["share", "mount"] + VOLUME
    elif command == "share unmount":
        double.add_mapping(SHARE, owned=True)
        argv = ["share", "unmount", "--export", EXPORT]
    else:
        argv = ["host", "show"]
    return double, argv


COMMANDS = ("volume attach", "volume detach", "volume list", "share mount", "share unmount",
            "host show")

#: A column each command's result has, and its value after running on the prepared double.
EXPECTED = {
    "volume attach": ("disk_path", SHARE + "\\" + IMAGE),
    "volume detach": ("removed", True),
    "volume list": ("disk_path", SHARE + "\\" + IMAGE),
    "share mount": ("disk_path", SHARE + "\\" + IMAGE),
    "share unmount": ("removed", True),
    "host show": ("host_name", "hv01"),
}


def parse_output(fmt, text):
    """The rows printed in ``fmt`` as a list of dicts (value: a list of lists)."""
    if fmt == "json":
        return json.loads(text)
    if fmt == "yaml":
        return yaml.safe_load(text)
    if fmt == "csv":
        # Plain CSV: what the command prints reads back with the csv module's defaults.
        return list(csv.DictReader(io.StringIO(text)))
    if fmt == "table":
        lines = [line for line in text.splitlines() if line.startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        return [dict(zip(header, [c.strip() for c in line.strip("|").split("|")]))
                for line in lines[1:]]
    return [line.split(" ") for line in text.splitlines()]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_in_every_format(command, fmt):
    double, argv = prepared(command)
    column, expected = EXPECTED[command]
    if fmt == "value":
        res = run(argv + ["-f", fmt, "-c", "host", "-c", "status", "-c", column],
                  {"localhost": double})
    else:
        res = run(argv + ["-f", fmt], {"localhost": double})
    assert res.rc == 0, res
    assert res.err == ""
    rows = parse_output(fmt, res.out)
    assert len(rows) == 1
    row = rows[0]
    if fmt == "value":
        assert row == ["localhost", "ok", str(expected)]
        return
    assert row["host"] == "localhost"
    assert row["status"] == "ok"
    value = row[column]
    if fmt in ("table", "csv"):
        assert value == str(expected)
    else:
        assert value == expected


def test_attach_changes_the_host_and_is_idempotent():
    double = make_double()
    res = run(["volume", "attach", VM_NAME, "-f", "json"] + VOLUME, {"localhost": double})
    assert res.rc == 0, res
    (row,) = res.rows()
    assert row["changed"] is True
    assert [d.path for d in double.disks_of(VM_NAME)] == [SHARE + "\\" + IMAGE]
    again = run(["volume", "attach", VM_NAME, "-f", "json"] + VOLUME, {"localhost": double})
    assert again.rc == 0
    assert again.rows()[0]["changed"] is False
    assert (again.rows()[0]["controller_number"], again.rows()[0]["controller_location"]) == (
        row["controller_number"], row["controller_location"])


def test_volume_list_of_every_vm_has_a_row_per_disk():
    double = make_double()
    double.add_vm("instance-0002")
    double.attach_disk(VM_NAME, SHARE + "\\" + IMAGE)
    double.attach_disk("instance-0002", SHARE + "\\volume-2.vhdx")
    res = run(["volume", "list", "-f", "json"], {"localhost": double})
    assert res.rc == 0, res
    got = sorted((r["vm_name"], r["disk_path"]) for r in res.rows())
    assert got == [(VM_NAME, SHARE + "\\" + IMAGE), ("instance-0002", SHARE + "\\volume-2.vhdx")]


def test_connection_info_from_stdin_with_credentials():
    double = make_double(credential=Credential("svc", Secret(OPTIONS_PASSWORD)))
    doc = {"driver_volume_type": "smbfs", "serial": "vol-42",
           "data": {"export": EXPORT, "name": IMAGE,
                    "options": "-o username=svc,password=%s" % OPTIONS_PASSWORD}}
    res = run(["volume", "attach", VM_NAME, "--connection-info", "-", "-f", "json"],
              {"localhost": double}, stdin=json.dumps({"connection_info": doc}))
    assert res.rc == 0, res
    assert res.rows()[0]["volume_id"] == "vol-42"
    assert double.mappings[0].credential.password.reveal() == OPTIONS_PASSWORD
    assert OPTIONS_PASSWORD not in res.out + res.err


def test_connection_info_file(tmp_path):
    double = make_double()
    path = tmp_path / "ci.json"
    path.write_text(json.dumps({"driver_volume_type": "smbfs",
                                "data": {"export": EXPORT, "name": "volume-1",
                                         "format": "vhdx"}}))
    res = run(["share", "mount", "--connection-info", str(path), "-f", "json"],
              {"localhost": double})
    assert res.rc == 0, res
    assert res.rows()[0]["disk_path"] == SHARE + "\\" + IMAGE


def test_share_password_reaches_the_host_but_is_never_shown(monkeypatch, tmp_path, caplog):
    caplog.set_level("DEBUG")
    double = make_double(credential=Credential("svc", Secret(SHARE_PASSWORD)))
    monkeypatch.setenv("SMBVOL_SHARE_PASSWORD", SHARE_PASSWORD)
    log = tmp_path / "smbvol.log"
    res = run(["-vv", "--debug", "--log-file", str(log), "volume", "attach", VM_NAME,
               "--share-username", "svc", "-f", "json"] + VOLUME, {"localhost": double})
    assert res.rc == 0, res
    (mapping,) = double.mappings
    assert mapping.credential.password.reveal() == SHARE_PASSWORD  # it did travel
    text = res.out + res.err + log.read_text() + caplog.text
    assert "svc" in log.read_text() or "attach" in log.read_text()
    assert SHARE_PASSWORD not in text


def test_secrets_absent_when_the_operation_fails(monkeypatch, tmp_path, caplog):
    caplog.set_level("DEBUG")
    double = make_double(credential=Credential("svc", Secret("another-one")))
    monkeypatch.setenv("SMBVOL_SHARE_PASSWORD", SHARE_PASSWORD)
    monkeypatch.setenv("SMBVOL_PASSWORD", HOST_PASSWORD)
    log = tmp_path / "smbvol.log"
    res = run(["-vv", "--debug", "--log-file", str(log), "--host", "hv01", "--username",
               "admin", "volume", "attach", VM_NAME, "--share-username", "svc"] + VOLUME,
              {"hv01": double})
    assert res.rc == errors.EXIT_FAILED, res
    assert "Traceback" in res.err  # --debug
    text = res.out + res.err + log.read_text() + caplog.text
    for secret in (SHARE_PASSWORD, HOST_PASSWORD):
        assert secret not in text


def test_host_password_goes_to_the_executor_configuration(monkeypatch, caplog):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("SMBVOL_PASSWORD", HOST_PASSWORD)
    seen = {}
    double = make_double()

    def factory(conf, host):
        seen.update(password=conf.smbvol.password, user=conf.smbvol.username,
                    transport=conf.smbvol.transport, auth=conf.smbvol.auth)
        return double.executor(host)

    res = run(["--host", "hv01", "--username", "DOM\\admin", "--auth", "kerberos", "host",
               "show", "-f", "json"], factory=factory)
    assert res.rc == 0, res
    assert seen == {"password": HOST_PASSWORD, "user": "DOM\\admin", "transport": "psrp",
                    "auth": "kerberos"}
    assert HOST_PASSWORD not in res.out + res.err + caplog.text


@pytest.mark.parametrize("option", ["--password", "--password=x", "--share-password"])
def test_no_password_option(option):
    res = run(["--host", "hv01", option, "Hunter2-secret", "host", "show"], factory=None)
    assert res.rc == errors.EXIT_USAGE
    assert "Hunter2-secret" not in res.out + res.err
    assert "SMBVOL_PASSWORD" in res.err


def test_password_prompt_only_on_a_terminal(monkeypatch):
    double = make_double()
    prompts = []

    def fake_getpass(prompt="Password: ", stream=None):
        prompts.append(prompt)
        return HOST_PASSWORD

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    argv = ["--host", "hv01", "--username", "admin", "--auth", "ntlm", "host", "show"]
    res = run(argv, {"hv01": double})
    assert res.rc == errors.EXIT_USAGE
    assert "SMBVOL_PASSWORD" in res.err and prompts == []
    res = run(argv, {"hv01": double}, stdin=TTY(""))
    assert res.rc == 0, res
    assert prompts == ["Password for admin on hv01: "]
    assert HOST_PASSWORD not in res.out + res.err


def test_password_file(tmp_path):
    seen = []
    double = make_double()
    path = tmp_path / "pw"
    path.write_text(HOST_PASSWORD + "\n")
    path.chmod(0o600)

    def factory(conf, host):
        seen.append(conf.smbvol.password)
        return double.executor(host)

    res = run(["--host", "hv01", "--username", "admin", "--password-file", str(path), "host",
               "show"], factory=factory)
    assert res.rc == 0, res
    assert seen == [HOST_PASSWORD]
    assert res.err == ""


def test_many_hosts_one_unreachable(conf_file):
    doubles = {"hv01": make_double("hv01"), "hv02": make_double("hv02")}

    def factory(conf, host):
        if host == "hv03":
            def refuse(script, params):
                raise exceptions.TransportError(host=host, reason="connection refused")
            return FakeExecutor(refuse, host=host)
        return doubles[host].executor(host)

    res = run(["--config-file", conf_file, "--host", "hv01", "--host", "hv03", "--host",
               "hv02", "volume", "attach", VM_NAME, "-f", "json"] + VOLUME, factory=factory)
    assert res.rc == errors.EXIT_PARTIAL, res
    rows = {r["host"]: r for r in res.rows()}
    assert [r["host"] for r in res.rows()] == ["hv01", "hv03", "hv02"]
    assert rows["hv01"]["status"] == rows["hv02"]["status"] == "ok"
    assert rows["hv03"]["status"] == "error"
    assert "connection refused" in rows["hv03"]["error"]
    assert rows["hv01"]["disk_path"] == SHARE + "\\" + IMAGE
    for name in ("hv01", "hv02"):
        assert len(doubles[name].disks_of(VM_NAME)) == 1
    lines = res.err.splitlines()
    errors_lines = [line for line in lines if line.startswith("smbvol: error:")]
    assert len(errors_lines) == 1 and "hv03" in errors_lines[0]
    assert "WinRM" in errors_lines[0]  # what to do
    assert lines[-1] == "smbvol: volume attach: 3 hosts, 2 succeeded, 1 failed (hv03)"


def test_many_hosts_one_operation_error_table():
    doubles = {"hv01": make_double("hv01"), "hv02": HostDouble("hv02")}
    res = run(["--host", "hv01", "--host", "hv02", "volume", "detach", VM_NAME] + VOLUME,
              doubles)
    assert res.rc == errors.EXIT_PARTIAL, res
    table = parse_output("table", res.out)
    assert [(r["host"], r["status"]) for r in table] == [("hv01", "ok"), ("hv02", "error")]
    assert "instance-0001" in table[1]["error"]


def test_hosts_file_and_parallelism(tmp_path):
    names = ["hv%02d" % i for i in range(1, 4)]
    doubles = {n: make_double(n) for n in names}
    path = tmp_path / "hosts"
    path.write_text("# Hyper-V cluster\n%s\n\n%s  # second\n%s\n" % tuple(names))
    barrier = threading.Barrier(3, timeout=10)

    def factory(conf, host):
        barrier.wait()  # only passes when the three hosts run at once
        return doubles[host].executor(host)

    res = run(["--hosts-file", str(path), "--parallel", "3", "host", "show", "-f", "json",
               "-c", "host", "-c", "host_name"], factory=factory)
    assert res.rc == 0, res
    assert res.rows() == [{"host": n, "host_name": n} for n in names]


def test_parallel_one_runs_one_host_at_a_time():
    doubles = {n: make_double(n) for n in ("a", "b", "c")}
    active, peak = [0], [0]
    lock = threading.Lock()

    class Counting(FakeExecutor):
        def handle(self, script, parameters, timeout):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                return super().handle(script, parameters, timeout)
            finally:
                with lock:
                    active[0] -= 1

    def factory(conf, host):
        return Counting(doubles[host].handler, host=host)

    res = run(["--host", "a", "--host", "b", "--host", "c", "--parallel", "1", "host",
               "show"], factory=factory)
    assert res.rc == 0, res
    assert peak[0] == 1


def test_progress_only_on_a_terminal():
    doubles = {n: make_double(n) for n in ("a", "b")}
    argv = ["--host", "a", "--host", "b", "host", "show", "-f", "json"]
    plain = run(argv, doubles)
    assert "\r" not in plain.err
    tty = run(argv, doubles, stderr=TTY())
    assert "\r" not in tty.err  # whole lines: a log line never lands inside one
    assert "smbvol: [1/2] " in tty.err and "smbvol: [2/2] " in tty.err
    assert "[1/2]" not in plain.err
    assert json.loads(tty.out) == json.loads(plain.out)


# -- exit codes -------------------------------------------------------------------------

def test_exit_0_and_1_vm_not_found():
    double = make_double()
    res = run(["volume", "attach", "no-such-vm", "-f", "json"] + VOLUME,
              {"localhost": double})
    assert res.rc == errors.EXIT_FAILED
    (row,) = json.loads(res.out)  # one row per host, a failed one too
    assert row["host"] == "localhost" and row["status"] == "error"
    (line,) = res.err.splitlines()
    assert line.startswith("smbvol: error: localhost:") and "no-such-vm" in line
    assert "smbvol volume list" in line  # what to do


@pytest.mark.parametrize("argv", [
    ["volume", "attach", VM_NAME, "--export", "//fs01", "--name", IMAGE],
    ["volume", "attach", VM_NAME, "--export", EXPORT, "--name", "bad|name.vhdx"],
    ["volume", "attach", VM_NAME, "--export", EXPORT, "--name", "a.vhd", "--format", "vhdx"],
    ["volume", "attach", VM_NAME, "--export", EXPORT],
    ["volume", "attach", VM_NAME, "--name", IMAGE],
    ["volume", "attach", VM_NAME, "--bogus"] + VOLUME,
    ["volume", "attach"] + VOLUME,
    ["volume", "frobnicate"],
    ["volume", "attach", VM_NAME, "-c", "no_such_column"] + VOLUME,
    ["--transport", "local", "--host", "hv01", "host", "show"],
    ["--parallel", "0", "--host", "hv01", "host", "show"],
    ["--config-file", "/nonexistent/smbvol.conf", "host", "show"],
    ["volume", "attach", VM_NAME, "--connection-info", "-"],
])
def test_exit_2_before_anything_runs(argv):
    double = make_double()
    res = run(argv, {"localhost": double, "hv01": double}, stdin="{not json")
    assert res.rc == errors.EXIT_USAGE, res
    assert double.calls == ()
    assert res.err.strip()


def test_exit_2_bad_configuration_value(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("[smbvol]\ntransport = carrier-pigeon\n")
    res = run(["--config-file", str(path), "host", "show"], {"localhost": make_double()})
    assert res.rc == errors.EXIT_USAGE
    assert "carrier-pigeon" in res.err


@pytest.mark.parametrize("exc", [
    exceptions.AuthenticationError(host="hv01", auth="ntlm", username="admin",
                                   reason="HTTP 401"),
    exceptions.CertificateError(host="hv01", reason="self-signed certificate"),
    exceptions.TransportError(host="hv01", reason="connection refused"),
])
def test_exit_3_connection_failures(exc, conf_file):
    def factory(conf, host):
        def fail(script, params):
            raise exc
        return FakeExecutor(fail, host=host)

    res = run(["--config-file", conf_file, "--host", "hv01", "volume", "attach", VM_NAME]
              + VOLUME, factory=factory)
    assert res.rc == errors.EXIT_CONNECTION, res
    (line,) = res.err.splitlines()
    assert "hv01" in line and " -- " in line


def test_exit_3_when_every_host_is_unreachable():
    def factory(conf, host):
        def fail(script, params):
            raise exceptions.TransportError(host=host, reason="no route to host")
        return FakeExecutor(fail, host=host)

    res = run(["--host", "a", "--host", "b", "host", "show"], factory=factory)
    assert res.rc == errors.EXIT_CONNECTION
    assert res.err.count("smbvol: error:") == 2


def test_exit_4_mixed_failures():
    doubles = {"a": make_double("a"), "b": make_double("b")}
    doubles["b"].fail_next("host_info", "unexpected", "WMI is broken")

    def factory(conf, host):
        if host == "c":
            def fail(script, params):
                raise exceptions.TransportError(host=host, reason="refused")
            return FakeExecutor(fail, host=host)
        return doubles[host].executor(host)

    res = run(["--host", "a", "--host", "b", "--host", "c", "host", "show", "-f", "json"],
              factory=factory)
    assert res.rc == errors.EXIT_PARTIAL
    assert [r["status"] for r in res.rows()] == ["ok", "error", "error"]


def test_debug_adds_the_traceback():
    double = make_double()
    res = run(["--debug", "volume", "attach", "nope"] + VOLUME, {"localhost": double})
    assert res.rc == errors.EXIT_FAILED
    assert "Traceback" in res.err and "VMNotFound" in res.err
    plain = run(["volume", "attach", "nope"] + VOLUME, {"localhost": make_double()})
    assert "Traceback" not in plain.err


def test_help_documents_the_exit_codes():
    res = run(["help"])
    assert res.rc == 0
    assert "exit codes:" in res.out
    for code in ("0  success", "1  the operation failed", "2  usage error",
                 "3  connection or authentication failure", "4  partial failure"):
        assert code in res.out
    for command in ("volume attach", "volume detach", "volume list", "share mount",
                    "share unmount", "host show"):
        assert command in res.out


def test_command_help_and_version():
    res = run(["help", "volume", "attach"])
    assert res.rc == 0 and "--dry-run" in res.out and "--share-username" in res.out
    res = run(["volume", "attach", "--help"])
    assert res.rc == 0 and "--connection-info" in res.out
    res = run(["--version"])
    assert res.rc == 0 and res.out.strip().startswith("smbvol ")


def test_no_command_prints_help_and_exits_2():
    res = run([])
    assert res.rc == errors.EXIT_USAGE
    assert "exit codes:" in res.err


def test_insecure_is_loud():
    double = make_double()
    res = run(["--host", "hv01", "--insecure", "host", "show", "-f", "json"], {"hv01": double})
    assert res.rc == 0
    assert "WARNING" in res.err and "NOT checked" in res.err


def test_config_file_defaults_and_command_line_wins(tmp_path):
    path = tmp_path / "smbvol.conf"
    path.write_text("[smbvol]\ntransport = winrm\nhost = hvcfg\nauth = kerberos\nport = 5999\n")
    seen = []

    def factory(conf, host):
        seen.append((host, conf.smbvol.transport, conf.smbvol.auth, conf.smbvol.port))
        return make_double(host).executor(host)

    res = run(["--config-file", str(path), "host", "show"], factory=factory)
    assert res.rc == 0, res
    assert seen == [("hvcfg", "winrm", "kerberos", 5999)]
    seen.clear()
    res = run(["--config-file", str(path), "--host", "hvcli", "--transport", "psrp",
               "--port", "5986", "host", "show"], factory=factory)
    assert res.rc == 0, res
    assert seen == [("hvcli", "psrp", "kerberos", 5986)]


def test_no_host_means_the_local_transport():
    seen = []

    def factory(conf, host):
        seen.append((host, conf.smbvol.transport))
        return make_double().executor(host)

    res = run(["host", "show"], factory=factory)
    assert res.rc == 0
    assert seen == [("localhost", "local")]


def test_default_factory_builds_the_configured_executor(monkeypatch):
    built = []

    def fake_get_executor(conf, host=None, name=None):
        built.append((conf.smbvol.transport, host))
        return make_double("hv01").executor(host or "localhost")

    monkeypatch.setattr("smbvol.executors.get_executor", fake_get_executor)
    monkeypatch.setenv("SMBVOL_PASSWORD", HOST_PASSWORD)
    res = run(["--host", "hv01", "--username", "admin", "--transport", "winrm", "host",
               "show"])
    assert res.rc == 0, res
    assert built == [("winrm", "hv01")]


def test_global_options_after_the_command():
    double = make_double()
    res = run(["host", "show", "--host", "hv01", "-f", "json"], {"hv01": double})
    assert res.rc == 0, res
    assert res.rows()[0]["host"] == "hv01"


def test_format_option_takes_disk_and_output_formats():
    double = make_double()
    res = run(["share", "mount", "--export", EXPORT, "--name", "volume-1", "--format", "vhdx",
               "--format", "json"], {"localhost": double})
    assert res.rc == 0, res
    assert json.loads(res.out)[0]["disk_path"] == SHARE + "\\" + IMAGE
    res = run(["share", "mount", "--format", "pdf"] + VOLUME, {"localhost": double})
    assert res.rc == errors.EXIT_USAGE


def test_env_is_not_required_for_local_runs():
    assert "SMBVOL_PASSWORD" not in os.environ
    res = run(["volume", "list", "-f", "json"], {"localhost": make_double()})
    assert res.rc == 0 and res.rows() == []
