"""The PSRP executor on the wire: the real pypsrp client against a loopback WSMan endpoint.

The endpoint (tests/psrp_server.py) answers with genuine PSRP messages built by
psrpcore's server classes, deserializes the client's CreatePipeline message and
hands script text and parameters to a Python function standing for the host.
"""

from __future__ import annotations

import base64
import datetime
import logging
import ssl
import traceback

import pytest
from psrpcore.types import PSCredential as ServerPSCredential
from psrpcore.types import PSSecureString

from smbvol import envelope, exceptions, opts, retry
from smbvol.executors import get_executor
from smbvol.executors.psrp import PSRPExecutor
from smbvol.scripts import Operation, Param, Script, render
from smbvol.secret import Credential, Secret
from tests import psrp_server
from tests.psrp_server import HANG, PSRPServer, ScriptFailed

USER = "smbvol"
PASSWORD = "wire-password"
SHARE_SECRET = "Sh@re-S3cret-\u00e9\u6771"
CHAP_SECRET = "chap-secret-0123456789"

ECHO_OP = Operation(
    "echo_params", "test operation with every parameter type",
    (Param("SharePath", "string", "a path", required=True),
     Param("Names", "strings", "names"),
     Param("Count", "int", "a number"),
     Param("Sizes", "ints", "numbers"),
     Param("Force", "bool", "a switch"),
     Param("ShareCredential", "credential", "a credential"),
     Param("Credentials", "credentials", "credentials"),
     Param("ChapSecret", "securestring", "a secret")),
    ("echo",), ("unexpected",))
ECHO_TEXT = "[CmdletBinding()]\nparam($SharePath)\n# echo_params script body\n"


def echo_script(text: str = ECHO_TEXT) -> Script:
    return Script(operation=ECHO_OP, text=text)


def envelope_of(result: dict, warnings=()) -> str:
    return envelope.format_envelope(envelope.ok(result, warnings))


def plain(value):
    """A parameter value as the host sees it, secrets decrypted (test side only)."""
    if isinstance(value, ServerPSCredential):
        return {"user": str(value.UserName), "password": str(value.Password.decrypt())}
    if isinstance(value, PSSecureString):
        return {"securestring": str(value.decrypt())}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return str(value)


def echo_host(inv):
    """The 'host': returns an envelope holding what it received."""
    return [envelope_of({"echo": {k: plain(v) for k, v in inv.parameters.items()},
                         "script_chars": len(inv.script)})]


@pytest.fixture
def server():
    srv = PSRPServer(echo_host, username=USER, password=PASSWORD).start()
    yield srv
    srv.stop()


def make_conf(srv, **overrides):
    """Basic auth over loopback HTTP (allow_unencrypted: tests only); no retries unless asked."""
    values = dict(smbvol_host="127.0.0.1", smbvol_port=srv.port, smbvol_ssl=False,
                  smbvol_auth="basic", smbvol_username=USER, smbvol_password=PASSWORD,
                  smbvol_allow_unencrypted=True, smbvol_connection_retry_count=0,
                  smbvol_connection_retry_interval=0.25)
    values.update(overrides)
    return opts.new_conf(**values)


def no_sleep(seconds):
    raise AssertionError("a test must not sleep (asked for %s s)" % seconds)


def make_executor(srv, sleep=no_sleep, clock=None, **overrides):
    return PSRPExecutor.from_conf(make_conf(srv, **overrides), sleep=sleep, clock=clock)


@pytest.fixture
def executor(server):
    ex = make_executor(server)
    yield ex
    ex.close()


def wire_forms(secret: str):
    """Every encoding a secret could take on the wire."""
    forms = {secret.encode("utf-8"), secret.encode("utf-16-le")}
    for raw in list(forms):
        forms.add(base64.b64encode(raw))
    return forms


def assert_secret_absent(srv, secret):
    for req in srv.requests:
        blobs = (req.body.encode("utf-8"), req.payload)
        for form in wire_forms(secret):
            for blob in blobs:
                assert form not in blob, "secret found in a %s request" % req.action


# -- parameters ---------------------------------------------------------------

def test_run_with_parameters_reaches_the_host_typed(server, executor):
    params = {
        "SharePath": "\\\\fs01\\vols",
        "Names": ("a", "b\u00e9"),
        "Count": 7,
        "Sizes": [1, 2 ** 40],
        "Force": True,
        "ShareCredential": Credential("DOM\\svc", Secret(SHARE_SECRET)),
        "Credentials": [Credential("u1", Secret(SHARE_SECRET + "1")), None],
        "ChapSecret": Secret(CHAP_SECRET),
    }
    res = executor.run(echo_script(), params)

    assert res.result["echo"] == {
        "SharePath": "\\\\fs01\\vols",
        "Names": ["a", "b\u00e9"],
        "Count": 7,
        "Sizes": [1, 2 ** 40],
        "Force": True,
        "ShareCredential": {"user": "DOM\\svc", "password": SHARE_SECRET},
        "Credentials": [{"user": "u1", "password": SHARE_SECRET + "1"}, None],
        "ChapSecret": {"securestring": CHAP_SECRET},
    }
    inv = server.invocations[-1]
    # the script went as a script, the values as named parameters of it
    assert inv.commands[0][0] == ECHO_TEXT and inv.commands[0][1] is True
    assert len(inv.commands) == 1
    assert isinstance(inv.parameters["ShareCredential"], ServerPSCredential)
    assert isinstance(inv.parameters["ShareCredential"].Password, PSSecureString)
    assert isinstance(inv.parameters["ChapSecret"], PSSecureString)
    # the secrets never travelled in clear (any encoding), the script text has no value
    for secret in (SHARE_SECRET, SHARE_SECRET + "1", CHAP_SECRET):
        assert_secret_absent(server, secret)
    assert "fs01" not in inv.script
    # a key exchange happened (PublicKey sent with Send)
    assert server.count("Send") == 1


def test_no_key_exchange_without_secrets(server, executor):
    executor.run(echo_script(), {"SharePath": "x"})
    assert server.count("Send") == 0


def test_secret_absent_from_debug_logs(server, executor, caplog):
    server.execute = lambda inv: [envelope_of({"echo": "done"})]  # the host echoes no secret
    caplog.set_level(logging.DEBUG)
    executor.run(echo_script(), {"SharePath": "x",
                                 "ShareCredential": Credential("u", Secret(SHARE_SECRET)),
                                 "ChapSecret": Secret(CHAP_SECRET)})
    client_logs = "\n".join(r.getMessage() for r in caplog.records
                            if not r.name.startswith("psrpcore"))  # psrpcore: the host side
    assert "CreatePipeline" in caplog.text or "Packing PSRP message" in client_logs
    assert "ShareCredential" in client_logs  # the library did log the message...
    for secret in (SHARE_SECRET, CHAP_SECRET, PASSWORD):  # ...never a secret
        assert secret not in client_logs
        assert secret.encode("utf-16-le").decode("latin-1") not in client_logs


def test_script_over_10_kb(server, executor):
    text = ECHO_TEXT + "".join("# line %05d \u00e9\u00e8 filler filler filler\n" % i
                               for i in range(400))
    assert len(text.encode("utf-8")) > 10 * 1024
    res = executor.run(echo_script(text), {"SharePath": "x"})
    assert server.invocations[-1].script == text
    assert res.result["script_chars"] == len(text)


def test_script_larger_than_one_envelope_goes_in_fragments(server, executor):
    text = ECHO_TEXT + "#" + "x" * 700_000 + "\n"
    res = executor.run(echo_script(text), {"SharePath": "x"})
    assert server.invocations[-1].script == text
    assert res.result["script_chars"] == len(text)
    assert server.count("Send") >= 1  # fragments after the first went with Send


def test_host_info_template_round_trip(server):
    facts = {"host_name": "HV01", "fqdn": "hv01.example.test", "ipv4": ["10.0.0.5"],
             "ipv6": [], "os_version": "10.0.14393", "os_build": "14393",
             "ps_version": "5.1.14393.0", "hyperv_module": True, "smb_global_mapping": True,
             "iscsi_initiator_iqns": [], "multipath": False}
    server.execute = lambda inv: [envelope_of(facts)]
    with get_executor(make_conf(server, smbvol_transport="psrp")) as ex:
        assert isinstance(ex, PSRPExecutor)
        script = render("host_info")
        res = ex.run(script)
    assert res.result == facts
    assert server.invocations[-1].script == script.text


# -- output ---------------------------------------------------------------------

def test_non_ascii_output(server, executor):
    text = "\u0141\u00f3d\u017a \u2014 \u6771\u4eac \u2713 \U0001F600"
    server.execute = lambda inv: ["before " + text, envelope_of({"echo": text})]
    assert executor.run(echo_script(), {"SharePath": "x"}).result["echo"] == text


def test_output_with_progress_and_other_noise(server, executor):
    def host(inv):
        p = inv.pipeline
        p.write_progress("Copying", 1, "10 of 20")
        p.write_verbose("verbose text")
        p.write_debug("debug text")
        p.write_information("information text", "source")
        p.write_output("plain line")
        p.write_output(42)
        p.write_output(None)
        p.write_progress("Copying", 1, "20 of 20", percent_complete=100)
        return ["#< CLIXML", envelope_of({"echo": "ok"}), "after"]

    server.execute = host
    res = executor.run(echo_script(), {"SharePath": "x"})
    assert res.result == {"echo": "ok"}


def test_envelope_error_becomes_the_host_error(server, executor):
    server.execute = lambda inv: [envelope.format_envelope(
        envelope.error("vm_not_found", "VM 'vm1' was not found"))]
    with pytest.raises(exceptions.VMNotFound) as err:
        executor.run(echo_script(), {"SharePath": "x"})
    assert "vm1" in str(err.value)


def test_error_records_warnings_and_had_errors_surface(server, executor, caplog):
    from psrpcore.types import NETException

    def host(inv):
        inv.pipeline.write_error(NETException(Message="Access to the path is denied"),
                                 fully_qualified_error_id="UnauthorizedAccess")
        inv.pipeline.write_warning("the share is slow")
        return [envelope_of({"echo": "ok"})]

    server.execute = host
    caplog.set_level(logging.WARNING, logger="smbvol.executors.psrp")
    script = echo_script()
    raw = executor.handle(script, {"SharePath": "x"}, 30)
    assert raw.had_errors is True
    assert any("Access to the path is denied" in e for e in raw.errors)
    assert "WARNING: the share is slow" in raw.errors
    # and through run(): the envelope still wins, the records are logged
    assert executor.run(script, {"SharePath": "x"}).result == {"echo": "ok"}
    assert "Access to the path is denied" in caplog.text
    assert "the share is slow" in caplog.text


def test_terminating_error_without_envelope_is_a_clear_error(server, executor):
    def host(inv):
        raise ScriptFailed("Cannot bind parameter 'VMName'")

    server.execute = host
    with pytest.raises(exceptions.NoEnvelope) as err:
        executor.run(echo_script(), {"SharePath": "x"})
    assert "Cannot bind parameter 'VMName'" in err.value.excerpt
    # the pool survives a failed script
    server.execute = echo_host
    executor.run(echo_script(), {"SharePath": "y"})
    assert server.count("Create") == 1


# -- failures --------------------------------------------------------------------

def test_401_is_an_authentication_error(server):
    ex = make_executor(server, smbvol_password="not-the-password")
    with pytest.raises(exceptions.AuthenticationError) as err:
        ex.run(echo_script(), {"SharePath": "x"})
    text = str(err.value)
    assert "basic" in text and USER in text and "127.0.0.1" in text
    assert "not-the-password" not in text and "not-the-password" not in repr(ex)
    assert not exceptions.is_transient(err.value)


def test_connection_reset_mid_call_is_a_transport_error(server, executor):
    executor.run(echo_script(), {"SharePath": "x"})
    starts = len(server.invocations)
    server.inject("Receive", "reset")
    with pytest.raises(exceptions.TransportError) as err:
        executor.run(echo_script(), {"SharePath": "x"})
    # the script may have run: outcome unknown, and no blind re-run by the connection layer
    assert err.value.script_may_have_started
    assert not exceptions.is_connection_failure(err.value)
    assert exceptions.outcome_unknown(err.value)
    assert len(server.invocations) == starts + 1
    assert not isinstance(err.value, exceptions.CertificateError)
    # the next call works on the same pool
    assert executor.run(echo_script(), {"SharePath": "z"}).result["echo"]["SharePath"] == "z"
    assert server.count("Create") == 1


def test_connection_refused_is_a_transport_error(server):
    ex = make_executor(server)
    server.stop()
    with pytest.raises(exceptions.TransportError):
        ex.run(echo_script(), {"SharePath": "x"})


def assert_library_error_dropped(err: BaseException, secret: str = PASSWORD) -> None:
    """The translated error keeps no pypsrp/requests exception (its text is not masked)."""
    assert err.__cause__ is None and err.__context__ is None, (err.__cause__, err.__context__)
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert secret not in text


def test_translated_authentication_error_drops_the_library_error(server):
    ex = make_executor(server, smbvol_password="not-the-password")
    with pytest.raises(exceptions.AuthenticationError) as err:
        ex.run(echo_script(), {"SharePath": "x"})
    assert_library_error_dropped(err.value, "not-the-password")


@pytest.mark.parametrize("fault, cls", [
    ((503, "proxy: password=%s" % PASSWORD), exceptions.TransportError),
    ((500, "error: password=%s" % PASSWORD), exceptions.RemoteFault),
    ("reset", exceptions.TransportError),
])
def test_translated_errors_drop_the_library_error(server, executor, fault, cls):
    server.inject("Create", fault)
    with pytest.raises(cls) as err:
        executor.run(echo_script(), {"SharePath": "x"})
    assert PASSWORD not in str(err.value)
    assert_library_error_dropped(err.value)


def test_wsman_fault_is_a_remote_fault_with_its_code(server, executor):
    server.inject("Command", 2150858770)
    with pytest.raises(exceptions.RemoteFault) as err:
        executor.run(echo_script(), {"SharePath": "x"})
    assert "2150858770" in str(err.value)
    assert "injected fault" in str(err.value)
    assert not exceptions.is_transient(err.value)


def test_http_500_without_fault(server, executor):
    server.inject("Create", "500")
    with pytest.raises(exceptions.RemoteFault) as err:
        executor.run(echo_script(), {"SharePath": "x"})
    assert "HTTP 500" in str(err.value)
    # the half-opened pool was dropped; the next call opens a new one
    executor.run(echo_script(), {"SharePath": "x"})
    assert server.count("Create") == 1 and executor.pools_opened == 2


def test_operation_timeout_stops_the_script(server):
    server.execute = lambda inv: HANG
    ticks = []

    def clock():
        ticks.append(None)
        return 1.0 * len(ticks)

    ex = make_executor(server, clock=clock, smbvol_script_timeout=30)
    with pytest.raises(exceptions.ExecutorTimeout) as err:
        ex.run(echo_script(), {"SharePath": "x"})
    assert "30" in str(err.value)
    assert exceptions.is_transient(err.value)
    # the pipeline was stopped (ctrl_c) and released (terminate) on the host, after
    # several empty receives
    assert server.count("Signal") == 2
    assert sum(r.action == "Receive" for r in server.requests) >= 3
    signals = [r for r in server.requests if r.action == "Signal"]
    assert "powershell/signal/ctrl_c" in signals[0].body
    assert "signal/Terminate" in signals[1].body
    assert not any(shell.commands for shell in server.shells.values())
    # the pool is still usable
    server.execute = echo_host
    ticks.clear()
    assert ex.run(echo_script(), {"SharePath": "x"}).result["echo"]["SharePath"] == "x"
    ex.close()


def test_retry_then_success(server, caplog):
    """from_conf wires smbvol.retry.connection_policy around each call."""
    sleeps = []
    ex = make_executor(server, sleep=sleeps.append, smbvol_connection_retry_count=2)
    # failures before the command: the pool cannot be created (twice), then it can
    server.inject("Create", "reset", times=2)
    res = ex.run(echo_script(), {"SharePath": "x"})
    assert res.result["echo"]["SharePath"] == "x"
    assert sleeps == [0.25, 0.25]
    assert "attempt 1 failed (TransportError" in caplog.text
    assert "attempt 2 failed (TransportError" in caplog.text
    assert len(server.invocations) == 1 and server.count("Create") == 1
    ex.close()


def test_retries_are_bounded(server):
    sleeps = []
    ex = make_executor(server, sleep=sleeps.append, smbvol_connection_retry_count=2)
    server.inject("Create", "reset", times=5)
    with pytest.raises(exceptions.TransportError):
        ex.run(echo_script(), {"SharePath": "x"})
    assert sleeps == [0.25, 0.25]


def test_reset_after_the_command_is_not_run_again(server):
    """The host may have started the script: the connection policy does not re-run it."""
    sleeps = []
    ex = make_executor(server, sleep=sleeps.append, smbvol_connection_retry_count=3)
    ex.run(echo_script(), {"SharePath": "warm"})
    server.inject("Command", "reset", times=5)
    with pytest.raises(exceptions.TransportError) as err:
        ex.run(echo_script(), {"SharePath": "x"})
    assert sleeps == [] and err.value.script_may_have_started
    assert exceptions.outcome_unknown(err.value)
    ex.close()


def test_policy_from_smbvol_retry_around_run(server, executor):
    sleeps = []
    server.inject("Create", "reset")
    policy = retry.connection_policy(make_conf(server, smbvol_connection_retry_count=1),
                                     sleep=sleeps.append)
    res = policy(executor.run, echo_script(), {"SharePath": "y"})
    assert res.result["echo"]["SharePath"] == "y" and sleeps == [0.25]


# -- the pool ---------------------------------------------------------------------

def test_pool_reused_across_three_calls(server, executor):
    for i in range(3):
        executor.run(echo_script(), {"SharePath": "p%d" % i})
    assert server.count("Create") == 1
    assert executor.pools_opened == 1
    server.reset_counts()
    executor.run(echo_script(), {"SharePath": "warm"})
    # pypsrp >= 0.9 signals the finished pipeline; older releases (Python 3.9) do not.
    actions = [r.action for r in server.requests]
    assert actions[:2] == ["Command", "Receive"] and actions[2:] in ([], ["Signal"])


def test_pool_reopened_once_when_the_host_forgot_it(server, executor):
    executor.run(echo_script(), {"SharePath": "a", "ChapSecret": Secret(CHAP_SECRET)})
    server.forget_shells()
    res = executor.run(echo_script(), {"SharePath": "b", "ChapSecret": Secret(CHAP_SECRET)})
    assert res.result["echo"]["ChapSecret"] == {"securestring": CHAP_SECRET}
    assert server.count("Create") == 2 and executor.pools_opened == 2
    assert server.count("Delete") == 0  # nothing left to delete for the dead pool


def test_pool_reopened_only_once(server, executor):
    executor.run(echo_script(), {"SharePath": "a"})
    server.inject("Command", psrp_server.SHELL_NOT_FOUND, times=2)
    with pytest.raises(exceptions.RemoteFault) as err:
        executor.run(echo_script(), {"SharePath": "b"})
    assert str(psrp_server.SHELL_NOT_FOUND) in str(err.value)
    assert executor.pools_opened == 2


def test_close_deletes_the_pool(server):
    ex = make_executor(server)
    ex.run(echo_script(), {"SharePath": "a"})
    assert len(server.shells) == 1
    ex.close()
    assert server.count("Delete") == 1 and server.shells == {}
    ex.close()  # idempotent
    assert server.count("Delete") == 1


# -- TLS ----------------------------------------------------------------------------

def _self_signed(tmp_path):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx, str(cert_file)


@pytest.fixture
def tls_server(tmp_path):
    ctx, ca_file = _self_signed(tmp_path)
    srv = PSRPServer(echo_host, username=USER, password=PASSWORD, ssl_context=ctx).start()
    srv.ca_file = ca_file
    yield srv
    srv.stop()


def tls_conf(srv, **overrides):
    return make_conf(srv, smbvol_ssl=True, smbvol_allow_unencrypted=False, **overrides)


def test_untrusted_certificate_is_refused(tls_server):
    ex = PSRPExecutor.from_conf(tls_conf(tls_server), sleep=no_sleep)
    with pytest.raises(exceptions.CertificateError) as err:
        ex.run(echo_script(), {"SharePath": "x"})
    assert "ca_file" in str(err.value)
    assert not exceptions.is_transient(err.value)
    assert tls_server.count() == 0


def test_ca_file_makes_the_certificate_trusted(tls_server, caplog):
    caplog.set_level(logging.WARNING)
    conf = tls_conf(tls_server, smbvol_ca_file=tls_server.ca_file)
    with PSRPExecutor.from_conf(conf, sleep=no_sleep) as ex:
        res = ex.run(echo_script(), {"SharePath": "x",
                                     "ShareCredential": Credential("u", Secret(SHARE_SECRET))})
    assert res.result["echo"]["ShareCredential"]["password"] == SHARE_SECRET
    assert "validation" not in caplog.text


def test_disabled_validation_warns_on_every_connection(tls_server, caplog):
    caplog.set_level(logging.WARNING)
    conf = tls_conf(tls_server, smbvol_cert_validation=False)
    for _ in range(2):
        with PSRPExecutor.from_conf(conf, sleep=no_sleep) as ex:
            ex.run(echo_script(), {"SharePath": "x"})
    warnings = [r for r in caplog.records if "validation" in r.getMessage()
                and r.levelno == logging.WARNING]
    assert len(warnings) == 2


def test_basic_over_http_needs_allow_unencrypted(server):
    with pytest.raises(exceptions.ConfigError) as err:
        PSRPExecutor.from_conf(make_conf(server, smbvol_allow_unencrypted=False))
    assert "smbvol.ssl" in str(err.value)
