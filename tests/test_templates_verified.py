"""Every template, in both renderings, under every option combination, through every checker.

The operations come from ``smbvol.scripts.OPERATIONS`` at collection time, so a new operation is
covered as soon as it is in the catalog; one whose template file is missing fails (every
operation has its template).  The checkers are in ``tests/pscheck.py``.
"""

import bisect
import functools
import importlib
import itertools
import string

import jinja2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smbvol import exceptions, quoting
from smbvol.secret import Credential, Secret
from tests import pscheck

scripts = importlib.import_module("smbvol.scripts")
OPERATIONS = scripts.OPERATIONS
MODES = ("parameter", "standalone")
STRING_TYPES = ("string", "strings", "credential", "credentials")


def option_sets(op):
    for values in itertools.product((False, True), repeat=len(op.options)):
        yield dict(zip(op.options, values))


def _option_id(opts):
    return ",".join("%s=%s" % (k, int(v)) for k, v in opts.items()) or "no-options"


def _cases():
    for name in sorted(OPERATIONS):
        for opts in option_sets(OPERATIONS[name]):
            for mode in MODES:
                yield pytest.param(name, mode, opts, id="%s-%s-%s" % (name, mode, _option_id(opts)))


@functools.lru_cache(maxsize=None)
def _written(name):
    try:
        scripts.environment().get_template(OPERATIONS[name].template)
    except jinja2.TemplateNotFound:
        return False
    return True


def require_template(name):
    assert _written(name), "the template %s of %s is missing" % (OPERATIONS[name].template, name)


# --------------------------------------------------------------------------
# Sample values from each parameter's type
# --------------------------------------------------------------------------

def sample_value(p, variant):
    """A value of ``p``'s type; strings carry quotes and code-looking text on purpose."""
    tag = "%s-%s" % (p.name, variant)

    def text(i=0):
        return "smbvol-sample-%s-%d it's \u2018q\u2019 \"d\" $(Evil) `; | &" % (tag, i)

    def cred(i=0):
        return Credential("CORP\\svc-%s-%d" % (tag, i), Secret("pw-%s-%d-S3cret'\u2019" % (tag, i)))

    makers = {
        "string": text,
        "strings": lambda: [text(0), text(1)],
        "int": lambda: 7 if variant == "a" else 9,
        "ints": lambda: [1, 2] if variant == "a" else [3, 4],
        "bool": lambda: variant == "a",
        "credential": cred,
        "credentials": lambda: [cred(0), None],
        "securestring": lambda: Secret("secret-%s-S3cret" % tag),
    }
    if p.type not in makers:
        pytest.fail("no sample value for parameter type %r of %s: add one" % (p.type, p.name))
    return makers[p.type]()


def sample_values(op, variant):
    return {p.name: sample_value(p, variant) for p in op.params}


def _strings(value):
    """Every non-secret string inside a value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Credential):
        yield value.username
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _secrets(value):
    if isinstance(value, Secret):
        yield value.reveal()
    elif isinstance(value, Credential):
        yield value.password.reveal()
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _secrets(v)


def sentinelize(values):
    """(values with every string and secret replaced by a unique sentinel, sentinel → value)."""
    mapping = {}

    def sub(value):
        if isinstance(value, str):
            key = "SmbvolSentinel%04d" % len(mapping)
            mapping[key] = value
            return key
        if isinstance(value, Secret):
            return Secret(sub(value.reveal()))
        if isinstance(value, Credential):
            return Credential(sub(value.username), sub(value.password))
        if isinstance(value, (list, tuple)):
            return [sub(v) for v in value]
        return value

    return {k: sub(v) for k, v in values.items()}, mapping


def render_text(name, mode, opts, values):
    if mode == "parameter":
        return scripts.render(name, **opts).text
    return scripts.render_standalone(name, values, **opts)


def assert_clean(text):
    issues = (pscheck.parse_errors(text) + pscheck.quote_issues(text)
              + pscheck.command_issues(text, pscheck.load_index())
              + pscheck.ps7_only_syntax(text))
    assert [str(i) for i in issues] == []


# --------------------------------------------------------------------------
# Every template, both modes, every option combination
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name, mode, opts", list(_cases()))
def test_template_passes_every_checker(name, mode, opts):
    require_template(name)
    op = OPERATIONS[name]
    values_a, values_b = sample_values(op, "a"), sample_values(op, "b")
    text = render_text(name, mode, opts, values_a)
    assert_clean(text)

    secrets = [s for v in values_a.values() for s in _secrets(v)]
    for secret in secrets:
        assert pscheck.value_positions(text, secret) == [], "a secret is in the script text"

    if mode == "parameter":
        script_a = scripts.render(name, **opts)
        script_a.check_parameters(values_a)
        script_b = scripts.render(name, **opts)
        script_b.check_parameters(values_b)
        assert script_a.text.encode("utf-8") == script_b.text.encode("utf-8")
        for value in itertools.chain(values_a.values(), values_b.values()):
            for s in _strings(value):
                assert pscheck.value_positions(script_a.text, s) == [], s
    else:
        safe, mapping = sentinelize(values_a)
        baseline = scripts.render_standalone(name, safe, **opts)
        assert [str(i) for i in pscheck.substitution_issues(text, baseline, mapping)] == []
        assert scripts.render(name, **opts).text in text


# --------------------------------------------------------------------------
# Hostile values (hypothesis)
# --------------------------------------------------------------------------

QUOTES = quoting.SINGLE_QUOTES + quoting.DOUBLE_QUOTES
PIECES = list(QUOTES) + [
    "`", "``", "`'", "$", "$(Evil)", "${Evil}", "${env:PATH}", "$Evil", "@(Evil)", ";", "|", "&",
    "&&", "||", "\n", "\r", "\r\n", "\n'@\n", "\n\u2019@\n", "\n\"@\n", "@'", "@\"", "#", "<#",
    "#>", "--%", "''", "\u2019\u2019", "'; Evil; '", "\u2019; Evil; \u2019", "\"; Evil; \"",
    "\u201d; Evil; \u201c", "\\", "\\\\fs01\\vols", "\u00e9\u4e2d\u0416\U0001f600", " ", "\t",
    "\u2028", "\u00a0", "-Name", "{", "}", "(", ")", "[", "]",
]
# No NUL (tested apart) and no lone surrogates (they have no UTF-8 form).
_CHARS = st.characters(min_codepoint=1, exclude_categories=("Cs",))
_SMALL = st.one_of(st.sampled_from(PIECES), st.text(_CHARS, max_size=6))
_BIG = st.sampled_from(PIECES).map(lambda p: (p * 4096)[:4096])
#: Mostly short pieces; about one value in four carries a 4 KB run.
HOSTILE = st.lists(st.one_of(_SMALL, _SMALL, _SMALL, _SMALL, _SMALL, _SMALL, _SMALL, _BIG),
                   max_size=4).map("".join)
_TAG = st.text(string.ascii_letters, min_size=10, max_size=10)


@st.composite
def tagged(draw, prefix="pv"):
    """A hostile string with a random tag inside, so it cannot occur in a template by chance."""
    return draw(HOSTILE) + prefix + draw(_TAG) + draw(HOSTILE)


def hostile_value(p):
    secret = tagged(prefix="sv").map(Secret)
    cred = st.builds(Credential, tagged(), secret)
    if p.name == "LockTimeoutSeconds":
        # A negative wait is refused in Python before any script exists (Script.check_parameters).
        return st.integers(min_value=0, max_value=2 ** 40)
    return {
        "string": tagged(),
        "strings": st.lists(tagged(), min_size=1, max_size=3),
        "int": st.integers(min_value=-(2 ** 40), max_value=2 ** 40),
        "ints": st.lists(st.integers(min_value=0, max_value=2 ** 31), min_size=1, max_size=3),
        "bool": st.booleans(),
        "credential": cred,
        "credentials": st.lists(st.one_of(st.none(), cred), min_size=1, max_size=3),
        "securestring": secret,
    }[p.type]


def _ops_with_strings():
    return sorted(n for n, op in OPERATIONS.items()
                  if any(p.type in STRING_TYPES for p in op.params))


#: Per operation and run (each run draws new values): 25 examples, about 0.15 s each.
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])


@pytest.mark.parametrize("name", _ops_with_strings())
@PROPERTY_SETTINGS
@given(data=st.data())
def test_hostile_values_stay_data(name, data):
    require_template(name)
    op = OPERATIONS[name]
    opts = data.draw(st.sampled_from(list(option_sets(op))), label="options")
    values = {p.name: data.draw(hostile_value(p), label=p.name) for p in op.params}
    plain = [s for v in values.values() for s in _strings(v)]
    assume(not any(secret in s for v in values.values() for secret in _secrets(v)
                   for s in plain))
    # One value inside another (shrunk tags coincide) can meet the code around the other's
    # literal, e.g. "('pvAAAAAAAAAA" next to @('pvAAAAAAAAAA'): not a value turned into code.
    assume(not any(a != b and a in b for a, b in itertools.permutations(plain, 2)))

    # Parameter mode: the values are accepted as parameters and none is in the text.
    script = scripts.render(name, **opts)
    script.check_parameters(values)
    for value in values.values():
        for s in itertools.chain(_strings(value), _secrets(value)):
            assert pscheck.value_positions(script.text, s) == []

    # Standalone mode: same script as with harmless sentinels, only literal contents differ,
    # each decoding (PowerShell's rule) to its value; no string ends early; no secret inlined.
    text = scripts.render_standalone(name, values, **opts)
    safe, mapping = sentinelize(values)
    baseline = scripts.render_standalone(name, safe, **opts)
    assert [str(i) for i in pscheck.parse_errors(text)] == []
    assert [str(i) for i in pscheck.quote_issues(text)] == []
    assert [str(i) for i in pscheck.substitution_issues(text, baseline, mapping)] == []
    literals = pscheck.string_literals(text)
    base_literals = pscheck.string_literals(baseline)
    value_literals = [lit for lit, base in zip(literals, base_literals)
                      if base.value is not None and any(k in base.value for k in mapping)]
    starts = [lit.start for lit in value_literals]
    for param in op.params:
        value = values[param.name]
        for secret in _secrets(value):
            assert pscheck.value_positions(text, secret) == [], "a secret is in the text"
        for s in _strings(value):
            for a, b in pscheck.value_positions(text, s):
                k = bisect.bisect_right(starts, a) - 1
                assert k >= 0 and b <= value_literals[k].end, \
                    "value at %d outside the string literals that hold values" % a
        if param.type in ("string", "strings"):
            # Exactly one literal carries each string value, and it decodes to it.
            for sentinel in _strings(safe[param.name]):
                at = [i for i, lit in enumerate(base_literals) if lit.value == sentinel]
                assert len(at) == 1
                assert literals[at[0]].value == mapping[sentinel]


@pytest.mark.parametrize("name", _ops_with_strings())
def test_every_hostile_piece_alone_stays_data(name):
    """Each hostile piece as the whole value of a string parameter (no tag around it)."""
    require_template(name)
    op = OPERATIONS[name]
    params = [p for p in op.params if p.type in ("string", "strings")]
    if not params:
        pytest.skip("%s has no plain string parameter" % name)
    base = sample_values(op, "a")
    pieces = PIECES + [(p * 4096)[:4096] for p in QUOTES]
    for start in range(0, len(pieces), len(params)):
        values = dict(base)
        for p, piece in zip(params, pieces[start:start + len(params)]):
            values[p.name] = piece if p.type == "string" else [piece, piece]
        text = scripts.render_standalone(name, values)
        safe, mapping = sentinelize(values)
        baseline = scripts.render_standalone(name, safe)
        assert [str(i) for i in pscheck.parse_errors(text)] == []
        assert [str(i) for i in pscheck.quote_issues(text)] == []
        assert [str(i) for i in pscheck.substitution_issues(text, baseline, mapping)] == []


@settings(max_examples=40, deadline=None)
@given(before=HOSTILE, after=HOSTILE, name=st.sampled_from(sorted(OPERATIONS)),
       bad=st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]))
def test_nul_and_lone_surrogates_are_rejected_before_any_script_exists(before, after, name, bad):
    value = before + bad + after
    with pytest.raises(exceptions.InvalidInput):
        quoting.ps_quote(value)
    op = OPERATIONS[name]
    script = scripts.Script(operation=op, text="")
    for p in op.params:
        if p.type not in STRING_TYPES + ("securestring",):
            continue
        values = {q.name: sample_value(q, "a") for q in op.params}
        values[p.name] = {
            "string": value,
            "strings": ["ok", value],
            "credential": Credential(value, Secret("pw")),
            "credentials": [None, Credential("u", Secret(value))],
            "securestring": Secret(value),
        }[p.type]
        with pytest.raises(exceptions.InvalidInput):
            script.check_parameters(values)
        require_template(name)
        with pytest.raises(exceptions.InvalidInput):
            scripts.render_standalone(name, values)
