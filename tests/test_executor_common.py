"""What every executor shares: the fake executor, the factory, transient errors, retries,
and the remote connection options."""

from __future__ import annotations

import logging

import pytest

from smbvol import envelope, exceptions, opts, retry
from smbvol.executors import FakeExecutor, RawOutput, executor_class, get_executor
from smbvol.executors._http import RemoteOptions
from smbvol.executors.local import LocalExecutor
from smbvol.executors.winrm import WinRMExecutor
from smbvol.scripts import OPERATIONS, Script
from smbvol.secret import Credential, Secret

SECRET = "C0mmon-Secret-unique-5"


def script(op: str = "mount_share") -> Script:
    return Script(operation=OPERATIONS[op], text="param()\n'x'\n")


def mount_params() -> dict:
    return {"SharePath": "\\\\fs1\\vols", "ShareCredential": Credential("u", Secret(SECRET))}


# --------------------------------------------------------------------------
# the fake executor
# --------------------------------------------------------------------------

def test_fake_executor_runs_the_handler_and_parses_its_envelope():
    seen = []

    def handler(s, p):
        seen.append((s.name, p["SharePath"], p["ShareCredential"].password.reveal()))
        return envelope.ok({"share_path": p["SharePath"], "changed": True}, ["careful"])

    with FakeExecutor(handler) as ex:
        res = ex.run(script(), mount_params())
    assert res.result == {"share_path": "\\\\fs1\\vols", "changed": True}
    assert res.warnings == ("careful",) and res.operation == "mount_share"
    assert seen == [("mount_share", "\\\\fs1\\vols", SECRET)]
    assert [c[0] for c in ex.calls] == ["mount_share"]


@pytest.mark.parametrize("answer", [
    envelope.format_envelope(envelope.ok({"n": 7})),
    RawOutput(stdout="noise\r\n" + envelope.format_envelope(envelope.ok({"n": 7}))),
])
def test_fake_executor_accepts_raw_text_and_raw_output(answer):
    assert FakeExecutor(lambda s, p: answer).run(script("host_info")).result == {"n": 7}


def test_fake_executor_error_envelope_raises_the_kind():
    ex = FakeExecutor(lambda s, p: envelope.error("share_unreachable", "no route to fs1"))
    with pytest.raises(exceptions.ShareUnreachable) as err:
        ex.run(script(), mount_params())
    assert "no route to fs1" in str(err.value) and err.value.operation == "mount_share"


def test_fake_executor_refuses_unknown_parameters_before_running():
    ex = FakeExecutor(lambda s, p: envelope.ok({}))
    with pytest.raises(exceptions.ScriptError) as err:
        ex.run(script(), dict(mount_params(), Bogus="x"))
    assert "Bogus" in str(err.value) and ex.calls == []


def test_fake_executor_rejects_a_bad_handler_result():
    with pytest.raises(TypeError):
        FakeExecutor(lambda s, p: 42).run(script("host_info"))


# --------------------------------------------------------------------------
# the factory
# --------------------------------------------------------------------------

def test_factory_picks_the_executor_named_in_config():
    conf = opts.new_conf(smbvol_transport="local", smbvol_powershell_path="pwsh")
    ex = get_executor(conf)
    assert isinstance(ex, LocalExecutor) and ex.powershell_path == "pwsh"
    conf = opts.new_conf(smbvol_transport="winrm", smbvol_host="hv1", smbvol_auth="basic",
                         smbvol_username="svc", smbvol_password=SECRET)
    ex = get_executor(conf)
    assert isinstance(ex, WinRMExecutor) and ex.host == "hv1"
    assert SECRET not in repr(ex)
    assert isinstance(get_executor(conf, name="local"), LocalExecutor)
    assert get_executor(conf, host="hv2").options.endpoint == "https://hv2:5986/wsman"


def test_factory_refuses_an_unknown_name():
    with pytest.raises(exceptions.ConfigError) as err:
        executor_class("ssh")
    assert "smbvol.transport" in str(err.value) and "winrm" in str(err.value)


def test_executor_classes_by_name():
    assert executor_class("local") is LocalExecutor
    assert executor_class("winrm") is WinRMExecutor


# --------------------------------------------------------------------------
# transient errors and retries
# --------------------------------------------------------------------------

@pytest.mark.parametrize("exc, transient", [
    (exceptions.TransportError(host="h", reason="reset"), True),
    (exceptions.ExecutorTimeout(host="h", elapsed=3.0, timeout=2), True),
    (exceptions.ShareUnreachable(operation="o", host="h", detail="d"), True),
    (exceptions.HostBusy(operation="o", host="h", detail="d"), True),
    (exceptions.TargetUnreachable(operation="o", host="h", detail="d"), True),
    (exceptions.CertificateError(host="h", reason="self-signed"), False),
    (exceptions.AuthenticationError(host="h", auth="ntlm", username="u", reason="401"), False),
    (exceptions.RemoteFault(host="h", code=5, reason="denied"), False),
    (exceptions.NoEnvelope(operation="o", exit_code=1, excerpt=""), False),
    (exceptions.InvalidParameters(operation="o", host="h", detail="d"), False),
    (exceptions.ConfigError(option="smbvol.auth", reason="r"), False),
    (ValueError("x"), False),
])
def test_is_transient(exc, transient):
    assert exceptions.is_transient(exc) is transient


@pytest.mark.parametrize("exc, connection_failure", [
    (exceptions.TransportError(host="h", reason="connection refused"), True),
    (exceptions.TransportError(host="h", reason="HTTP 503"), True),
    (exceptions.CertificateError(host="h", reason="self-signed"), False),
    (exceptions.ExecutorTimeout(host="h", elapsed=3.0, timeout=2), False),
    (exceptions.AuthenticationError(host="h", auth="ntlm", username="u", reason="401"), False),
    (exceptions.RemoteFault(host="h", code=5, reason="denied"), False),
    (exceptions.ShareUnreachable(operation="o", host="h", detail="d"), False),
    (exceptions.HostBusy(operation="o", host="h", detail="d"), False),
    (exceptions.NoEnvelope(operation="o", exit_code=1, excerpt=""), False),
    (ValueError("x"), False),
])
def test_is_connection_failure(exc, connection_failure):
    assert exceptions.is_connection_failure(exc) is connection_failure
    if connection_failure:  # a subset of what the operation policy retries
        assert exceptions.is_transient(exc)


def test_connection_policy_leaves_timeouts_to_the_attach_policy():
    """A timeout is retried by one layer only: (attach retries + 1) tries, not multiplied."""
    conf = opts.new_conf(smbvol_connection_retry_count=3, smbvol_connection_retry_interval=1,
                         hyperv_volume_attach_retry_count=4,
                         hyperv_volume_attach_retry_interval=2)
    sleeps = []

    def handler(s, p):
        raise exceptions.ExecutorTimeout(host="hv1", elapsed=301.0, timeout=300)

    ex = FakeExecutor(handler, host="hv1")
    ex.retry = retry.connection_policy(conf, sleep=sleeps.append)
    with pytest.raises(exceptions.ExecutorTimeout):
        ex.run(script(), mount_params())
    assert len(ex.calls) == 1 and sleeps == []  # the connection policy does not retry it
    with pytest.raises(exceptions.ExecutorTimeout):
        retry.attach_policy(conf, sleep=sleeps.append)(ex.run, script(), mount_params())
    assert len(ex.calls) == 1 + 5 and sleeps == [2, 2, 2, 2]


def test_unreachable_host_is_retried_by_one_layer_only():
    """A host that cannot be reached: the executor's connection policy retries it, and the
    attach policy does not retry it again ((connection retries + 1) tries, not multiplied)."""
    conf = opts.new_conf(smbvol_connection_retry_count=3, smbvol_connection_retry_interval=1,
                         hyperv_volume_attach_retry_count=4,
                         hyperv_volume_attach_retry_interval=2)
    sleeps = []

    def handler(s, p):
        raise exceptions.TransportError(host="hv1", reason="connection refused")

    ex = FakeExecutor(handler, host="hv1")
    ex.retry = retry.connection_policy(conf, sleep=sleeps.append)
    with pytest.raises(exceptions.TransportError) as ei:
        retry.attach_policy(conf, sleep=sleeps.append)(ex.run, script(), mount_params())
    assert len(ex.calls) == 4 and sleeps == [1, 1, 1]
    assert not exceptions.is_transient(ei.value)
    # Without a connection policy in the executor, the attach policy retries it itself.
    bare = FakeExecutor(handler, host="hv1")
    with pytest.raises(exceptions.TransportError):
        retry.attach_policy(conf, sleep=sleeps.append)(bare.run, script(), mount_params())
    assert len(bare.calls) == 5


def test_connection_policy_retries_only_before_the_host_was_reached():
    conf = opts.new_conf(smbvol_connection_retry_count=3, smbvol_connection_retry_interval=1)
    for exc in (exceptions.CertificateError(host="hv1", reason="self-signed"),
                exceptions.HostBusy(operation="mount_share", host="hv1", detail="busy"),
                exceptions.RemoteFault(host="hv1", code=5, reason="denied")):
        calls, sleeps = [], []

        def fail(exc=exc, calls=calls):
            calls.append(1)
            raise exc

        with pytest.raises(type(exc)):
            retry.connection_policy(conf, sleep=sleeps.append)(fail)
        assert len(calls) == 1 and sleeps == [], exc


def test_executor_retry_policy_retries_transient_errors_then_succeeds(caplog):
    conf = opts.new_conf(smbvol_connection_retry_count=3, smbvol_connection_retry_interval=1.5)
    sleeps = []
    answers = [exceptions.TransportError(host="hv1", reason="connection reset"),
               exceptions.TransportError(host="hv1", reason="HTTP 503 from the proxy"),
               envelope.ok({"share_path": "x"})]

    def handler(s, p):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    ex = FakeExecutor(handler, host="hv1")
    ex.retry = retry.connection_policy(conf, sleep=sleeps.append)
    with caplog.at_level(logging.WARNING, logger="smbvol.retry"):
        assert ex.run(script(), mount_params()).result == {"share_path": "x"}
    assert sleeps == [1.5, 1.5] and len(ex.calls) == 3
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "attempt 1" in messages[0] and "TransportError" in messages[0]
    assert "attempt 2" in messages[1] and "503" in messages[1]
    assert not any(SECRET in m for m in messages)


def test_executor_retry_policy_does_not_retry_permanent_errors():
    conf = opts.new_conf(smbvol_connection_retry_count=5)
    sleeps = []

    def handler(s, p):
        raise exceptions.AuthenticationError(host="hv1", auth="ntlm", username="u",
                                             reason="rejected")

    ex = FakeExecutor(handler)
    ex.retry = retry.connection_policy(conf, sleep=sleeps.append)
    with pytest.raises(exceptions.AuthenticationError):
        ex.run(script(), mount_params())
    assert sleeps == [] and len(ex.calls) == 1


def test_attach_policy_uses_nova_option_names_and_gives_up(caplog):
    conf = opts.new_conf()
    assert conf.hyperv.volume_attach_retry_count == 10
    assert conf.hyperv.volume_attach_retry_interval == 5
    conf = opts.new_conf(hyperv_volume_attach_retry_count=2,
                         hyperv_volume_attach_retry_interval=4)
    sleeps, calls = [], []

    def attach():
        calls.append(1)
        raise exceptions.ShareUnreachable(operation="attach_vhd", host="hv1",
                                          detail="\\\\fs1\\vols is unreachable")

    with caplog.at_level(logging.WARNING, logger="smbvol.retry"):
        with pytest.raises(exceptions.ShareUnreachable):
            retry.attach_policy(conf, sleep=sleeps.append)(attach)
    assert len(calls) == 3 and sleeps == [4, 4]
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(": ", 1)[1].split(" failed")[0] for m in messages] == [
        "attempt 1", "attempt 2"]
    assert all(m.startswith("volume attach") for m in messages)


# --------------------------------------------------------------------------
# remote connection options
# --------------------------------------------------------------------------

def test_remote_options_from_conf_defaults_and_ports():
    conf = opts.new_conf(smbvol_host="hv1", smbvol_username="svc", smbvol_password=SECRET)
    o = RemoteOptions.from_conf(conf).validate()
    assert (o.port, o.ssl, o.auth, o.cert_validation) == (5986, True, "ntlm", True)
    assert o.endpoint == "https://hv1:5986/wsman" and o.password.reveal() == SECRET
    assert SECRET not in repr(o) and SECRET not in str(o)
    conf = opts.new_conf(smbvol_host="fe80::1", smbvol_ssl=False, smbvol_username="svc",
                         smbvol_password=SECRET)
    o = RemoteOptions.from_conf(conf).validate()
    assert o.endpoint == "http://[fe80::1]:5985/wsman" and o.encrypted


def test_remote_options_password_precedence():
    conf = opts.new_conf(smbvol_username="svc")
    env = {"SMBVOL_PASSWORD": "from-env"}
    assert RemoteOptions.from_conf(conf, environ=env).password.reveal() == "from-env"
    assert RemoteOptions.from_conf(conf, password=Secret("given"), environ=env
                                   ).password.reveal() == "given"
    conf = opts.new_conf(smbvol_username="svc", smbvol_password="from-conf")
    assert RemoteOptions.from_conf(conf, environ=env).password.reveal() == "from-conf"
    with pytest.raises(exceptions.ConfigError) as err:
        RemoteOptions.from_conf(opts.new_conf(smbvol_username="svc"), environ={}).validate()
    assert "smbvol.password" in str(err.value) and "SMBVOL_PASSWORD" in str(err.value)


def test_remote_options_certificate_auth(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("cert")
    key.write_text("key")
    o = RemoteOptions(host="hv1", port=5986, auth="certificate", certificate_pem=str(cert),
                      certificate_key_pem=str(key)).validate()
    assert o.username is None
    with pytest.raises(exceptions.ConfigError) as err:
        RemoteOptions(host="hv1", port=5985, ssl=False, auth="certificate",
                      certificate_pem=str(cert), certificate_key_pem=str(key)).validate()
    assert "smbvol.ssl" in str(err.value)


def test_remote_options_insecure_logging(caplog):
    o = RemoteOptions(host="hv1", port=5985, ssl=False, auth="basic", username="u",
                      password=Secret(SECRET), allow_unencrypted=True).validate()
    with caplog.at_level(logging.WARNING):
        o.log_insecure()
    assert any("not encrypted" in r.getMessage() for r in caplog.records)
    assert not any(SECRET in r.getMessage() for r in caplog.records)
