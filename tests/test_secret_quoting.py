"""Secrets are never shown; the one quoting function doubles every quote character."""

import json

import pytest

from smbvol import exceptions
from smbvol.quoting import SINGLE_QUOTES, ps_literal, ps_quote
from smbvol.secret import Credential, RedactingJSONEncoder, Secret, iter_secrets, mask

PW = "Tr0ub4dor&3-unique"


def test_secret_never_revealed_by_str_repr_format_json():
    s = Secret(PW)
    for text in (str(s), repr(s), format(s), "%s" % s, "{}".format(s), f"{s!r}",
                 json.dumps({"p": s}, cls=RedactingJSONEncoder)):
        assert PW not in text
    with pytest.raises(TypeError):
        json.dumps({"p": s})
    assert s.reveal() == PW


def test_credential_repr_hides_password():
    c = Credential("CORP\\svc", PW)
    assert isinstance(c.password, Secret)
    assert PW not in repr(c) and "CORP" in repr(c)
    assert PW not in json.dumps(c, cls=RedactingJSONEncoder)


def test_iter_secrets_and_mask():
    params = {"a": "x", "c": Credential("u", PW), "l": [Secret("other-one"), None]}
    found = sorted(iter_secrets(params))
    assert found == sorted([PW, "other-one"])
    assert mask("pw=%s; again %s" % (PW, PW), found) == "pw=***; again ***"


@pytest.mark.parametrize("q", ["'", "\u2018", "\u2019", "\u201a", "\u201b"])
def test_every_single_quote_character_is_doubled(q):
    assert q in SINGLE_QUOTES
    assert ps_quote("a%sb" % q) == "'a%s%sb'" % (q, q)


def test_quote_rejects_nul_and_non_str():
    with pytest.raises(exceptions.InvalidInput):
        ps_quote("a\x00b")
    with pytest.raises(TypeError):
        ps_quote(3)


def test_literal_forms():
    assert ps_literal(None) == "$null"
    assert ps_literal(True) == "$true"
    assert ps_literal(7) == "7"
    assert ps_literal(["a", "b'"]) == "@('a', 'b''')"
    with pytest.raises(TypeError):
        ps_literal(Secret(PW))
    with pytest.raises(TypeError):
        ps_literal(Credential("u", PW))


def test_asdict_of_a_dataclass_holding_a_credential_keeps_the_secret_hidden():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Holder:
        credential: Credential

    d = dataclasses.asdict(Holder(Credential("u", Secret(PW))))
    assert isinstance(d["credential"]["password"], Secret)
    assert PW not in repr(d)


def test_quote_rejects_lone_surrogates():
    with pytest.raises(exceptions.InvalidInput, match="not valid Unicode"):
        ps_quote("abc\ud800")
