"""The WinRM executor on the wire: real pywinrm against a WinRM server played by ``responses``.

Nothing of pywinrm is mocked: every test drives ``winrm.protocol.Protocol`` and
``requests`` over HTTP answered by :mod:`tests.winrm_server`, which parses the
SOAP requests like a Windows host would.
"""

from __future__ import annotations

import base64
import logging
import traceback

import pytest
import requests
import responses

from smbvol import exceptions, opts, retry
from smbvol.executors import base, get_executor
from smbvol.executors._http import RemoteOptions
from smbvol.executors.winrm import WinRMExecutor
from smbvol.scripts import OPERATIONS, Script
from smbvol.secret import Credential, Secret
from tests import winrm_server
from tests.winrm_server import FakeWinRMServer, contains_secret, envelope_program, wsman_fault

WINRM_PW = "Wr-P4ss!unique-7"
SHARE_PW = "Sh4re-S3cret-unique-9"
USER = "CORP\\svc-smbvol"
UNICODE = "Ünïcødé ✓ 日本"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def script(text: str = "param()\n'body'\n", op: str = "attach_vhd") -> Script:
    return Script(operation=OPERATIONS[op], text=text)


def params(share_pw: str = SHARE_PW) -> dict:
    return {"VMName": "instance-0001", "SharePath": "\\\\fs1\\vols", "DiskName": "v1.vhdx",
            "ShareCredential": Credential("CORP\\share-user", Secret(share_pw)),
            "MaximumIops": 500}


def options(**kw) -> RemoteOptions:
    base_kw = dict(host="winhost", port=5986, ssl=True, auth="basic", username=USER,
                   password=Secret(WINRM_PW))
    base_kw.update(kw)
    return RemoteOptions(**base_kw)


class Clock:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def server(rsps):
    return FakeWinRMServer(password=WINRM_PW, username=USER).install(rsps)


# --------------------------------------------------------------------------
# a normal run
# --------------------------------------------------------------------------

def test_run_with_parameters_uses_a_fixed_command_and_stdin(server):
    with WinRMExecutor(options()) as ex:
        res = ex.run(script(), params())
    assert res.result["params"] == {"VMName": "instance-0001", "SharePath": "\\\\fs1\\vols",
                                    "DiskName": "v1.vhdx", "MaximumIops": 500}
    assert res.result["secrets"] == [{"name": "ShareCredential", "user": "CORP\\share-user",
                                      "length": len(SHARE_PW)}]
    assert [r.action for r in server.requests] == [
        "Create", "Command", "Send", "Receive", "Signal", "Delete"]
    (create,) = server.of("Create")
    assert create.options["WINRS_CODEPAGE"] == "65001"
    (command,) = server.of("Command")
    # Windows PowerShell by its full path, never the first powershell.exe on PATH
    assert command.command == "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert command.options["WINRS_SKIP_CMD_SHELL"] == "TRUE"
    assert command.arguments == " ".join(base.POWERSHELL_ARGS)
    encoded = command.arguments.split()[-1]
    assert base64.b64decode(encoded).decode("utf-16-le") == base.BOOTSTRAP
    assert server.open_shells == [] and len(server.closed) == 1


def test_script_over_10kb_travels_in_several_stdin_chunks(server):
    text = "param()\n" + "".join("# filler line %05d .......................\n" % i
                                 for i in range(300)) + "'the end marker'\n"
    assert len(text) > 12000
    ex = WinRMExecutor(options(), chunk_size=4096)
    res = ex.run(script(text), params())
    assert res.result["script_chars"] == len(text)
    assert res.result["script_tail"] == text[-40:]
    sends = server.of("Send")
    assert len(sends) > 3
    assert [s.stdin_end for s in sends] == [False] * (len(sends) - 1) + [True]
    (command,) = server.of("Command")
    assert b"the end marker" not in command.body and len(command.body) < 10000


def test_non_ascii_round_trip_in_output_and_parameters(rsps):
    def handler(text, values, secrets):
        return {"ok": True, "result": {"echo": values["VMName"], "const": UNICODE},
                "warnings": ["Wärnung ✓"]}

    FakeWinRMServer(envelope_program(handler), password=WINRM_PW, username=USER,
                    receive_chunks=3).install(rsps)
    p = dict(params(), VMName="vm-" + UNICODE)
    res = WinRMExecutor(options()).run(script(), p)
    assert res.result == {"echo": "vm-" + UNICODE, "const": UNICODE}
    assert res.warnings == ("Wärnung ✓",)


def test_clixml_and_progress_noise_around_the_envelope(rsps):
    progress = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/'
                'powershell/2004/04"><Obj S="progress" RefId="0"><TN RefId="0"><T>System.'
                'Management.Automation.PSCustomObject</T></TN><MS><I64 N="SourceId">1</I64>'
                '<PR N="Record"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil />'
                '<PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>'
                '</Objs>')
    stderr = progress + ('<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/'
                         'powershell/2004/04"><S S="Error">a non-terminating '
                         'error_x000D__x000A_</S></Objs>')
    program = envelope_program(lambda t, v, s: {"ok": True, "result": {"n": 1}},
                               stdout_prefix=progress + "\r\nsome host output\r\n",
                               stdout_suffix=progress, stderr=stderr)
    FakeWinRMServer(program, password=WINRM_PW, username=USER, receive_chunks=4).install(rsps)
    assert WinRMExecutor(options()).run(script(), params()).result == {"n": 1}


def test_nonzero_exit_without_envelope_is_no_envelope(rsps):
    def program(command, arguments, stdin):
        return b"", ("#< CLIXML\r\n<Objs><S S=\"Error\">boom " + SHARE_PW +
                     "</S></Objs>").encode(), 1

    FakeWinRMServer(program, password=WINRM_PW, username=USER).install(rsps)
    with pytest.raises(exceptions.NoEnvelope) as err:
        WinRMExecutor(options()).run(script(), params())
    assert err.value.kwargs["exit_code"] == 1
    assert "boom" in str(err.value) and SHARE_PW not in str(err.value)


# --------------------------------------------------------------------------
# secrets off every command line
# --------------------------------------------------------------------------

def test_contains_secret_finds_every_encoding():
    """The checker below can fail: each encoding of a secret is detected."""
    pw = SHARE_PW
    assert not contains_secret(b"-NoProfile -EncodedCommand QUJD", pw)
    for form in (pw.encode(), pw.encode("utf-16-le"), base64.b64encode(pw.encode()),
                 base64.b64encode(pw.encode("utf-16-le")),
                 base64.b64encode(("$p = '%s'" % pw).encode("utf-16-le")),
                 base64.b64encode(base64.b64encode(("x\t" + pw).encode()))):
        assert contains_secret(b"<rsp:Arguments>-EncodedCommand " + form + b"</rsp:Arguments>",
                               pw), form


def test_secrets_absent_from_command_and_every_request_but_stdin(server):
    WinRMExecutor(options()).run(script(), params())
    assert server.requests
    for req in server.requests:
        if req.action == "Command":
            line = (req.command + " " + req.arguments).encode("utf-8")
            assert not contains_secret(line, SHARE_PW)
            assert not contains_secret(line, WINRM_PW)
        if req.action != "Send":
            assert not contains_secret(req.body, SHARE_PW), req.action
        assert not contains_secret(req.body, WINRM_PW), req.action
    # ... while the share password does travel, in the stdin stream only:
    stdin = b"".join(r.stdin for r in server.of("Send"))
    assert contains_secret(stdin, SHARE_PW)
    assert contains_secret(b"".join(r.body for r in server.of("Send")), SHARE_PW)
    _, _, secrets = winrm_server.decode_payload(stdin.decode())
    assert secrets[0]["value"] == SHARE_PW
    # ... and the WinRM password only in the HTTP Authorization header.
    assert contains_secret(server.requests[0].headers["Authorization"].encode(), WINRM_PW)


# --------------------------------------------------------------------------
# errors at the seam
# --------------------------------------------------------------------------

def test_401_basic_is_authentication_error_with_mechanism_and_user(rsps):
    FakeWinRMServer(password="another-password", username=USER).install(rsps)
    with pytest.raises(exceptions.AuthenticationError) as err:
        WinRMExecutor(options()).run(script(), params())
    text = str(err.value)
    assert "basic" in text and USER in text and "winhost" in text
    assert WINRM_PW not in text and WINRM_PW not in repr(err.value.kwargs)
    assert not exceptions.is_transient(err.value)


def test_401_ntlm_is_authentication_error(rsps):
    FakeWinRMServer(auth="reject").install(rsps)
    with pytest.raises(exceptions.AuthenticationError) as err:
        WinRMExecutor(options(auth="ntlm")).run(script(), params())
    assert "ntlm" in str(err.value) and USER in str(err.value)
    assert WINRM_PW not in str(err.value)


def test_connection_reset_mid_call_is_transport_error_and_shell_closed(server):
    server.inject("Receive", requests.exceptions.ConnectionError(
        ConnectionResetError(104, "Connection reset by peer")))
    with pytest.raises(exceptions.TransportError) as err:
        WinRMExecutor(options()).run(script(), params())
    assert "reset" in str(err.value)
    assert exceptions.is_transient(err.value)
    assert server.open_shells == []
    assert server.of("Signal"), "the command is stopped after the failure"


@pytest.mark.parametrize("error, words", [
    (requests.exceptions.ConnectionError("HTTPSConnectionPool(host='winhost', port=5986): "
                                         "Max retries exceeded (Caused by NewConnectionError("
                                         "'[Errno 111] Connection refused'))"), "refused"),
    (requests.exceptions.ConnectionError("Failed to resolve 'winhost' ([Errno -2] Name or "
                                         "service not known)"), "resolve"),
])
def test_refused_and_dns_are_transport_errors(server, error, words):
    server.inject("Create", error)
    with pytest.raises(exceptions.TransportError) as err:
        WinRMExecutor(options()).run(script(), params())
    assert words in str(err.value) and "https://winhost:5986/wsman" in str(err.value)


def test_untrusted_certificate_is_certificate_error_never_retried(server):
    server.inject("Create", requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"))
    with pytest.raises(exceptions.CertificateError) as err:
        WinRMExecutor(options()).run(script(), params())
    assert "ca_file" in str(err.value)
    assert not exceptions.is_transient(err.value)


def test_wsman_fault_is_remote_fault_with_code_and_masked_reason(server):
    server.inject("Command", wsman_fault(
        2150858843, "InvalidSelectors", "The shell was not found (%s)." % WINRM_PW, status=400))
    with pytest.raises(exceptions.RemoteFault) as err:
        WinRMExecutor(options()).run(script(), params())
    assert err.value.kwargs["code"] == 2150858843
    text = str(err.value)
    assert "0x8033805B" in text and "The shell was not found" in text
    assert WINRM_PW not in text and "***" in text
    assert not exceptions.is_transient(err.value)
    assert server.open_shells == []


def test_http_500_without_fault_is_remote_fault_not_retried(server):
    server.inject("Command", (500, {"Content-Type": "text/html"}, "<html>Internal error</html>"))
    with pytest.raises(exceptions.RemoteFault) as err:
        WinRMExecutor(options()).run(script(), params())
    assert err.value.kwargs["code"] == "HTTP 500"
    assert "Internal error" in str(err.value)
    assert not exceptions.is_transient(err.value)


def test_http_503_is_transient_transport_error(server):
    server.inject("Create", (503, {}, "Service Unavailable"))
    with pytest.raises(exceptions.TransportError) as err:
        WinRMExecutor(options()).run(script(), params())
    assert "503" in str(err.value) and exceptions.is_transient(err.value)


def full_traceback(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


def assert_library_error_dropped(err: BaseException) -> None:
    """The translated error keeps no pywinrm/requests exception (its text is not masked)."""
    assert err.__cause__ is None and err.__context__ is None, (err.__cause__, err.__context__)
    text = full_traceback(err)
    assert WINRM_PW not in text and SHARE_PW not in text


def test_translated_transport_error_drops_the_library_error(server):
    server.inject("Create", requests.exceptions.ConnectionError(
        "ProxyError('Unable to connect to proxy', http://svc:%s@proxy:3128)" % WINRM_PW))
    with pytest.raises(exceptions.TransportError) as err:
        WinRMExecutor(options()).run(script(), params())
    assert_library_error_dropped(err.value)


def test_translated_authentication_error_drops_the_library_error(rsps):
    FakeWinRMServer(password="another-password", username=USER).install(rsps)
    with pytest.raises(exceptions.AuthenticationError) as err:
        WinRMExecutor(options()).run(script(), params())
    assert_library_error_dropped(err.value)


@pytest.mark.parametrize("answer, cls", [
    (wsman_fault(2150858843, "InvalidSelectors", "no shell (%s)" % WINRM_PW, status=400),
     exceptions.RemoteFault),
    ((503, {}, "proxy: password=%s" % WINRM_PW), exceptions.TransportError),
    ((500, {}, "<html>%s</html>" % WINRM_PW), exceptions.RemoteFault),
    (requests.exceptions.SSLError("certificate verify failed (%s)" % WINRM_PW),
     exceptions.CertificateError),
])
def test_every_translated_error_drops_the_library_error(server, answer, cls):
    server.inject("Command", answer)
    with pytest.raises(cls) as err:
        WinRMExecutor(options()).run(script(), params())
    assert_library_error_dropped(err.value)


def test_operation_timeouts_are_polled_again_until_output(server):
    server.inject("Receive", winrm_server.operation_timeout(), winrm_server.operation_timeout())
    res = WinRMExecutor(options(), clock=Clock(step=1.0)).run(script(), params(), timeout=60)
    assert res.result["params"]["VMName"] == "instance-0001"
    assert len(server.of("Receive")) == 3


def test_script_timeout_is_executor_timeout_and_command_stopped(server):
    server.inject("Receive", *[winrm_server.operation_timeout() for _ in range(50)])
    ex = WinRMExecutor(options(), clock=Clock(step=2.0))
    with pytest.raises(exceptions.ExecutorTimeout) as err:
        ex.run(script(), params(), timeout=45)
    assert err.value.setting == "script_timeout"
    assert err.value.kwargs["elapsed"] >= 45 and err.value.kwargs["timeout"] == 45
    assert 2 <= len(server.of("Receive")) < 10
    assert server.of("Signal") and server.open_shells == []


def test_read_timeout_is_executor_timeout(server):
    server.inject("Receive", requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(exceptions.ExecutorTimeout) as err:
        WinRMExecutor(options()).run(script(), params())
    # the setting that fired is named: one request's read_timeout, not script_timeout
    assert err.value.setting == "read_timeout" and "read_timeout" in str(err.value)
    assert server.open_shells == []


def test_retry_after_a_reset_then_success(server, caplog):
    conf = opts.new_conf(smbvol_connection_retry_count=2, smbvol_connection_retry_interval=7.0)
    sleeps = []
    ex = WinRMExecutor(options(), retry=retry.connection_policy(conf, sleep=sleeps.append))
    server.inject("Create", requests.exceptions.ConnectionError(
        ConnectionResetError(104, "Connection reset by peer")))
    with caplog.at_level(logging.WARNING):
        res = ex.run(script(), params())
    assert res.result["params"]["DiskName"] == "v1.vhdx"
    assert sleeps == [7.0]
    assert [r.action for r in server.requests].count("Create") == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("attempt 1" in w and "TransportError" in w for w in warnings), warnings
    assert not any(WINRM_PW in w or SHARE_PW in w for w in warnings)


def test_cleanup_failure_after_success_keeps_the_result(server, caplog):
    server.inject("Delete", (500, {}, ""))
    with caplog.at_level(logging.WARNING):
        res = WinRMExecutor(options()).run(script(), params())
    assert res.result["params"]["VMName"] == "instance-0001"
    assert any("close the shell" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------

def test_disabled_certificate_validation_warns_on_every_connection(server, caplog):
    ex = WinRMExecutor(options(cert_validation=False))
    with caplog.at_level(logging.WARNING):
        ex.run(script(), params())
        ex.run(script(), params())
    warned = [r for r in caplog.records if "validation" in r.getMessage()]
    assert len(warned) == 2 and all(r.levelno == logging.WARNING for r in warned)


def test_certificate_validation_is_on_by_default_and_quiet(server, caplog):
    ex = WinRMExecutor(options())
    assert ex.options.cert_validation is True
    with caplog.at_level(logging.WARNING):
        ex.run(script(), params())
    assert not [r for r in caplog.records if "validation" in r.getMessage()]


@pytest.mark.parametrize("kw, option", [
    (dict(read_timeout=20, operation_timeout=20), "smbvol.read_timeout"),
    (dict(ssl=False, port=5985), "smbvol.ssl"),
    (dict(auth="ntlm", ssl=False, port=5985, message_encryption="never"),
     "smbvol.message_encryption"),
    (dict(auth="basic", message_encryption="always"), "smbvol.message_encryption"),
    (dict(auth="negotiate"), "smbvol.auth"),
    (dict(password=None), "smbvol.password"),
    (dict(username=None), "smbvol.username"),
    (dict(auth="certificate"), "smbvol.certificate_pem"),
    (dict(ca_file="/nonexistent/ca.pem"), "smbvol.ca_file"),
    (dict(host="bad host"), "smbvol.host"),
])
def test_bad_options_are_refused_at_construction(kw, option):
    with pytest.raises(exceptions.ConfigError) as err:
        WinRMExecutor(options(**kw))
    assert option in str(err.value)
    assert WINRM_PW not in str(err.value)


def test_insecure_http_needs_allow_unencrypted_and_then_warns(rsps, caplog):
    FakeWinRMServer(endpoint="http://winhost:5985/wsman", password=WINRM_PW,
                    username=USER).install(rsps)
    ex = WinRMExecutor(options(ssl=False, port=5985, allow_unencrypted=True))
    with caplog.at_level(logging.WARNING):
        assert ex.run(script(), params()).result["params"]["MaximumIops"] == 500
    assert any("not encrypted" in r.getMessage() for r in caplog.records)


def test_kerberos_without_its_library_is_a_config_error():
    from winrm import transport
    if transport.HAVE_KERBEROS:
        pytest.skip("pywinrm[kerberos] is installed here")
    with pytest.raises(exceptions.ConfigError) as err:
        WinRMExecutor(options(auth="kerberos"))
    assert "kerberos" in str(err.value)


def test_from_conf_with_password_from_constructor_and_no_password_in_repr(server, tmp_path):
    conf = opts.new_conf(smbvol_transport="winrm", smbvol_host="winhost", smbvol_auth="basic",
                         smbvol_username=USER, smbvol_connection_retry_count=0)
    ex = WinRMExecutor.from_conf(conf, password=Secret(WINRM_PW))
    assert ex.options.endpoint == "https://winhost:5986/wsman"
    assert WINRM_PW not in repr(ex) and WINRM_PW not in repr(ex.options)
    assert ex.run(script(), params()).result["params"]["VMName"] == "instance-0001"


def test_factory_builds_winrm_from_conf_with_password_option(server):
    conf = opts.new_conf(smbvol_transport="winrm", smbvol_host="winhost", smbvol_auth="basic",
                         smbvol_username=USER, smbvol_password=WINRM_PW)
    ex = get_executor(conf)
    assert isinstance(ex, WinRMExecutor)
    assert ex.options.password.reveal() == WINRM_PW and WINRM_PW not in repr(ex)
    assert ex.run(script(), params()).result["secrets"][0]["name"] == "ShareCredential"
