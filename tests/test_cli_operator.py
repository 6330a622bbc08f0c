"""The command line as an operator meets it: secrets never echoed, passwords never cut,
one row per host, errors streamed as hosts end, messages naming the flag and the fix."""

from __future__ import annotations

import csv
import io
import json
import os
import threading

import pytest

from smbvol.cli import errors
from smbvol.secret import Credential, Secret
from tests.test_cli import (  # noqa: F401  (clean_env is an autouse fixture)
    EXPORT,
    IMAGE,
    SHARE,
    TTY,
    VM_NAME,
    VOLUME,
    clean_env,
    make_double,
    run,
)

SECRET = "Secret1"
DRY = ["volume", "attach", "--dry-run", VM_NAME] + VOLUME


def smb_doc(options, **data):
    return json.dumps({"driver_volume_type": "smbfs",
                       "data": dict({"export": EXPORT, "name": IMAGE, "options": options},
                                    **data)})


def attach_ci(options, double, *extra, stdin=None, **kw):
    return run(["volume", "attach", VM_NAME, "--connection-info", "-", "-f", "json"]
               + list(extra), {"localhost": double}, stdin=stdin or smb_doc(options), **kw)


def never_called(conf, host):
    raise AssertionError("a host was contacted")


# -- 1: no message quotes a raw options string ----------------------------------------

@pytest.mark.parametrize("options", [
    "username=svc password=" + SECRET,
    "username=svc;password=" + SECRET,
    "-o username=svc ; pass=" + SECRET,
    "--username svc --password " + SECRET,
])
@pytest.mark.parametrize("dry", [False, True])
def test_options_with_the_wrong_separator_never_echo_the_password(options, dry):
    double = make_double(credential=Credential("svc", Secret(SECRET)))
    extra = ["--dry-run"] if dry else []
    res = attach_ci(options, double, *extra)
    assert res.rc == errors.EXIT_USAGE, res
    assert SECRET not in res.out + res.err
    assert "separate mount options with commas" in res.err
    assert double.mappings == ()


# -- 2: a comma in a password is never cut ---------------------------------------------

def test_a_single_comma_in_the_password_is_refused_not_cut():
    double = make_double(credential=Credential("svc", Secret("Sec")))
    for dry in ([], ["--dry-run"]):
        res = attach_ci("-o username=svc,password=Sec,ret1", double, *dry)
        assert res.rc == errors.EXIT_USAGE, res
        assert "',,'" in res.err and "ret1" not in res.err + res.out
    assert double.mappings == ()


def test_a_doubled_comma_reaches_the_host_as_one_comma():
    double = make_double(credential=Credential("svc", Secret("Sec,ret1")))
    res = attach_ci("-o username=svc,password=Sec,,ret1", double)
    assert res.rc == 0, res
    assert double.mappings[0].credential.password.reveal() == "Sec,ret1"
    assert "ret1" not in res.out + res.err


# -- 3: no abbreviations, no echoed values, password files checked in the dry run ------

@pytest.mark.parametrize("argv", [
    DRY + ["--share-pass", SECRET],
    DRY + ["--password-f", SECRET],
    ["--password-f", SECRET] + DRY,
    DRY + ["--share-password=" + SECRET],
    DRY + ["--passwd", SECRET],
])
def test_password_like_options_are_refused_without_their_value(argv):
    res = run(argv, factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    assert SECRET not in res.out + res.err
    assert "passwords are never given on the command line" in res.err
    assert res.out == ""


@pytest.mark.parametrize("argv, named", [
    (DRY + ["--bogus=" + SECRET, SECRET + "x"], "--bogus"),
    (DRY + ["--disk-b", "ide"], "--disk-b"),            # no abbreviation of --disk-bus
    (DRY + ["--share-user", "svc"], "--share-user"),    # ... nor of --share-username
    (["--hos", "hv01"] + DRY, "--hos"),                 # global options neither
    (["complete", "--sh", "bash"], "--sh"),             # nor cliff's own commands
])
def test_unknown_options_are_named_never_their_values(argv, named):
    res = run(argv, factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    assert named in res.err
    assert SECRET not in res.out + res.err and "ide" not in res.err.split("error:")[-1]


def test_an_unknown_command_never_echoes_option_values():
    res = run(["volume", "atach", "--export", SECRET])
    assert res.rc == errors.EXIT_USAGE
    assert "'volume atach' is not an smbvol command" in res.err
    assert SECRET not in res.err


@pytest.mark.parametrize("argv", [
    DRY + ["--share-username", "svc", "--share-password-file", "/no/such/file"],
    ["--password-file", "/no/such/file"] + DRY,
])
def test_the_dry_run_checks_password_files(argv):
    res = run(argv, factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    assert "/no/such/file" in res.err and "No such file" in res.err
    assert res.out == ""


# -- 5: ignored options are named, credentials that would be lost are refused --------

def test_unknown_mount_options_are_warned_by_name(monkeypatch):
    double = make_double()
    res = attach_ci("-o foo=Val1ue,vers=3.0", double)
    assert res.rc == 0, res
    assert "ignoring foo" in res.err and "Val1ue" not in res.err


@pytest.mark.parametrize("options, why", [
    ("-o credentials=/etc/cifs.cred", "credentials= names a file"),
    ("-o username=svc,passwd=" + SECRET, "'passwd=' is not a mount.cifs option"),
    ("-o username=svc,pwd=" + SECRET, "'pwd=' is not a mount.cifs option"),
    ("--username svc --password " + SECRET, "separate mount options with commas"),
])
def test_options_meant_as_credentials_are_refused(options, why):
    double = make_double()
    res = attach_ci(options, double)
    assert res.rc == errors.EXIT_USAGE, res
    assert why in res.err and SECRET not in res.err + res.out
    assert double.mappings == () and double.vms[VM_NAME].disks == ()


# -- 6: the share password for a user named in the connection_info ---------------------

def test_connection_info_user_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("SMBVOL_SHARE_PASSWORD", SECRET)
    double = make_double(credential=Credential("svc", Secret(SECRET)))
    res = attach_ci("-o username=svc", double)
    assert res.rc == 0, res
    assert double.mappings[0].credential == Credential("svc", Secret(SECRET))
    assert SECRET not in res.out + res.err


def test_connection_info_user_takes_the_password_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    os.chmod(path, 0o600)
    double = make_double(credential=Credential("svc", Secret(SECRET)))
    res = attach_ci("-o username=svc", double, "--share-password-file", str(path))
    assert res.rc == 0, res
    assert double.mappings[0].credential.password.reveal() == SECRET


def test_connection_info_user_is_prompted_for_on_a_terminal(monkeypatch):
    asked = []

    def getpass(prompt):
        asked.append(prompt)
        return SECRET

    monkeypatch.setattr("getpass.getpass", getpass)
    double = make_double(credential=Credential("CORP\\svc", Secret(SECRET)))
    tty = TTY(smb_doc("-o username=CORP\\svc"))
    res = run(["volume", "attach", VM_NAME, "--connection-info", "-"], {"localhost": double},
              stdin=tty)
    assert res.rc == 0, res
    assert asked == ["Password of share user CORP\\svc: "]


def test_a_password_file_nobody_uses_is_refused(tmp_path):
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    res = run(DRY + ["--share-password-file", str(path)], factory=never_called)
    assert res.rc == errors.EXIT_USAGE
    assert "--share-password-file goes with --share-username" in res.err


# -- 7: one row per host, whatever the count --------------------------------------------

def failing_factory(doubles, failing):
    def factory(conf, host):
        if host in failing:
            raise ConnectionRefusedError("refused by %s" % host)
        return doubles[host].executor(host)
    return factory


@pytest.mark.parametrize("hosts", [["a"], ["a", "b"], ["b", "a", "c"]])
@pytest.mark.parametrize("fmt", ["json", "csv", "value", "table"])
def test_every_host_has_a_row_even_a_failed_one(hosts, fmt):
    doubles = {h: make_double(h) for h in hosts}
    argv = [x for h in hosts for x in ("--host", h)] + ["host", "show", "-f", fmt,
                                                       "-c", "host", "-c", "status"]
    res = run(argv, factory=failing_factory(doubles, {"a"}))
    assert res.rc in (errors.EXIT_FAILED, errors.EXIT_PARTIAL), res
    if fmt == "json":
        rows = [(r["host"], r["status"]) for r in json.loads(res.out)]
    elif fmt == "csv":
        rows = [(r["host"], r["status"]) for r in csv.DictReader(io.StringIO(res.out))]
    elif fmt == "value":
        rows = [tuple(line.split()) for line in res.out.splitlines()]
    else:
        rows = [tuple(c.strip() for c in line.strip("|").split("|"))
                for line in res.out.splitlines() if line.startswith("|")][1:]
    assert rows == [(h, "error" if h == "a" else "ok") for h in hosts]


# -- 8: -c checked first, CSV that reads back, empty cells alike ------------------------

@pytest.mark.parametrize("argv", [
    ["host", "show"], ["volume", "list"], ["volume", "attach", VM_NAME] + VOLUME,
    ["volume", "detach", VM_NAME] + VOLUME, ["share", "mount"] + VOLUME,
    ["share", "unmount", "--export", EXPORT],
])
def test_an_unknown_column_fails_before_any_host_is_contacted(argv):
    res = run(["--host", "hv01"] + argv + ["-c", "bogus"], factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    assert "unknown column(s) bogus for -c" in res.err


def test_csv_reads_back_the_printed_path_with_the_csv_module():
    double = make_double()
    res = run(["volume", "attach", VM_NAME, "-f", "csv"] + VOLUME, {"localhost": double})
    assert res.rc == 0, res
    (row,) = csv.DictReader(io.StringIO(res.out))
    assert row["disk_path"] == SHARE + "\\" + IMAGE == "\\\\fs01\\vols\\volume-1.vhdx"


def test_empty_cells_read_the_same_in_every_text_format():
    cells = {}
    for fmt in ("table", "csv", "value"):
        double = make_double()
        res = run(["volume", "attach", VM_NAME, "-f", fmt, "-c", "host", "-c", "volume_id",
                   "-c", "warnings", "-c", "error"] + VOLUME, {"localhost": double})
        assert res.rc == 0, res
        if fmt == "csv":
            (row,) = csv.DictReader(io.StringIO(res.out))
            cells[fmt] = (row["volume_id"], row["warnings"], row["error"])
        elif fmt == "value":
            cells[fmt] = tuple(res.out.rstrip("\n").split(" ")[1:])
        else:
            line = [x for x in res.out.splitlines() if x.startswith("|")][1]
            cells[fmt] = tuple(c.strip() for c in line.strip("|").split("|"))[1:]
    assert cells == {"table": ("", "", ""), "csv": ("", "", ""), "value": ("", "", "")}
    double = make_double()
    res = run(["volume", "attach", VM_NAME, "-f", "json"] + VOLUME, {"localhost": double})
    (row,) = json.loads(res.out)
    assert row["volume_id"] is None and row["error"] is None and row["warnings"] == []


# -- 9: each host's outcome as it ends ----------------------------------------------------

@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_a_failed_hosts_error_is_printed_when_it_ends(quiet):
    doubles = {h: make_double(h) for h in ("a", "b")}
    err = io.StringIO()
    seen = []

    def factory(conf, host):
        if host == "a":
            raise ConnectionRefusedError("refused by a")
        seen.append(err.getvalue())  # what stderr holds when b starts
        return doubles[host].executor(host)

    res = run(quiet + ["--parallel", "1", "--host", "a", "--host", "b", "host", "show",
                       "-f", "json"], stderr=err, factory=factory)
    assert res.rc == errors.EXIT_PARTIAL, res
    assert seen and "smbvol: error: a: " in seen[0]
    assert res.err.count("smbvol: error: a: ") == 1  # once, not again at the end


def test_progress_and_log_lines_never_share_a_line(caplog):
    doubles = {h: make_double(h) for h in ("a", "b", "c")}
    warned = threading.Event()

    def factory(conf, host):
        if host == "b":
            import logging
            logging.getLogger("smbvol.cli.test").warning("a warning of %s", host)
            warned.set()
            raise ConnectionRefusedError("refused by b")
        return doubles[host].executor(host)

    res = run(["--host", "a", "--host", "b", "--host", "c", "host", "show", "-f", "json"],
              stderr=TTY(), factory=factory)
    assert warned.is_set()
    lines = res.err.splitlines()
    assert all(line.startswith("smbvol: ") for line in lines), res.err
    assert "\r" not in res.err
    assert sum("hv" not in x and x.startswith("smbvol: [") for x in lines) == 2  # a and c


# -- 11: flag errors name the flag ----------------------------------------------------------

@pytest.mark.parametrize("flags, starts, needs", [
    (["--export", "fs01/vols", "--name", IMAGE], "invalid --export 'fs01/vols': ",
     "//host/share"),
    (["--export", EXPORT, "--name", "volume-1.qcow2"], "invalid --name 'volume-1.qcow2': ",
     "qemu-img convert -O vhdx"),
    (["--export", EXPORT, "--name", "volume-1.qcow2", "--format", "vhd"],
     "invalid --name 'volume-1.qcow2': ", "qemu-img convert -O vhdx"),
    (["--export", EXPORT, "--name", "volume-1"], "invalid --format: is required when --name",
     "'vhd' or 'vhdx'"),
    (["--export", "\\\\fs01\\vols\\a|b", "--name", IMAGE],
     "invalid --export '\\\\fs01\\vols\\a|b': ", "'|'"),
])
def test_flag_errors_name_the_flag_without_python_reprs(flags, starts, needs):
    res = run(["volume", "attach", "--dry-run", VM_NAME] + flags, factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    line = res.err.strip()
    assert line.startswith("smbvol: error: " + starts), line
    assert needs in line
    for python in ("None", "data.", "connection_info", "\\\\\\\\"):
        assert python not in line, line


def test_connection_info_errors_show_no_python_reprs():
    res = run(["volume", "attach", "--dry-run", VM_NAME, "--connection-info", "-"],
              stdin=json.dumps({"driver_volume_type": "smbfs", "data": {"name": IMAGE}}))
    assert res.rc == errors.EXIT_USAGE
    assert "invalid connection_info field data.export: is required" in res.err
    res = run(["volume", "attach", "--dry-run", VM_NAME, "--connection-info", "-"],
              stdin=json.dumps({"driver_volume_type": "smbfs", "data": ["x"]}))
    assert res.rc == errors.EXIT_USAGE
    assert "must be a dict" not in res.err and "must be a JSON object" in res.err


# -- 13: no host on a machine without PowerShell ----------------------------------------------

def test_without_host_and_powershell_the_hint_names_host_and_powershell_path(tmp_path):
    conf = tmp_path / "smbvol.conf"
    conf.write_text("[smbvol]\npowershell_path = /no/such/powershell.exe\n")
    res = run(["--config-file", str(conf), "host", "show"])
    assert res.rc == errors.EXIT_USAGE, res
    assert "--host" in res.err and "[smbvol] powershell_path" in res.err
    assert "fix the option named" not in res.err


# -- the README's CLI section says what the command does ------------------------------------

def _readme_cli_section():
    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.rst"),
              encoding="utf-8") as f:
        text = f.read()
    return text.split("The ``smbvol`` command\n", 1)[1].split("\nChoosing an executor\n", 1)[0]


def test_readme_synopsis_options_exist_on_each_command():
    import re

    section = _readme_cli_section()
    synopsis = section.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    command = None
    for line in synopsis.splitlines():
        words = line.split()
        if words[:1] == ["smbvol"]:
            command = words[1:3]
        options = set(re.findall(r"--[a-z][a-z-]+", line))
        if command[0] in ("volume", "share") and "(same" in line:
            options |= {"--connection-info", "--export", "--name"}
        res = run(command + ["--help"], factory=never_called)
        assert res.rc == 0, res
        for option in options:
            assert option in res.out, (command, option)


def test_readme_messages_are_the_commands_messages(tmp_path):
    section = " ".join(_readme_cli_section().split())
    res = run(DRY[:4] + ["--export", "fs01/vols", "--name", IMAGE], factory=never_called)
    assert "invalid --export 'fs01/vols': is not a UNC path; use //host/share[/sub/dir]" in \
        res.err
    assert "``invalid --export 'fs01/vols': is not a UNC path; use //host/share[/sub/dir] ...``" \
        in section
    conf = tmp_path / "c.conf"
    conf.write_text("[smbvol]\ntransport = ftp\n")
    res = run(["--config-file", str(conf), "host", "show"], factory=never_called)
    quoted = "invalid configuration option [smbvol] transport: 'ftp' is not one of local, " \
             "winrm, psrp"
    assert quoted in res.err and "``%s``" % quoted in section
    conf.write_text("[smbvol]\ntrnsport = psrp\n")
    res = run(["--config-file", str(conf)] + DRY, factory=never_called)
    quoted = "[smbvol] trnsport is not an smbvol option and is ignored; did you mean transport?"
    assert quoted in res.err and "``%s``" % quoted in section


# -- 4: the masking rule as the command applies it -----------------------------------------

@pytest.mark.parametrize("password", ["o", "ro", "err"])
def test_a_short_password_is_never_revealed_by_what_gets_starred(monkeypatch, password):
    """A one-, two- or three-character secret cannot be masked by substitution (``smbv***l:
    err***r`` would tell it): the command withholds the message, the same whatever the
    secret, and still says which host failed and how."""
    monkeypatch.setenv("SMBVOL_PASSWORD", password)

    def factory(conf, host):
        raise ConnectionRefusedError("connection error from %s: response was empty" % host)

    res = run(["--host", "hv01", "--username", "admin", "host", "show", "-f", "json"],
              factory=factory)
    assert res.rc == errors.EXIT_FAILED, res
    (line,) = res.err.splitlines()
    assert line.startswith("smbvol: error: hv01: [text withheld: a configured secret is "
                           "shorter than 4 characters"), line
    assert "***" not in res.err + res.out
    (row,) = json.loads(res.out)
    assert row["status"] == "error" and row["error"].startswith("[text withheld")
    others = {p: None for p in ("o", "ro", "err") if p != password}
    for other in others:
        monkeypatch.setenv("SMBVOL_PASSWORD", other)
        again = run(["--host", "hv01", "--username", "admin", "host", "show", "-f", "json"],
                    factory=factory)
        assert again.err == res.err and again.out == res.out  # independent of the secret


def test_a_password_of_four_characters_is_masked_where_it_occurs(monkeypatch):
    monkeypatch.setenv("SMBVOL_PASSWORD", "oops")

    def factory(conf, host):
        raise ConnectionRefusedError("server said oops for user admin")

    res = run(["--host", "hv01", "--username", "admin", "host", "show", "-f", "json"],
              factory=factory)
    assert "server said *** for user admin" in res.err
    assert "oops" not in res.err + res.out
    assert "smbvol: error: hv01: " in res.err  # only the secret is starred
