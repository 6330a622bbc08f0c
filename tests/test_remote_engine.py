"""The remote executors against a real PowerShell: pypsrp and pywinrm, unmodified, drive
real runspaces and real processes.

* PSRP: :class:`tests.psrp_server.PSRPRelay` relays the WS-Man shell to a real runspace
  pool, one ``pwsh -s`` process per shell.  Every output, error record, warning, pipeline
  state, parameter binding and the SecureString session-key exchange is PowerShell's own.
* WinRM: :class:`tests.winrm_server.EngineProgram` runs the command line the executor sends
  (``powershell.exe ... -EncodedCommand <bootstrap>`` with the stdin payload) in ``pwsh``
  and answers with its real stdout, stderr and exit code.

What only a Windows host can show — WS-Man's own implementation, ``wsmprovhost.exe``,
VMMS — is left to the live suite (tests/integration/).  Skipped without an engine, failed
with ``SMBVOL_REQUIRE_PWSH=1``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import traceback

import pytest
import responses

from smbvol import exceptions, opts, scripts
from smbvol.executors._http import RemoteOptions
from smbvol.executors.psrp import PSRPExecutor
from smbvol.executors.winrm import WinRMExecutor
from smbvol.secret import Credential, Secret
from tests import psrp_server
from tests.engine.locate import pwsh_or_skip
from tests.psrp_server import PSRPRelay
from tests.winrm_server import EngineProgram, FakeWinRMServer, contains_secret

USER, PASSWORD = "CORP\\svc-smbvol", "Wire-P4ss!relay-3"
SHARE_PW = "Sh4re-S3cret!relay-8"
CHAP_PW = "Ch4p-S3cret-relay-12"
UNICODE = "Ünïcødé ✓ 日本"

#: The one result document, written by PowerShell from a hashtable.
OUT_ENV = (
    "function Out-TestEnvelope($Result) {\n"
    "    $doc = @{ ok = $true; result = $Result; warnings = @() }\n"
    "    '@@SMBVOL-BEGIN@@' + (ConvertTo-Json -InputObject $doc -Compress -Depth 6)"
    " + '@@SMBVOL-END@@'\n"
    "}\n")


def op(name: str = "probe", *params: scripts.Param) -> scripts.Operation:
    return scripts.Operation(name, "an engine probe", tuple(params), (), ())


def script(text: str, *params: scripts.Param, name: str = "probe") -> scripts.Script:
    return scripts.Script(operation=op(name, *params), text=text)


CRED = scripts.Param("ShareCredential", "credential", "a credential")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (SHARE_PW, CHAP_PW, PASSWORD):
            assert secret not in text


# --------------------------------------------------------------------------
# fixtures: one relay and one pool for the module
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pwsh():
    return pwsh_or_skip()


@pytest.fixture(scope="module")
def relay(pwsh):
    srv = PSRPRelay(pwsh, username=USER, password=PASSWORD).start()
    yield srv
    srv.stop()
    assert srv.running() == [], "a pwsh process outlived the relay"


def psrp_conf(srv, **overrides):
    values = dict(smbvol_host="127.0.0.1", smbvol_port=srv.port, smbvol_ssl=False,
                  smbvol_auth="basic", smbvol_username=USER, smbvol_password=PASSWORD,
                  smbvol_allow_unencrypted=True, smbvol_connection_retry_count=0,
                  smbvol_operation_timeout=5)
    values.update(overrides)
    return opts.new_conf(**values)


@pytest.fixture(scope="module")
def executor(relay):
    ex = PSRPExecutor.from_conf(psrp_conf(relay))
    yield ex
    ex.close()


@pytest.fixture
def own_executor(relay):
    """An executor with its own pool, for tests that break it."""
    ex = PSRPExecutor.from_conf(psrp_conf(relay))
    yield ex
    ex.close()


# --------------------------------------------------------------------------
# 1. the PSRP relay: a real runspace pool behind the WS-Man shell
# --------------------------------------------------------------------------

def test_the_shell_is_one_pwsh_process(relay, executor):
    res = executor.run(script(OUT_ENV + "Out-TestEnvelope @{ pid = $PID; edition = "
                              "$PSVersionTable.PSEdition; runspace = "
                              "[string][runspace]::DefaultRunspace.InstanceId }"))
    shell_pids = {s.process.proc.pid for s in relay.shells.values()}
    assert res.result["pid"] in shell_pids
    assert res.result["edition"] == "Core"
    again = executor.run(script(OUT_ENV + "Out-TestEnvelope @{ runspace = "
                                "[string][runspace]::DefaultRunspace.InstanceId }"))
    assert again.result["runspace"] == res.result["runspace"]  # the pool is reused
    assert executor.pools_opened == 1


def test_parameters_bind_with_their_types_in_the_runspace(executor):
    params = (scripts.Param("Name", "string", "s"), scripts.Param("Count", "int", "i"),
              scripts.Param("Big", "int", "i"), scripts.Param("Flag", "bool", "b"),
              scripts.Param("Names", "strings", "l"))
    text = ("param($Name, $Count, $Big, $Flag, $Names)\n" + OUT_ENV +
            "Out-TestEnvelope @{ name = $Name; types = @($Name.GetType().FullName, "
            "$Count.GetType().FullName, $Big.GetType().FullName, $Flag.GetType().FullName, "
            "$Names.GetType().FullName); names = $Names; big = $Big }")
    res = executor.run(script(text, *params),
                       {"Name": UNICODE, "Count": 7, "Big": 2 ** 40, "Flag": True,
                        "Names": ["a", UNICODE]})
    assert res.result["name"] == UNICODE
    # a list arrives as pypsrp serializes it (an ArrayList); templates type it [string[]]
    assert res.result["types"] == ["System.String", "System.Int32", "System.Int64",
                                   "System.Boolean", "System.Collections.ArrayList"]
    assert res.result["names"] == ["a", UNICODE] and res.result["big"] == 2 ** 40


def test_credential_arrives_as_a_securestring_through_the_key_exchange(relay, executor):
    text = ("param($ShareCredential)\n" + OUT_ENV +
            "$plain = $ShareCredential.GetNetworkCredential().Password\n"
            "$sha = [System.Security.Cryptography.SHA256]::Create()\n"
            "$hash = -join ($sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($plain)) |"
            " ForEach-Object { $_.ToString('x2') })\n"
            "Out-TestEnvelope @{ type = $ShareCredential.GetType().FullName; "
            "password_type = $ShareCredential.Password.GetType().FullName; "
            "user = $ShareCredential.UserName; sha = $hash }")
    relay.reset_counts()
    res = executor.run(script(text, CRED),
                       {"ShareCredential": Credential("CORP\\share", Secret(SHARE_PW))})
    assert res.result == {"type": "System.Management.Automation.PSCredential",
                          "password_type": "System.Security.SecureString",
                          "user": "CORP\\share", "sha": sha256(SHARE_PW)}
    for req in relay.requests:
        assert not contains_secret(req.body.encode("utf-8") + req.payload, SHARE_PW), (
            "the share password crossed the wire readably in a %s" % req.action)


def test_a_script_larger_than_one_envelope_goes_through_send(relay, executor):
    filler = "".join("# filler line %06d ........................................\n" % i
                     for i in range(9000))
    text = filler + OUT_ENV + "Out-TestEnvelope @{ tail = 'the end marker' }"
    assert len(text) > 512000  # PowerShell 7 raises the envelope limit to 500 KiB
    relay.reset_counts()
    assert executor.run(script(text)).result == {"tail": "the end marker"}
    assert relay.count("Send") >= 1  # the CreatePipeline message did not fit the Command


def test_output_of_every_stream_is_powershells_own(executor, caplog):
    caplog.set_level(logging.WARNING, logger="smbvol.executors.psrp")
    text = (OUT_ENV + "Write-Progress -Activity 'copying' -PercentComplete 50\n"
            "Write-Verbose 'verbose' -Verbose\nWrite-Information 'info'\n"
            "Write-Output 'noise before'\n"
            "Get-Item -LiteralPath '/no/such/path' -ErrorAction Continue\n"
            "Write-Warning 'the share is slow'\nOut-TestEnvelope @{ done = $true }")
    res = executor.run(script(text))
    assert res.result == {"done": True}
    # the real error record of Get-Item and the real warning, logged by the executor
    assert "Cannot find path '/no/such/path' because it does not exist" in caplog.text
    assert "the share is slow" in caplog.text


def test_wsman_faults_are_injected_before_the_process(relay, own_executor):
    own_executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 1 }"))
    (process,) = [s.process for s in relay.shells.values()
                  if s.process is relay.processes[-1]]
    relay.inject("Receive", "500")
    with pytest.raises(exceptions.RemoteFault) as err:
        own_executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 2 }"))
    assert "HTTP 500" in str(err.value)
    # a host that forgot the shell: pypsrp's Command gets SHELL_NOT_FOUND, the pool is
    # reopened once (a new process) and the call goes on
    relay.inject("Command", psrp_server.SHELL_NOT_FOUND)
    assert own_executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 3 }")).result == {"n": 3}
    assert own_executor.pools_opened == 2
    assert process.alive  # the injected fault never reached the first process


def test_delete_ends_the_process(relay):
    ex = PSRPExecutor.from_conf(psrp_conf(relay))
    ex.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 1 }"))
    process = relay.processes[-1]
    assert process.alive
    ex.close()
    assert not process.alive
    assert process.unknown == []  # nothing but protocol elements on its stdout


# --------------------------------------------------------------------------
# 4. runspace hygiene: nothing of a call is left in the pooled runspace
# --------------------------------------------------------------------------

PROBE = script(
    OUT_ENV +
    "$secretish = @(Get-Variable -Scope Global | Where-Object { $_.Value -is "
    "[System.Management.Automation.PSCredential] -or $_.Value -is [System.Security.SecureString]"
    " } | ForEach-Object { $_.Name })\n"
    "Out-TestEnvelope @{ variables = @(Get-Variable -Scope Global | ForEach-Object { $_.Name });"
    " functions = @(Get-ChildItem -Path function: | ForEach-Object { $_.Name });"
    " aliases = @(Get-ChildItem -Path alias: | ForEach-Object { $_.Name });"
    " secretish = $secretish;"
    " preferences = @{ error = [string]$ErrorActionPreference; warning = [string]"
    "$WarningPreference; verbose = [string]$VerbosePreference; progress = [string]"
    "$ProgressPreference; confirm = [string]$ConfirmPreference; location = [string]$PWD };"
    " runspace = [string][runspace]::DefaultRunspace.InstanceId }", name="hygiene_probe")


def probe(executor):
    return executor.run(PROBE).result


def left_behind(before, after):
    """What a call added to the runspace, or changed of its preferences."""
    out = {kind: sorted(set(after[kind]) - set(before[kind]))
           for kind in ("variables", "functions", "aliases")}
    out["preferences"] = {k: v for k, v in after["preferences"].items()
                          if before["preferences"].get(k) != v}
    return out


NOTHING = {"variables": [], "functions": [], "aliases": [], "preferences": {}}


def test_a_call_leaves_no_variable_parameter_credential_or_function(executor):
    before = probe(executor)
    text = ("param($ShareCredential, $VMName)\n" + OUT_ENV +
            "function Get-SmbvolLeftover { 'helper' }\n"
            "Set-Alias -Name smbvol-leftover -Value Get-SmbvolLeftover\n"
            "$ErrorActionPreference = 'Stop'\n$WarningPreference = 'SilentlyContinue'\n"
            "$leftoverSecret = $ShareCredential.GetNetworkCredential().Password\n"
            "$leftoverSecure = $ShareCredential.Password\n"
            "Out-TestEnvelope @{ helper = (Get-SmbvolLeftover); vm = $VMName }")
    res = executor.run(script(text, CRED, scripts.Param("VMName", "string", "v")),
                       {"ShareCredential": Credential("CORP\\share", Secret(SHARE_PW)),
                        "VMName": "instance-0001"})
    assert res.result == {"helper": "helper", "vm": "instance-0001"}
    after = probe(executor)
    assert after["runspace"] == before["runspace"]  # the probe looked at the same runspace
    assert left_behind(before, after) == NOTHING
    assert after["secretish"] == []


def test_a_failing_call_leaves_nothing_either(executor):
    before = probe(executor)
    text = ("param($ShareCredential)\n" + "function Get-SmbvolLeftover { 'helper' }\n"
            "$leftoverSecure = $ShareCredential.Password\nthrow 'the call failed'\n")
    with pytest.raises(exceptions.NoEnvelope) as err:
        executor.run(script(text, CRED),
                     {"ShareCredential": Credential("CORP\\share", Secret(SHARE_PW))})
    assert "the call failed" in err.value.excerpt
    after = probe(executor)
    assert after["runspace"] == before["runspace"]
    assert left_behind(before, after) == NOTHING
    assert after["secretish"] == []


def vector_params(operation):
    """Parameters of the first contract vector of ``operation`` (names of the double)."""
    from tests import contract_runner as cr

    for vector in cr.load_vectors():
        if vector["operation"] == operation:
            vector = cr.substitute(vector, cr.DOUBLE_NAMES)
            return cr.build_parameters(vector.get("parameters") or {}, cr.DOUBLE_SECRETS)
    raise AssertionError("no vector for %s" % operation)


@pytest.mark.parametrize("operation, secret_param", [
    ("mount_share", "ShareCredential"), ("iscsi_connect", "ChapCredential")])
def test_smbvol_templates_leave_nothing_in_the_runspace(executor, operation, secret_param):
    """The real templates (their helpers, their credential parameters) in the real pool;
    without host modules they end in a clean error envelope, after binding everything."""
    params = vector_params(operation)
    if secret_param not in params:  # the first vector may not carry one: give it one
        secret = Credential("CORP\\share", Secret(SHARE_PW))
        params[secret_param] = secret
    before = probe(executor)
    with pytest.raises(exceptions.HostOperationError) as err:
        executor.run(scripts.render(operation), params)
    assert_no_secret(str(err.value), repr(err.value))
    after = probe(executor)
    assert after["runspace"] == before["runspace"]
    assert left_behind(before, after) == NOTHING
    assert after["secretish"] == []


# --------------------------------------------------------------------------
# 5. real failure paths over PSRP
# --------------------------------------------------------------------------

SECRET_PARAMS = {"ShareCredential": Credential("CORP\\share", Secret(SHARE_PW))}


def assert_clean_error(err, caplog):
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert_no_secret(str(err), repr(err), tb, caplog.text)


def test_terminating_error_is_no_envelope_with_the_record_masked(executor, caplog):
    caplog.set_level(logging.DEBUG)
    text = ("param($ShareCredential)\n"
            "throw ('cannot map the share with ' + "
            "$ShareCredential.GetNetworkCredential().Password)\n")
    with pytest.raises(exceptions.NoEnvelope) as err:
        executor.run(script(text, CRED), SECRET_PARAMS)
    assert "cannot map the share with" in err.value.excerpt  # PowerShell's own record
    assert err.value.kwargs["exit_code"] == 1
    tb = "".join(traceback.format_exception(type(err.value), err.value, None))
    assert_no_secret(str(err.value), repr(err.value), tb)
    # the pool survives a failed pipeline
    assert executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 1 }")).result == {"n": 1}


def test_error_records_are_logged_without_the_calls_secrets(executor, caplog):
    caplog.set_level(logging.DEBUG)
    text = ("param($ShareCredential)\n"
            "throw ('cannot map the share with ' + "
            "$ShareCredential.GetNetworkCredential().Password)\n")
    with pytest.raises(exceptions.NoEnvelope):
        executor.run(script(text, CRED), SECRET_PARAMS)
    assert "cannot map the share with" in caplog.text
    assert_no_secret(caplog.text)


def test_non_terminating_error_and_warning_keep_the_envelope(executor, caplog):
    caplog.set_level(logging.WARNING, logger="smbvol.executors.psrp")
    text = ("param($ShareCredential)\n" + OUT_ENV +
            "Write-Error -Message 'disk 3 is offline' -ErrorId 'DiskOffline'\n"
            "Write-Warning ('the share is slow for ' + $ShareCredential.UserName)\n"
            "Out-TestEnvelope @{ ok = 'yes' }")
    raw = executor.handle(script(text, CRED), SECRET_PARAMS, 30)
    assert raw.had_errors is True
    assert any("disk 3 is offline" in e for e in raw.errors)
    assert "WARNING: the share is slow for CORP\\share" in raw.errors
    res = executor.run(script(text, CRED), SECRET_PARAMS)
    assert res.result == {"ok": "yes"}
    assert "disk 3 is offline" in caplog.text and "the share is slow" in caplog.text
    assert_no_secret(caplog.text)


def test_a_script_that_never_ends_is_stopped_by_the_deadline(tmp_path, relay, executor,
                                                             caplog):
    caplog.set_level(logging.DEBUG)
    beat = tmp_path / "heartbeat"
    text = ("param($ShareCredential, $Beat)\n"
            "while ($true) { Add-Content -LiteralPath $Beat -Value 'x'; "
            "Start-Sleep -Milliseconds 50 }\n")
    params = dict(SECRET_PARAMS, Beat=str(beat))
    # warm: the deadline is the script's, not the pool's opening or the key exchange
    executor.run(script("param($ShareCredential)\n" + OUT_ENV + "Out-TestEnvelope @{}", CRED),
                 SECRET_PARAMS)
    mark = len(relay.requests)
    start = time.monotonic()
    with pytest.raises(exceptions.ExecutorTimeout) as err:
        executor.run(script(text, CRED, scripts.Param("Beat", "string", "b")), params,
                     timeout=3)
    assert time.monotonic() - start < 12
    assert beat.exists()  # the loop did run
    assert_clean_error(err.value, caplog)
    signals = [r.body for r in relay.requests[mark:] if r.action == "Signal"]
    assert any("powershell/signal/ctrl_c" in body for body in signals)  # the stop
    # nothing left running: the heartbeat stops, the pool's one runspace is free again
    size = beat.stat().st_size
    time.sleep(0.4)
    assert beat.stat().st_size == size
    # (the pool has one runspace: were the loop still running, this call would time out)
    assert executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 1 }"),
                        timeout=15).result == {"n": 1}


def test_a_pool_that_dies_mid_call(tmp_path, relay, own_executor, caplog):
    caplog.set_level(logging.DEBUG)
    own_executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 1 }"))
    process = relay.processes[-1]
    started = tmp_path / "started"
    text = ("param($ShareCredential, $Started)\n"
            "Set-Content -LiteralPath $Started -Value 'running'\nStart-Sleep -Seconds 60\n")

    def kill_when_running():
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        process.kill()

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    start = time.monotonic()
    with pytest.raises(exceptions.RemoteFault) as err:
        own_executor.run(script(text, CRED, scripts.Param("Started", "string", "s")),
                         dict(SECRET_PARAMS, Started=str(started)), timeout=40)
    killer.join()
    assert started.exists()  # the script was running when its process died
    assert time.monotonic() - start < 30  # not the script's 60 s
    assert "0x8033805B" in str(err.value)  # the shell vanished with its process
    assert_clean_error(err.value, caplog)
    assert not process.alive
    # the next call opens a new pool (a new process) and works
    assert own_executor.run(script(OUT_ENV + "Out-TestEnvelope @{ n = 2 }")).result == {"n": 2}
    assert own_executor.pools_opened == 2 and relay.processes[-1].alive


# --------------------------------------------------------------------------
# 2 and 5. WinRM: the command line runs in the engine
# --------------------------------------------------------------------------

@pytest.fixture
def winrm(pwsh):
    program = EngineProgram(pwsh)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        srv = FakeWinRMServer(program=program, username=USER, password=PASSWORD).install(rsps)
        ex = WinRMExecutor(RemoteOptions(host="winhost", port=5986, ssl=True, auth="basic",
                                         username=USER, password=Secret(PASSWORD),
                                         operation_timeout=2, read_timeout=10))
        yield srv, program, ex
    assert program.running() == [], "a pwsh process outlived its WinRM command"


def test_winrm_runs_the_bootstrap_and_payload_in_the_engine(winrm):
    srv, program, ex = winrm
    text = ("param($ShareCredential, $VMName, $Count)\n" + OUT_ENV +
            "[Console]::Error.WriteLine('a line on stderr')\n"
            "Out-TestEnvelope @{ vm = $VMName; count = $Count; "
            "count_type = $Count.GetType().FullName; "
            "type = $ShareCredential.GetType().FullName; user = $ShareCredential.UserName; "
            "length = $ShareCredential.GetNetworkCredential().Password.Length }")
    params = {"ShareCredential": Credential("CORP\\share", Secret(SHARE_PW)),
              "VMName": UNICODE, "Count": 5}
    res = ex.run(script(text, CRED, scripts.Param("VMName", "string", "v"),
                        scripts.Param("Count", "int", "c")), params)
    assert res.result == {"vm": UNICODE, "count": 5, "count_type": "System.Int64",
                          "type": "System.Management.Automation.PSCredential",
                          "user": "CORP\\share", "length": len(SHARE_PW)}
    (run,) = program.runs
    assert run.argv[1:] == srv.of("Command")[0].arguments.split()
    assert "-EncodedCommand" in run.argv
    assert run.result[1] == b"a line on stderr\n" and run.result[2] == 0
    assert not any(contains_secret(a.encode("utf-8"), SHARE_PW) for a in run.argv)


def test_winrm_real_exit_code_and_stderr_without_an_envelope(winrm, caplog):
    srv, program, ex = winrm
    caplog.set_level(logging.DEBUG)
    text = ("param($ShareCredential)\n"
            "[Console]::Error.WriteLine('robocopy said no for ' + "
            "$ShareCredential.GetNetworkCredential().Password)\nexit 7\n")
    with pytest.raises(exceptions.NoEnvelope) as err:
        ex.run(script(text, CRED), SECRET_PARAMS)
    assert err.value.kwargs["exit_code"] == 7
    assert "robocopy said no for" in err.value.excerpt
    assert_clean_error(err.value, caplog)


def test_winrm_terminating_error_warning_and_error_record(winrm, caplog):
    srv, program, ex = winrm
    caplog.set_level(logging.DEBUG)
    text = ("param($ShareCredential)\n" + OUT_ENV +
            "Write-Warning 'the share is slow'\n"
            "Write-Error -Message 'disk 3 is offline' -ErrorAction Continue\n"
            "Out-TestEnvelope @{ ok = 'yes' }\n"
            "throw ('after the envelope: ' + $ShareCredential.GetNetworkCredential().Password)\n")
    res = ex.run(script(text, CRED), SECRET_PARAMS)
    # the envelope wins; the terminating error after it sets the real exit code 1
    assert res.result == {"ok": "yes"}
    (run,) = program.runs
    out, err, code = run.result
    assert code == 1
    assert b"the share is slow" in out + err and b"disk 3 is offline" in out + err
    assert_no_secret(caplog.text, json.dumps(res.result), repr(res))


def test_winrm_script_that_never_ends_is_killed_at_the_deadline(winrm, caplog):
    srv, program, ex = winrm
    caplog.set_level(logging.DEBUG)
    text = "param($ShareCredential)\nwhile ($true) { Start-Sleep -Milliseconds 50 }\n"
    start = time.monotonic()
    with pytest.raises(exceptions.ExecutorTimeout) as err:
        ex.run(script(text, CRED), SECRET_PARAMS, timeout=2)
    assert time.monotonic() - start < 8
    assert_clean_error(err.value, caplog)
    (run,) = program.runs
    assert run.killed and not run.alive  # Signal terminate ended the process
    assert [r.action for r in srv.requests][-2:] == ["Signal", "Delete"]


def test_winrm_process_killed_mid_call(winrm, caplog):
    srv, program, ex = winrm
    caplog.set_level(logging.DEBUG)
    text = "param($ShareCredential)\nStart-Sleep -Seconds 60\n"

    def kill_when_started():
        deadline = time.monotonic() + 10
        while not program.runs and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        program.runs[0].proc.kill()

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    with pytest.raises(exceptions.NoEnvelope) as err:
        ex.run(script(text, CRED), SECRET_PARAMS, timeout=30)
    killer.join()
    assert err.value.kwargs["exit_code"] == -9  # SIGKILL, as the process reported it
    assert_clean_error(err.value, caplog)


def test_engine_program_passes_its_environment(pwsh):
    program = EngineProgram(pwsh, env={"SMBVOL_ENGINE_PROBE": "from the server",
                                       "PSModulePath": os.pathsep.join(["/nonexistent-a"])})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeWinRMServer(program=program, username=USER, password=PASSWORD).install(rsps)
        ex = WinRMExecutor(RemoteOptions(host="winhost", port=5986, ssl=True, auth="basic",
                                         username=USER, password=Secret(PASSWORD)))
        res = ex.run(script(OUT_ENV + "Out-TestEnvelope @{ probe = $env:SMBVOL_ENGINE_PROBE;"
                                      " paths = @($env:PSModulePath -split "
                                      "[IO.Path]::PathSeparator) }"))
    assert res.result["probe"] == "from the server"
    assert "/nonexistent-a" in res.result["paths"]


def test_relay_passes_its_environment(pwsh):
    with PSRPRelay(pwsh, env={"SMBVOL_ENGINE_PROBE": "from the relay"}, username=USER,
                   password=PASSWORD) as srv:
        with PSRPExecutor.from_conf(psrp_conf(srv)) as ex:
            res = ex.run(script(OUT_ENV + "Out-TestEnvelope @{ probe = "
                                          "$env:SMBVOL_ENGINE_PROBE }"))
        assert res.result == {"probe": "from the relay"}
        assert srv.running() == []
