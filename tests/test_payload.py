"""The stdin protocol of the local and WinRM executors: values and secrets off the command line."""

import base64
import json

from smbvol.executors import base
from smbvol.secret import Credential, Secret
from tests.markers import needs_grammar

PW = "Sh4re-P@ss-unique"


def decode(payload):
    lines = payload.rstrip("\n").split("\n")
    text = base64.b64decode(lines[0]).decode("utf-8")
    plain = json.loads(base64.b64decode(lines[1]).decode("utf-8"))
    secrets = [line.split("\t") for line in lines[2:]]
    return text, plain, secrets


def encodings(value):
    raw8, raw16 = value.encode("utf-8"), value.encode("utf-16-le")
    return [value, base64.b64encode(raw8).decode(), base64.b64encode(raw16).decode()]


def test_command_line_is_fixed_and_holds_no_value():
    args = " ".join(base.POWERSHELL_ARGS)
    assert "-EncodedCommand" in args and "-NonInteractive" in args and "-NoProfile" in args
    decoded = base64.b64decode(base.POWERSHELL_ARGS[-1]).decode("utf-16-le")
    assert decoded == base.BOOTSTRAP
    assert "foreach ($line in $input)" in decoded and "[Console]::In.ReadToEnd()" in decoded


def test_payload_carries_script_plain_values_and_secrets_separately():
    params = {"VMName": "inst-ü1", "MaximumIops": 500, "Flags": ["a", "b"],
              "ShareCredential": Credential("CORP\\svc", Secret(PW))}
    text, plain, secrets = decode(base.encode_payload("param($VMName)\n'ok'", params))
    assert text == "param($VMName)\n'ok'"
    assert plain == {"VMName": "inst-ü1", "MaximumIops": 500, "Flags": ["a", "b"]}
    assert PW not in json.dumps(plain)
    (kind, name, index, user, pw), = secrets
    assert kind == "credential" and index == "-"
    assert base64.b64decode(name).decode() == "ShareCredential"
    assert base64.b64decode(user).decode() == "CORP\\svc"
    assert base64.b64decode(pw).decode() == PW
    for form in encodings(PW):
        assert form not in " ".join(base.POWERSHELL_ARGS)


def test_credential_arrays_keep_their_positions():
    creds = [Credential("a", Secret("one")), None, Credential("c", Secret("three"))]
    _, plain, secrets = decode(base.encode_payload("x", {"ShareCredentials": creds}))
    assert plain == {"ShareCredentials#count": 3}
    assert [s[2] for s in secrets] == ["0", "2"]


def test_bare_secret_is_a_securestring_line():
    _, plain, secrets = decode(base.encode_payload("x", {"ChapSecret": Secret("chap-s3cret")}))
    assert plain == {}
    assert secrets[0][0] == "securestring"
    assert base64.b64decode(secrets[0][3]).decode() == "chap-s3cret"


def test_describe_parameters_masks_secrets():
    described = base.describe_parameters(
        {"c": Credential("svc", Secret(PW)), "s": Secret(PW), "l": [Credential("x", PW)],
         "v": "vm"})
    assert PW not in repr(described)
    assert described == {"c": "svc/***", "s": "***", "l": ["x/***"], "v": "vm"}


@needs_grammar
def test_bootstrap_passes_the_offline_verification():
    from tests import pscheck

    text = base.BOOTSTRAP
    assert pscheck.parse_errors(text) == []
    assert pscheck.quote_issues(text) == []
    assert pscheck.ps7_only_syntax(text) == []
    # Turning the received script text into code is the bootstrap's whole job; nothing else
    # may be flagged (every cmdlet and parameter it uses exists in PowerShell 5.1).
    issues = pscheck.command_issues(text)
    assert sorted(i.message.split(":")[0] for i in issues) == [
        "command name is computed ('& $block @values')", "forbidden"]
