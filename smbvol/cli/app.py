"""The ``smbvol`` command: a cliff application (OpenStack's CLI framework).

``main()`` is the console script.  Options that say where and how to connect
(``--host``, ``--transport``...) are global: they may appear before or after
the command name.  Output goes through cliff's formatters (``-f table|json|
yaml|value|csv``, ``-c COLUMN``); errors are one line each on stderr and the
exit code says what kind of failure it was (:mod:`smbvol.cli.errors`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import traceback
from typing import Callable, List, Mapping, Optional, Sequence, TextIO

from cliff import app as cliff_app
from cliff import commandmanager

import smbvol
from smbvol.cli import errors, safeargs, settings
from smbvol.cli.commands import COMMANDS
from smbvol.secret import has_short_secret, mask

LOG = logging.getLogger(__name__)

DESCRIPTION = """\
Attach VHD/VHDX volumes on SMB shares to Hyper-V VMs, from this machine or
remotely over PSRP or WinRM, on one host or many at once.

Main job, no host needed: print the script an operator runs on the host
  smbvol volume attach --dry-run instance-0001 --export //fs01/vols --name volume-1.vhdx
"""

EPILOG = errors.EXIT_CODES_HELP + """
passwords are never command-line values: the remoting password comes from
--password-file, else $SMBVOL_PASSWORD, else a prompt (when stdin is a terminal);
the share password from --share-password-file, else $SMBVOL_SHARE_PASSWORD, else a prompt.
"""

#: Options that would carry a password on the command line: refused outright,
#: without echoing the value argparse would otherwise print.  Any other option
#: whose name holds "pass" or "pwd" (``--share-pass``, ``--password-f``) is refused
#: the same way: abbreviations are off, so it can only be a mistake, and the word
#: after it may well be a password.
_PASSWORD_OPTIONS = ("--password", "--share-password", "--pass", "-p")
_PASSWORD_FILE_OPTIONS = ("--password-file", "--share-password-file")

ExecutorFactory = Callable[[object, str], object]


def default_executor_factory(conf, host: str):
    """The executor of ``conf.smbvol.transport`` for ``host``."""
    from smbvol import executors

    if conf.smbvol.transport == "local":
        return executors.get_executor(conf, host=None)
    return executors.get_executor(conf, host=host)


class _MaskSecrets(logging.Filter):
    """Masks every known secret in log records (a second line of defence)."""

    def __init__(self, app: "SmbvolApp") -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.app.secrets()
        if secrets:
            text = record.getMessage()
            masked = mask(text, secrets)
            if masked != text:
                record.msg, record.args = masked, None
        return True


class _ConsoleFilter(logging.Filter):
    """Console: only smbvol's own records below WARNING; errors are reported by the app."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "smbvol" or record.name.startswith("smbvol.")
        if not ours:
            return record.levelno >= logging.WARNING
        if record.levelno >= logging.ERROR and not record.name.startswith("smbvol.cli"):
            return False  # the command prints each error once, with what to do
        return True


class _ThirdPartyFilter(logging.Filter):
    """Log file: transport libraries only from WARNING (their debug may dump messages)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.split(".", 1)[0] in ("smbvol", "cliff", "stevedore")
        return ours or record.levelno >= logging.WARNING


class SmbvolApp(cliff_app.App):
    """The cliff application; also the place commands get settings and report errors."""

    NAME = "smbvol"
    LOG = logging.getLogger("smbvol.cli.app")
    CONSOLE_MESSAGE_FORMAT = "smbvol: %(levelname)s: %(message)s"

    def __init__(self, *, executor_factory: Optional[ExecutorFactory] = None,
                 stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None,
                 stderr: Optional[TextIO] = None,
                 environ: Optional[Mapping[str, str]] = None,
                 prompt: Optional[Callable[[str], str]] = None) -> None:
        manager = commandmanager.CommandManager("smbvol.cli")
        for name, cls in COMMANDS:
            manager.add_command(name, cls)
        self.executor_factory = executor_factory or default_executor_factory
        self.environ = os.environ if environ is None else environ
        self.prompt = prompt
        self._secrets: List[str] = []
        self._secrets_lock = threading.Lock()
        #: Held while a line goes to stderr, so lines of hosts ending at once never mix.
        self.stderr_lock = threading.RLock()
        self._handlers: List[logging.Handler] = []
        self._root_level: Optional[int] = None
        self._no_command = False
        self._targets: Optional[settings.Targets] = None
        super().__init__(description=DESCRIPTION, version=smbvol.__version__,
                         command_manager=manager, stdin=stdin, stdout=stdout, stderr=stderr,
                         deferred_help=True)

    # -- options -------------------------------------------------------------
    def build_option_parser(self, description, version, argparse_kwargs=None):
        kwargs = dict(argparse_kwargs or {})
        kwargs.update(prog=self.NAME, epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      allow_abbrev=False)
        parser = safeargs.harden(super().build_option_parser(description, version, kwargs))
        for action in parser._actions:
            if "--version" in action.option_strings:
                action.version = "smbvol %s" % version
        conn = parser.add_argument_group(
            "connection", "where and how to reach the Hyper-V hosts (before or after the "
                          "command); no host means this machine")
        conn.add_argument("--host", action="append", dest="hosts", metavar="HOST",
                          help="a Hyper-V host; repeat for several")
        conn.add_argument("--hosts-file", metavar="FILE",
                          help="file with one host per line (# comments)")
        conn.add_argument("--parallel", type=int, default=8, metavar="N",
                          help="hosts worked on at once (default 8)")
        conn.add_argument("--transport", choices=settings.TRANSPORTS,
                          help="psrp (default with --host), winrm, or local")
        conn.add_argument("--auth", choices=settings.AUTHS,
                          help="authentication (default from the configuration: ntlm)")
        conn.add_argument("--port", type=int, metavar="PORT",
                          help="WinRM port (default 5986 with TLS, 5985 without)")
        conn.add_argument("--ssl", action=argparse.BooleanOptionalAction, default=None,
                          help="HTTPS (the default) or plain HTTP with message encryption")
        conn.add_argument("--ca-file", metavar="FILE",
                          help="CA bundle that issued the hosts' certificates")
        conn.add_argument("--insecure", action="store_true",
                          help="do not check the hosts' TLS certificates (dangerous)")
        conn.add_argument("--username", metavar="USER",
                          help="remoting user, DOMAIN\\user or user@domain")
        conn.add_argument("--password-file", metavar="FILE",
                          help="file whose first line is the remoting password "
                               "(else $SMBVOL_PASSWORD, else a prompt)")
        conn.add_argument("--config-file", action="append", dest="config_files",
                          metavar="FILE",
                          help="oslo.config file with [smbvol] and [hyperv] options; "
                               "command-line options win; repeatable")
        return parser

    # -- logging -------------------------------------------------------------
    def configure_logging(self) -> None:
        """Console on stderr (warnings; -v info, -vv debug) and optional --log-file."""
        root = logging.getLogger("")
        self._root_level = root.level
        root.setLevel(logging.DEBUG)
        mask_filter = _MaskSecrets(self)
        if self.options.log_file:
            handler = logging.FileHandler(self.options.log_file, encoding="utf-8")
            handler.setFormatter(logging.Formatter(self.LOG_FILE_MESSAGE_FORMAT))
            handler.addFilter(_ThirdPartyFilter())
            handler.addFilter(mask_filter)
            root.addHandler(handler)
            self._handlers.append(handler)
        console = logging.StreamHandler(self.stderr)
        console.setLevel({0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}.get(
            self.options.verbose_level, logging.DEBUG))
        console.setFormatter(logging.Formatter(self.CONSOLE_MESSAGE_FORMAT))
        console.addFilter(_ConsoleFilter())
        console.addFilter(mask_filter)
        root.addHandler(console)
        self._handlers.append(console)

    def close_logging(self) -> None:
        root = logging.getLogger("")
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        self._handlers = []
        if self._root_level is not None:
            root.setLevel(self._root_level)

    # -- secrets ---------------------------------------------------------------
    def add_secret(self, secret: Optional[str]) -> None:
        if secret:
            with self._secrets_lock:
                self._secrets.append(secret)

    def secrets(self) -> List[str]:
        with self._secrets_lock:
            return list(self._secrets)

    def masked(self, text: str) -> str:
        return mask(text, self.secrets())

    # -- settings for the commands ---------------------------------------------
    def targets(self) -> settings.Targets:
        """Configuration and hosts from the global options (computed once)."""
        if self._targets is None:
            parallel = getattr(self.options, "parallel", 8)
            if parallel is None or parallel < 1:
                raise errors.UsageError(reason="--parallel must be 1 or more")
            self._targets = settings.targets(self.options, self.stderr)
            if self._targets.conf.smbvol.password:
                self.add_secret(self._targets.conf.smbvol.password)
        return self._targets

    def host_password(self, target: settings.Targets) -> None:
        secret = settings.host_password(self.options, target, self.environ, self.stdin,
                                        self.stderr, prompt=self.prompt)
        if secret is not None:
            self.add_secret(secret.reveal())

    def parallel(self) -> int:
        return int(getattr(self.options, "parallel", 8) or 8)

    # -- errors ----------------------------------------------------------------
    def report_failure(self, exc: BaseException, host: Optional[str] = None
                       ) -> errors.Failure:
        """Write one line for ``exc`` (and the traceback with --debug); return it."""
        failure = errors.failure(exc, host)
        # The message may echo a secret: masked (withheld whole under a secret too short
        # to mask, see smbvol.secret).  The prefix, host and hint are smbvol's own text.
        failure = dataclasses.replace(
            failure, message=self.masked(failure.message),
            host=failure.host if failure.host is None or has_short_secret(self.secrets())
            else self.masked(failure.host))
        with self.stderr_lock:
            self.stderr.write(failure.line() + "\n")
            if getattr(self.options, "debug", False):
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.stderr.write(self.masked(text))
            self.stderr.flush()
        LOG.debug("exit code %d for %s", failure.code, type(exc).__name__)
        return failure

    def report(self, exc: BaseException, host: Optional[str] = None) -> int:
        return self.report_failure(exc, host).code

    # -- cliff hooks -------------------------------------------------------------
    def interact(self) -> None:
        """No command given: show the help instead of an interactive shell."""
        self._no_command = True
        self.parser.print_help(self.stderr)

    def prepare_to_run_command(self, cmd) -> None:
        """Every command's parser (cliff's help and complete too) is hardened."""
        get_parser = cmd.get_parser

        def hardened(prog_name: str):
            return safeargs.harden(get_parser(prog_name))

        cmd.get_parser = hardened

    def run_subcommand(self, argv: List[str]) -> int:
        """Run a command; an unknown one is a usage error reported on stderr.

        The message names the command words typed and the unknown options,
        never an option's value (which may be a password).
        """
        try:
            self.command_manager.find_command(argv)
        except ValueError:
            self.stderr.write("smbvol: error: %s; see smbvol help\n" % _unknown_command(
                argv, [name for name, _ in self.command_manager]))
            return errors.EXIT_USAGE
        return super().run_subcommand(argv)

    def run(self, argv: List[str]) -> int:
        result = super().run(argv)
        if self._no_command:
            return errors.EXIT_USAGE
        return result


def _unknown_command(argv: Sequence[str], names: Sequence[str]) -> str:
    """Why ``argv`` names no command, without any option value."""
    words: List[str] = []
    for arg in argv:
        if arg.startswith("-") or len(words) == 2:
            break
        words.append(arg)
    if not words:
        return "unknown option %s (options of a command go after its name)" % (
            safeargs.unknown_words([argv[0]]))
    typed = " ".join(words)
    close = sorted(name for name in names
                   if name.split()[0] == words[0] or name.startswith(words[0]))
    return "'%s' is not an smbvol command%s" % (
        typed, " (did you mean: %s?)" % ", ".join(close) if close else "")


def _is_password_option(name: str) -> bool:
    if name in _PASSWORD_OPTIONS:
        return True
    lowered = name.lower()
    return (lowered.startswith("--") and name not in _PASSWORD_FILE_OPTIONS
            and ("pass" in lowered or "pwd" in lowered))


def _refuse_password_options(argv: Sequence[str]) -> Optional[str]:
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if _is_password_option(name):
            return ("smbvol: error: %s: no such option, and passwords are never given on the "
                    "command line; use $SMBVOL_PASSWORD or --password-file FILE (remoting), "
                    "$SMBVOL_SHARE_PASSWORD or --share-password-file FILE (share), or type "
                    "it at the prompt\n" % name)
    return None


def main(argv: Optional[Sequence[str]] = None, *,
         executor_factory: Optional[ExecutorFactory] = None,
         stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    """Run ``smbvol`` with ``argv``; returns the exit code (0, 1, 2, 3 or 4)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    refused = _refuse_password_options(argv)
    if refused:
        stderr.write(refused)
        return errors.EXIT_USAGE
    app = SmbvolApp(executor_factory=executor_factory, stdin=stdin, stdout=stdout,
                    stderr=stderr)
    # argparse writes usage errors and --help/--version to sys.stdout/sys.stderr.
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            return app.run(argv)
        except SystemExit as exc:
            code = exc.code
            if code is None:
                return errors.EXIT_OK
            return code if isinstance(code, int) else errors.EXIT_USAGE
        finally:
            app.close_logging()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
