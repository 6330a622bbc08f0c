"""Where and how the command connects: configuration, hosts and passwords.

The configuration is an oslo.config ``ConfigOpts`` with smbvol's options
(:mod:`smbvol.opts`), read from ``--config-file`` (or oslo.config's usual
places: ``~/.smbvol/smbvol.conf``, ``/etc/smbvol/smbvol.conf``...).  Options
given on the command line win over the files.

Passwords are never command-line values.  The remoting password comes from
``--password-file``, else ``$SMBVOL_PASSWORD``, else ``[smbvol] password``,
else a prompt when standard input is a terminal.  The share password comes
from ``--share-password-file``, else ``$SMBVOL_SHARE_PASSWORD``, else a
prompt.  Nothing here writes a password anywhere but into the configuration
object (a ``secret`` option) or a :class:`~smbvol.secret.Secret`.
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import stat
from typing import Callable, List, Mapping, Optional, Sequence, TextIO, Tuple

from oslo_config import cfg

from smbvol import exceptions, opts
from smbvol.cli.errors import UsageError
from smbvol.secret import Secret

LOG = logging.getLogger(__name__)

PASSWORD_ENV = "SMBVOL_PASSWORD"
SHARE_PASSWORD_ENV = "SMBVOL_SHARE_PASSWORD"
LOCALHOST = "localhost"
TRANSPORTS = ("winrm", "psrp", "local")
AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "certificate", "basic")
#: Authentication mechanisms that need a password with the user name.
PASSWORD_AUTHS = ("negotiate", "ntlm", "credssp", "basic")
DEFAULT_REMOTE_TRANSPORT = "psrp"

INSECURE_WARNING = (
    "smbvol: WARNING: --insecure: the TLS certificate of the Hyper-V host is NOT checked. "
    "Anyone on the network path can impersonate the host and receive the credentials "
    "sent to it. Use --ca-file instead outside a lab.")

Prompt = Callable[[str], str]


@dataclasses.dataclass(frozen=True)
class Targets:
    """The configuration and the hosts to run on (``localhost`` for the local transport)."""

    conf: cfg.ConfigOpts
    hosts: Tuple[str, ...]
    transport: str

    @property
    def local(self) -> bool:
        return self.transport == "local"


def load_conf(config_files: Optional[Sequence[str]]) -> cfg.ConfigOpts:
    """smbvol's options read from ``config_files`` (or oslo.config's default places)."""
    files: Optional[List[str]] = None
    if config_files:
        files = []
        for path in config_files:
            if not os.path.isfile(path):
                raise UsageError(reason="--config-file %s: no such file" % path)
            files.append(path)
    conf = opts.register_opts(cfg.ConfigOpts())
    try:
        conf([], project="smbvol", prog="smbvol",
             default_config_files=files if files is not None else None,
             use_env=False)
    except cfg.Error as exc:
        raise exceptions.ConfigError(option="--config-file", reason=str(exc)) from exc
    # Read every option now, so a bad value is a usage error before anything runs
    # (worded "[smbvol] transport: 'ftp' is not one of ..."); unknown keys are warned of.
    return opts.check_conf(conf)


def _override(conf: cfg.ConfigOpts, name: str, value, group: str = opts.SMBVOL_GROUP) -> None:
    try:
        conf.set_override(name, value, group=group)
    except (ValueError, cfg.Error):
        raise exceptions.ConfigError(option="--" + name.replace("_", "-"),
                                     reason=opts.bad_value(group, name, value)) from None


def read_hosts_file(path: str) -> List[str]:
    """Host names, one per line; blank lines and ``#`` comments are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(reason="--hosts-file %s: %s" % (path, exc.strerror or exc)) from exc
    hosts = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if any(c.isspace() for c in text):
            raise exceptions.InvalidInput(
                field="--hosts-file %s line %d" % (path, number), value=text,
                reason="one host name per line")
        hosts.append(text)
    if not hosts:
        raise UsageError(reason="--hosts-file %s names no host" % path)
    return hosts


def _unique(items: Sequence[str]) -> Tuple[str, ...]:
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return tuple(seen)


def targets(options, stderr: TextIO) -> Targets:
    """The configuration with the command-line options applied, and the hosts.

    ``options`` is the namespace of the global options.  No host given means
    the local executor, unless the configuration names a remote transport, in
    which case ``[smbvol] host`` is used.  Hosts given without ``--transport``
    (and no remote transport configured) use PSRP.
    """
    conf = load_conf(getattr(options, "config_files", None))
    hosts: List[str] = list(getattr(options, "hosts", None) or ())
    if getattr(options, "hosts_file", None):
        hosts += read_hosts_file(options.hosts_file)
    for host in hosts:
        if not host.strip() or any(c.isspace() for c in host):
            raise exceptions.InvalidInput(field="--host", value=host,
                                          reason="a host name has no spaces")
    transport = getattr(options, "transport", None)
    if transport is None:
        transport = conf.smbvol.transport
        if hosts and transport == "local":
            transport = DEFAULT_REMOTE_TRANSPORT
    if transport == "local" and hosts and set(hosts) != {LOCALHOST}:
        raise UsageError(reason="--transport local runs on this machine: drop --host, or use "
                                "--transport psrp or winrm")
    if not hosts:
        hosts = [LOCALHOST] if transport == "local" else [conf.smbvol.host]
    _override(conf, "transport", transport)
    for name in ("auth", "port", "ssl", "ca_file", "username"):
        value = getattr(options, name, None)
        if value is not None:
            _override(conf, name, value)
    if getattr(options, "insecure", False):
        _override(conf, "cert_validation", False)
        if transport != "local":
            stderr.write(INSECURE_WARNING + "\n")
    if getattr(options, "ca_file", None) and not os.path.isfile(options.ca_file):
        raise UsageError(reason="--ca-file %s: no such file" % options.ca_file)
    return Targets(conf=conf, hosts=_unique(hosts), transport=transport)


def read_password_file(path: str, option: str, stderr: TextIO) -> str:
    """The first line of ``path`` (the file is never echoed)."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except OSError as exc:
        raise UsageError(reason="%s %s: %s" % (option, path, exc.strerror or exc)) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        stderr.write("smbvol: warning: %s %s can be read by other users; chmod 600 it\n"
                     % (option, path))
    password = first.rstrip("\r\n")
    if not password:
        raise UsageError(reason="%s %s: the first line is empty" % (option, path))
    return password


def _prompt_allowed(stdin: TextIO) -> bool:
    try:
        return bool(stdin.isatty())
    except (AttributeError, ValueError):
        return False


def host_password(options, target: Targets, environ: Mapping[str, str], stdin: TextIO,
                  stderr: TextIO, prompt: Optional[Prompt] = None) -> Optional[Secret]:
    """The remoting password, put into ``[smbvol] password`` of the configuration.

    Returns it as a Secret (for log masking), or None when none is needed.
    """
    conf = target.conf
    if target.local:
        return None
    password: Optional[str] = None
    if getattr(options, "password_file", None):
        password = read_password_file(options.password_file, "--password-file", stderr)
    elif environ.get(PASSWORD_ENV):
        password = environ[PASSWORD_ENV]
    elif conf.smbvol.password:
        return Secret(conf.smbvol.password)
    elif conf.smbvol.username and conf.smbvol.auth in PASSWORD_AUTHS:
        if not _prompt_allowed(stdin):
            raise UsageError(
                reason="no password for %s: set %s, pass --password-file, or run in a "
                       "terminal to be prompted" % (conf.smbvol.username, PASSWORD_ENV))
        password = (prompt or getpass.getpass)(
            "Password for %s on %s: " % (conf.smbvol.username, ", ".join(target.hosts)))
        if not password:
            raise UsageError(reason="no password given for %s" % conf.smbvol.username)
    if password is None:
        return None
    _override(conf, "password", password)
    return Secret(password)


def share_password(username: str, options, environ: Mapping[str, str], stdin: TextIO,
                   stderr: TextIO, prompt: Optional[Prompt] = None) -> Secret:
    """The password of share user ``username``."""
    if getattr(options, "share_password_file", None):
        return Secret(read_password_file(options.share_password_file,
                                         "--share-password-file", stderr))
    if environ.get(SHARE_PASSWORD_ENV):
        return Secret(environ[SHARE_PASSWORD_ENV])
    if not _prompt_allowed(stdin):
        raise UsageError(
            reason="no password for share user %s: set %s, pass --share-password-file, or "
                   "run in a terminal to be prompted" % (username, SHARE_PASSWORD_ENV))
    password = (prompt or getpass.getpass)("Password of share user %s: " % username)
    if not password:
        raise UsageError(reason="no password given for share user %s" % username)
    return Secret(password)
