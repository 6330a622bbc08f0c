"""Configuration errors as an operator reads them, and the generated sample."""

from __future__ import annotations

import io
import logging

import pytest
from oslo_config import cfg, generator

from smbvol import exceptions, opts
from smbvol.cli import errors
from tests.test_cli import clean_env, run  # noqa: F401  (autouse fixture)


def never_called(conf, host):
    raise AssertionError("a host was contacted")


@pytest.mark.parametrize("text, expected", [
    ("[smbvol]\ntransport = ftp\n", "[smbvol] transport: 'ftp' is not one of local, winrm, psrp"),
    ("[smbvol]\nread_timeout = 1\n", "[smbvol] read_timeout: '1' is not a whole number of "
                                     "at least 2"),
    ("[smbvol]\nport = abc\n", "[smbvol] port: 'abc' is not a port number from 0 to 65535"),
    ("[smbvol]\nssl = maybe\n", "[smbvol] ssl: 'maybe' is not true or false"),
    ("[hyperv]\nvolume_attach_retry_count = -1\n",
     "[hyperv] volume_attach_retry_count: '-1' is not a whole number of at least 0"),
    ("[smbvol]\nauth = digest\n", "[smbvol] auth: 'digest' is not one of negotiate, ntlm, "
                                  "kerberos, credssp, certificate, basic"),
])
def test_config_errors_name_the_group_option_value_and_choices(tmp_path, text, expected):
    path = tmp_path / "smbvol.conf"
    path.write_text(text)
    res = run(["--config-file", str(path), "--host", "hv01", "host", "show"],
              factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    assert expected in res.err
    for internal in ("LocationInfo", "Locations.", "Value for option", "Valid values are"):
        assert internal not in res.err


def test_a_later_file_wins_and_its_value_is_the_one_named(tmp_path):
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("[smbvol]\ntransport = psrp\n")
    second.write_text("[smbvol]\ntransport = ftp2\n")
    conf = opts.register_opts(cfg.ConfigOpts())
    conf([], project="smbvol", default_config_files=[str(first), str(second)])
    with pytest.raises(exceptions.ConfigError) as excinfo:
        opts.check_conf(conf)
    assert "'ftp2' is not one of" in str(excinfo.value)


def test_misspelt_keys_in_smbvols_groups_are_warned_of(tmp_path):
    path = tmp_path / "smbvol.conf"
    path.write_text("[smbvol]\ntrnsport = psrp\n[hyperv]\nvolume_atach_retry_count = 1\n"
                    "[DEFAULT]\ndebug = true\n[other]\nanything = 1\n")
    res = run(["--config-file", str(path), "volume", "attach", "--dry-run", "vm",
               "--export", "//fs01/vols", "--name", "v.vhdx"], factory=never_called)
    warnings = [line for line in res.err.splitlines() if "WARNING" in line]
    assert any("[smbvol] trnsport is not an smbvol option" in w
               and "did you mean transport?" in w for w in warnings), res.err
    assert any("[hyperv] volume_atach_retry_count" in w
               and "volume_attach_retry_count" in w for w in warnings), res.err
    assert not any("debug" in w or "anything" in w for w in warnings)


def test_check_conf_is_quiet_for_a_clean_file(tmp_path, caplog):
    path = tmp_path / "smbvol.conf"
    path.write_text("[smbvol]\ntransport = psrp\n[hyperv]\nallow_ide_attach = false\n")
    conf = opts.register_opts(cfg.ConfigOpts())
    conf([], project="smbvol", default_config_files=[str(path)])
    with caplog.at_level(logging.WARNING, logger="smbvol.opts"):
        assert opts.check_conf(conf) is conf
    assert caplog.records == []


def _entry_point_without_install(monkeypatch, tmp_path):
    """setup.py's oslo.config.opts entry point, also when the tests run from a clone that was
    not pip-installed (the README's test command): a distribution on sys.path declaring it."""
    dist = tmp_path / "smbvol_sample-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smbvol-sample\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[oslo.config.opts]\nsmbvol = smbvol.opts:list_opts\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_every_option_and_choice_of_the_sample_is_described(monkeypatch, tmp_path):
    _entry_point_without_install(monkeypatch, tmp_path)
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(["--namespace", "smbvol"])
    out = io.StringIO()
    generator.generate(conf, output_file=out)
    sample = out.getvalue()
    assert "[smbvol]" in sample and "[hyperv]" in sample
    assert "<No description provided>" not in sample
    for _group, options in opts.list_opts():
        for opt in options:
            assert opt.help and opt.help.strip(), opt.name
            for choice in getattr(opt.type, "choices", None) or {}:
                assert "# %s - " % choice in sample, (opt.name, choice)


def test_a_bad_command_line_value_is_worded_like_a_configuration_value():
    res = run(["--host", "hv01", "--port", "70000", "host", "show"], factory=never_called)
    assert res.rc == errors.EXIT_USAGE, res
    assert "invalid configuration option --port: '70000' is not a port number from 0 to " \
           "65535" in res.err
    assert "Should be" not in res.err
