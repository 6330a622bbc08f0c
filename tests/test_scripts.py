"""The script library: catalog, rendering in both modes, parameter checks."""

import itertools
import os

import pytest

from smbvol import exceptions, scripts
from smbvol.secret import Credential, Secret

TEMPLATE_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "ps_templates")


def written(op):
    return os.path.exists(os.path.join(TEMPLATE_DIR, op.template))


def option_sets(op):
    for values in itertools.product((False, True), repeat=len(op.options)):
        yield dict(zip(op.options, values))


def test_every_template_file_is_in_the_catalog():
    files = {f for f in os.listdir(TEMPLATE_DIR)
             if f.endswith(scripts.TEMPLATE_SUFFIX) and not f.startswith("_")}
    assert files <= set(scripts.template_names()), files - set(scripts.template_names())


@pytest.mark.parametrize("name", sorted(scripts.OPERATIONS))
def test_parameter_mode_declares_exactly_the_catalog_parameters(name):
    op = scripts.OPERATIONS[name]
    assert written(op), "the template %s of %s is missing" % (op.template, name)
    for opts in option_sets(op):
        text = scripts.render(name, **opts).text
        assert text.startswith(scripts.param_block(op))
        for p in op.params:
            assert "$" + p.name in text


def test_render_is_cached_and_identical():
    assert scripts.render("host_info").text is scripts.render("host_info").text


def test_unknown_operation_and_option():
    with pytest.raises(exceptions.ScriptError, match="no such operation"):
        scripts.render("format_c_drive")
    with pytest.raises(exceptions.ScriptError, match="unknown option"):
        scripts.render("host_info", evil=True)


def test_check_parameters_types_and_required():
    script = scripts.render("host_info")
    with pytest.raises(exceptions.ScriptError, match="unknown parameter"):
        script.check_parameters({"VMName": "x"})
    op = scripts.OPERATIONS["attach_vhd"]
    s = scripts.Script(operation=op, text="")
    with pytest.raises(exceptions.ScriptError, match="VMName is required"):
        s.check_parameters({"SharePath": "\\\\h\\s", "DiskName": "d.vhdx"})
    with pytest.raises(exceptions.ScriptError, match="MaximumIops must be of type int"):
        s.check_parameters({"VMName": "v", "SharePath": "\\\\h\\s", "DiskName": "d.vhdx",
                            "MaximumIops": "100"})
    with pytest.raises(exceptions.InvalidInput):
        s.check_parameters({"VMName": "v\x00", "SharePath": "\\\\h\\s", "DiskName": "d"})


def test_standalone_inlines_values_quoted_and_never_secrets():
    op = scripts.OPERATIONS["attach_vhd"]
    assert written(op), "the template %s is missing" % op.template
    cred = Credential("CORP\\svc", Secret("Pa55-w0rd'x"))
    text = scripts.render_standalone("attach_vhd", {
        "VMName": "it's ‘vm’", "SharePath": "\\\\fs01\\vols", "DiskName": "v.vhdx",
        "ShareCredential": cred})
    assert "Pa55-w0rd" not in text
    assert "$SmbvolParameters['VMName'] = 'it''s ‘‘vm’’'" in text
    assert "SMBVOL_SHARE_PASSWORD" in text and "Read-Host" in text
    assert scripts.render("attach_vhd").text in text


def test_standalone_without_secrets_has_no_secret_reader():
    text = scripts.render_standalone("host_info", {})
    assert "Read-SmbvolSecret" not in text
    assert text.rstrip().endswith("} @SmbvolParameters")


def test_templates_are_ascii():
    """Windows PowerShell 5.1 reads a script file without a BOM in the ANSI code page: the
    rendered text stays ASCII so a script saved by hand from --dry-run runs as written."""
    folders = [TEMPLATE_DIR, os.path.join(os.path.dirname(__file__), "integration", "templates")]
    for folder in folders:
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            bad = [i for i, b in enumerate(data) if b > 0x7F]
            assert not bad, "%s has non-ASCII bytes at offset %d" % (name, bad[0])
