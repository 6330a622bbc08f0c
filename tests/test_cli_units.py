"""The pieces of the command line: exit codes, hints, settings, output cells, the grammar."""

from __future__ import annotations

import io
import os

import pytest

from smbvol import exceptions
from smbvol.cli import errors, fanout, grammar, output, settings, volumes
from smbvol.quoting import ps_quote
from smbvol.secret import Credential, Secret
from tests.markers import needs_grammar


class Options:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


# -- exit codes and messages -------------------------------------------------------------

@pytest.mark.parametrize("exc,code", [
    (exceptions.InvalidInput(field="x", value="y", reason="z"), 2),
    (exceptions.InvalidConnectionInfo(field="data.export", value="y", reason="z"), 2),
    (exceptions.ConfigError(option="transport", reason="z"), 2),
    (errors.UsageError(reason="z"), 2),
    (errors.DryRunUnavailable(reason="z"), 2),
    (exceptions.TransportError(host="h", reason="refused"), 3),
    (exceptions.AuthenticationError(host="h", auth="ntlm", username="u", reason="401"), 3),
    (exceptions.CertificateError(host="h", reason="self-signed"), 3),
    (exceptions.ExecutorTimeout(host="h", elapsed=1.0, timeout=1), 3),
    (exceptions.RemoteFault(host="h", code="x", reason="y"), 3),
    (exceptions.VMNotFound(operation="attach_vhd", host="h", detail="no VM"), 1),
    (exceptions.NoEnvelope(operation="x", exit_code=1, excerpt=""), 1),
    (exceptions.VolumeOperationFailed(operation="x", volume_id="v", instance="i",
                                      reason="r"), 1),
    (RuntimeError("bug"), 1),
])
def test_exit_code_of(exc, code):
    assert errors.exit_code_of(exc) == code


def test_volume_operation_failed_after_connection_retries_is_a_connection_failure():
    try:
        try:
            raise exceptions.TransportError(host="h", reason="refused")
        except exceptions.TransportError as cause:
            raise exceptions.VolumeOperationFailed(operation="attach_vhd", volume_id="v",
                                                   instance="i", reason="r") from cause
    except exceptions.VolumeOperationFailed as exc:
        assert errors.exit_code_of(exc) == errors.EXIT_CONNECTION
        assert "WinRM" in errors.hint_of(exc)


@pytest.mark.parametrize("kind", sorted(exceptions.HOST_ERRORS))
def test_every_host_error_kind_has_a_hint(kind):
    exc = exceptions.host_error(kind, operation="attach_vhd", host="hv01", detail="d")
    hint = errors.hint_of(exc)
    assert hint and "\n" not in hint


def test_specific_hints():
    def hint(kind):
        return errors.hint_of(exceptions.host_error(kind, operation="o", host="h", detail="d"))

    assert "NT VIRTUAL MACHINE\\Virtual Machines" in hint("access_denied")
    assert "1219" in hint("mapping_conflict")
    assert "double hop" in hint("logon_session_missing")
    assert "--ca-file" in errors.hint_of(exceptions.CertificateError(host="h", reason="r"))


@pytest.mark.parametrize("codes,expected", [
    ([0], 0), ([0, 0, 0], 0), ([1], 1), ([3, 3], 3), ([0, 3], 4), ([1, 3], 4), ([0, 1, 0], 4),
    ([2], 2),
])
def test_combined_exit_code(codes, expected):
    assert errors.combined_exit_code(codes) == expected


def test_failure_is_one_line():
    exc = exceptions.VMNotFound(operation="attach_vhd", host="hv01",
                                detail="VM 'x\ny' not found\r\nat line 3")
    line = errors.failure(exc, "hv01").line()
    assert "\n" not in line and "\r" not in line
    assert line.startswith("smbvol: error: hv01: ") and " -- " in line


# -- settings --------------------------------------------------------------------------

def test_hosts_file(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("hv01\n# comment\n\nhv02   # rack 2\n")
    assert settings.read_hosts_file(str(path)) == ["hv01", "hv02"]
    path.write_text("hv01 hv02\n")
    with pytest.raises(exceptions.InvalidInput, match="line 1"):
        settings.read_hosts_file(str(path))
    path.write_text("# nothing\n")
    with pytest.raises(errors.UsageError, match="names no host"):
        settings.read_hosts_file(str(path))


def test_targets_dedupes_hosts_and_defaults_to_psrp():
    err = io.StringIO()
    target = settings.targets(Options(hosts=["a", "b", "a"], hosts_file=None, transport=None,
                                      config_files=None), err)
    assert target.hosts == ("a", "b") and target.transport == "psrp"
    assert target.conf.smbvol.transport == "psrp"
    local = settings.targets(Options(hosts=None, transport=None), err)
    assert local.hosts == ("localhost",) and local.local


def test_password_file_warns_when_others_can_read_it(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret-line\nsecond line\n")
    os.chmod(str(path), 0o644)
    err = io.StringIO()
    assert settings.read_password_file(str(path), "--password-file", err) == "s3cret-line"
    assert "chmod 600" in err.getvalue() and "s3cret" not in err.getvalue()
    os.chmod(str(path), 0o600)
    err = io.StringIO()
    settings.read_password_file(str(path), "--password-file", err)
    assert err.getvalue() == ""


def test_share_password_sources(tmp_path):
    opts = Options(share_password_file=None)
    env = {"SMBVOL_SHARE_PASSWORD": "from-env"}
    assert settings.share_password("u", opts, env, io.StringIO(), io.StringIO()).reveal() \
        == "from-env"
    with pytest.raises(errors.UsageError, match="SMBVOL_SHARE_PASSWORD"):
        settings.share_password("u", opts, {}, io.StringIO(), io.StringIO())

    class TTY(io.StringIO):
        def isatty(self):
            return True

    got = settings.share_password("u", opts, {}, TTY(), io.StringIO(),
                                  prompt=lambda text: "typed")
    assert got.reveal() == "typed"


# -- volumes ----------------------------------------------------------------------------

def test_share_credential_is_attached_without_options_string():
    volume = volumes.Volume("smbfs", volumes.connection.parse_smb(
        {"driver_volume_type": "smbfs", "data": {"export": "//h/s", "name": "v.vhdx"}}))
    password = Secret("a,b=c -o user=evil")
    with_cred = volumes.with_share_credential(volume, "DOM\\svc", password)
    assert with_cred.props.credential == Credential("DOM\\svc", password)
    assert volume.props.credential is None
    assert list(volumes.secrets_of(with_cred)) == ["a,b=c -o user=evil"]
    with pytest.raises(exceptions.InvalidInput):
        volumes.with_share_credential(volume, " ", password)


def test_unmount_needs_only_the_export():
    args = Options(connection_info=None, export="//fs01/vols/a/b", name=None, disk_format=None)
    volume = volumes.volume_from_args(args, None, io.StringIO(), image=False)
    assert volume.props.share_root == "\\\\fs01\\vols"
    with pytest.raises(exceptions.InvalidInput) as excinfo:
        volumes.volume_from_args(Options(connection_info=None, export="//fs01", name=None,
                                         disk_format=None), None, io.StringIO(), image=False)
    assert str(excinfo.value).startswith("invalid --export '//fs01': has no share name")


def test_connection_info_json_error_never_shows_the_text():
    stdin = io.StringIO('{"data": {"options": "password=TopSecret"}')
    with pytest.raises(exceptions.InvalidConnectionInfo) as info:
        volumes.connection_info_document("-", stdin)
    assert "TopSecret" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# -- output -----------------------------------------------------------------------------

def test_cells_mask_secrets_and_keep_structure():
    cell = output.cell([Credential("u", Secret("pw")), Secret("x"), 1])
    assert cell.machine_readable() == ["u/***", "***", 1]
    assert cell.human_readable() == "u/***, ***, 1"
    assert output.cell({"b": 2, "a": 1}).human_readable() == "a=1, b=2"
    assert output.cell(None) is None


def test_table_appends_unknown_fields_and_keeps_error_last():
    rows = [output.Row("h1", "ok", {"a": 1, "extra": 2}),
            output.Row("h2", "error", {}, error="boom")]
    header, data = output.table(rows, ("a",))
    assert header == ("host", "status", "a", "extra", "error")
    assert data[1] == ("h2", "error", None, None, "boom")


# -- fan-out ----------------------------------------------------------------------------

def test_fanout_keeps_order_and_isolates_failures():
    def work(host):
        if host == "bad":
            raise exceptions.TransportError(host=host, reason="refused")
        return host.upper()

    outcomes = fanout.run(["a", "bad", "c"], work, 2, io.StringIO())
    assert [(o.host, o.value, o.ok) for o in outcomes] == [
        ("a", "A", True), ("bad", None, False), ("c", "C", True)]


# -- grammar ----------------------------------------------------------------------------

@needs_grammar
def test_grammar_accepts_quoted_hostile_values():
    for value in ("it's", "\u2018\u2019\u201a\u201b", "$(x); `n", '"'):
        grammar.check("$x = %s\n" % ps_quote(value))


@pytest.mark.parametrize("text", [
    "$x = 'unterminated\n",
    "$x = 'a\u2019; Stop-Computer; \u2019'\n",
    "$x = \u2018a\u2018\n",
    "& { $x = 1\n",
])
@needs_grammar
def test_grammar_rejects(text):
    with pytest.raises(errors.ScriptSyntaxError):
        grammar.check(text)


def test_no_second_hint_when_the_message_has_one():
    exc = exceptions.NoFreeSlot("attach failed: full; what to do: detach a disk",
                                operation="attach_vhd", host="h")
    line = errors.failure(exc, "h").line()
    assert line.count("detach a disk") == 1 and " -- " not in line


def test_dry_run_without_the_grammar_is_a_usage_error(monkeypatch, capsys):
    import sys

    from smbvol.cli import app, grammar

    grammar._language.cache_clear()
    monkeypatch.setitem(sys.modules, "tree_sitter", None)
    monkeypatch.setitem(sys.modules, "tree_sitter_powershell", None)
    try:
        code = app.main(["volume", "attach", "--dry-run", "vm1", "--export", "//fs01/vols",
                         "--name", "v.vhdx"])
    finally:
        grammar._language.cache_clear()
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "pip install tree-sitter tree-sitter-powershell" in err
