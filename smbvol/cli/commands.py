"""The commands of ``smbvol``: volume attach/detach/list, share mount/unmount, host show.

Every command is a cliff ``Lister`` that runs on every host given (one row per
host, per disk for ``volume list``) and prints through cliff's formatters.
The mutating commands take ``--dry-run``: the standalone PowerShell script is
checked with the PowerShell grammar and printed on stdout, alone; a summary of
its parameters (secrets as ``***``) goes to stderr; nothing runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from cliff import lister

from smbvol import results, scripts
from smbvol.cli import errors, fanout, grammar, output, settings, volumes
from smbvol.cli.errors import UsageError
from smbvol.quoting import ps_literal
from smbvol.secret import MASK, Secret

LOG = logging.getLogger(__name__)


def _column_key(name: str) -> str:
    """A column name as ``-c`` matches it (cliff's rule: case, spaces and underscores)."""
    return name.lower().strip().replace(" ", "_")


class HostCommand(lister.Lister):
    """Base: run on every host, one row per host; exit code from the outcomes."""

    #: The result dataclass of one host (its fields are the columns).
    result_type: Optional[type] = None
    #: Columns when there is no result type.
    fallback_columns: Tuple[str, ...] = ()
    #: What the summary line calls the command.
    action = "command"
    _epilog = ("Connection options (--host, --hosts-file, --transport, --auth, --username, "
               "--config-file...) and the exit codes: smbvol --help.")

    # -- columns -----------------------------------------------------------
    def result_columns(self) -> Tuple[str, ...]:
        return output.result_columns(self.result_type, self.fallback_columns)

    def known_columns(self) -> Tuple[str, ...]:
        return output.LEADING + self.result_columns() + output.TRAILING

    def check_columns(self, args: argparse.Namespace) -> None:
        requested = getattr(args, "columns", None) or []
        if not requested:
            return
        known = {_column_key(c) for c in self.known_columns()}
        unknown = [c for c in requested if _column_key(c) not in known]
        if unknown:
            raise UsageError(reason="unknown column(s) %s for -c; known: %s"
                                    % (", ".join(unknown), ", ".join(self.known_columns())))

    # -- the run -------------------------------------------------------------
    def run(self, parsed_args: argparse.Namespace) -> int:
        """Run the command; returns the exit code (see smbvol.cli.errors)."""
        self.exit_code = errors.EXIT_OK
        try:
            parsed_args = self._run_before_hooks(parsed_args)
            self.check_columns(parsed_args)
            if getattr(parsed_args, "dry_run", False):
                return self.dry_run(parsed_args)
            self.formatter = output.formatter(parsed_args.formatter,
                                              self._formatter_plugins[parsed_args.formatter].obj)
            column_names, data = self.take_action(parsed_args)
            column_names, data = self._run_after_hooks(parsed_args, (column_names, data))
            self.produce_output(parsed_args, column_names,
                                output.for_format(parsed_args.formatter, data))
            return self.exit_code
        except BrokenPipeError:
            raise  # cliff exits 141, as for any pipe closed early
        except Exception as exc:  # every error becomes one line and an exit code
            return self.app.report(exc)

    def take_action(self, parsed_args: argparse.Namespace):
        target = self.app.targets()
        self.prepare(parsed_args, target)
        self.app.host_password(target)
        factory = self.app.executor_factory
        conf = target.conf
        self._failures: Dict[str, errors.Failure] = {}

        def on_done(outcome: fanout.Outcome) -> None:
            # Called as each host ends: its error line goes out now, not after the others.
            if not outcome.ok:
                self._failures[outcome.host] = self.app.report_failure(outcome.error,
                                                                       outcome.host)

        def work(host: str) -> Any:
            executor = factory(conf, host)
            try:
                return self.on_host(parsed_args, executor, conf)
            finally:
                close = getattr(executor, "close", None)
                if close is not None:
                    close()

        outcomes = fanout.run(target.hosts, work, self.app.parallel(), self.app.stderr,
                              on_done=on_done, lock=self.app.stderr_lock)
        return self.finish(outcomes)

    def prepare(self, args: argparse.Namespace, target: settings.Targets) -> None:
        """Check the input before anything runs (override)."""

    def on_host(self, args: argparse.Namespace, executor, conf) -> Any:
        """The work on one host; returns a result object or a list of them."""
        raise NotImplementedError

    def ops(self, executor, conf):
        from smbvol.cli.runner import CliVolumeOps

        return CliVolumeOps(executor, conf)

    def rows_of(self, host: str, value: Any) -> List[output.Row]:
        items = value if isinstance(value, list) else [value]
        rows = []
        for item in items:
            fields = output.fields_of(item)
            fields.pop("host", None)
            rows.append(output.Row(host=host, status=output.STATUS_OK, fields=fields))
        return rows

    def finish(self, outcomes: Sequence[fanout.Outcome]):
        """The rows: every host has one (its error row when it failed), whatever the count."""
        rows: List[output.Row] = []
        codes = []
        failed = []
        reported = getattr(self, "_failures", {})
        for outcome in outcomes:
            if outcome.ok:
                rows.extend(self.rows_of(outcome.host, outcome.value))
                codes.append(errors.EXIT_OK)
                continue
            failure = reported.get(outcome.host) or self.app.report_failure(
                outcome.error, outcome.host)
            codes.append(failure.code)
            failed.append(outcome.host)
            rows.append(output.Row(host=outcome.host, status=output.STATUS_ERROR, fields={},
                                   error=self.app.masked(failure.message)))
        self.exit_code = errors.combined_exit_code(codes)
        if len(outcomes) > 1:
            with self.app.stderr_lock:
                self.app.stderr.write(
                    "smbvol: %s: %d hosts, %d succeeded, %d failed%s\n" % (
                        self.action, len(outcomes), len(outcomes) - len(failed), len(failed),
                        " (%s)" % ", ".join(failed) if failed else ""))
        return output.table(rows, self.result_columns())

    # -- dry run -------------------------------------------------------------
    def dry_run(self, args: argparse.Namespace) -> int:
        raise UsageError(reason="this command has no --dry-run")


class VolumeCommand(HostCommand):
    """Base of the commands that take a volume (and ``--dry-run``)."""

    image = True
    disk_bus = False
    force = False
    vm = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        if self.vm:
            parser.add_argument("vm", metavar="VM", help="name of the Hyper-V VM")
        volumes.add_volume_arguments(parser, image=self.image, disk_bus=self.disk_bus,
                                     force=self.force)
        return parser

    def volume(self, args: argparse.Namespace, conf, *, dry_run: bool) -> volumes.Volume:
        """The checked volume with its share password (from the file, env or prompt).

        The password is the one of ``--share-username``, or of the user that the
        connection_info's ``data.options`` names without a password.  In a dry run
        it is not read (the script reads it on the host) but a password file given
        must be readable.
        """
        asked: List[str] = []

        def password_for(username: str) -> Secret:
            asked.append(username)
            return self.share_password(username, args, dry_run=dry_run)

        volume = volumes.volume_from_args(
            args, conf, self.app.stdin, image=self.image,
            password_for=None if args.share_username else password_for)
        if args.share_username:
            password = password_for(args.share_username)
            volume = volumes.with_share_credential(volume, args.share_username, password)
        elif getattr(args, "share_password_file", None) and not asked:
            raise UsageError(reason="--share-password-file goes with --share-username, or "
                                    "with a connection_info whose data.options names a user "
                                    "without a password")
        for secret in volumes.secrets_of(volume):
            self.app.add_secret(secret)
        return volume

    def share_password(self, username: str, args: argparse.Namespace, *,
                       dry_run: bool) -> Secret:
        if dry_run:
            if getattr(args, "share_password_file", None):
                settings.read_password_file(args.share_password_file,
                                            "--share-password-file", self.app.stderr)
            # The script reads the password on the host (env var or prompt).
            return Secret("")
        password = settings.share_password(username, args, self.app.environ, self.app.stdin,
                                           self.app.stderr, prompt=self.app.prompt)
        self.app.add_secret(password.reveal())
        return password

    def prepare(self, args: argparse.Namespace, target: settings.Targets) -> None:
        self._volume = self.volume(args, target.conf, dry_run=False)

    def on_host(self, args: argparse.Namespace, executor, conf) -> Any:
        return self.execute(self.ops(executor, conf), self._volume, args)

    def plan(self, ops, volume: volumes.Volume, args: argparse.Namespace):
        raise NotImplementedError

    def execute(self, ops, volume: volumes.Volume, args: argparse.Namespace) -> Any:
        raise NotImplementedError

    def dry_run(self, args: argparse.Namespace) -> int:
        from smbvol.cli.runner import CliVolumeOps, DryRunExecutor

        target = self.app.targets()
        if getattr(self.app.options, "password_file", None):
            # Checked (a mistyped path fails now), not used: nothing connects.
            settings.read_password_file(self.app.options.password_file, "--password-file",
                                        self.app.stderr)
        volume = self.volume(args, target.conf, dry_run=True)
        ops = CliVolumeOps(DryRunExecutor(host=target.hosts[0]), target.conf)
        inv = self.plan(ops, volume, args)
        text = scripts.render_standalone(inv.operation, inv.parameters, **inv.options)
        grammar.check(text, inv.operation)
        self.app.stderr.write(self.app.masked(summary(inv, target, text)))
        self.app.stdout.write(text)
        self.app.stdout.flush()
        return errors.EXIT_OK


def _shown(op, name: str, value: Any) -> str:
    """A parameter as the script writes it; a secret as ``***`` or ``user/***``."""
    try:
        secret = op.param(name).is_secret
    except KeyError:
        secret = False
    if secret or (isinstance(value, str) and MASK in value and value.endswith(MASK)):
        return str(value)
    try:
        return ps_literal(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, default=str)


def summary(inv: results.Invocation, target: settings.Targets, text: str) -> str:
    """The stderr summary of a dry run: operation, parameters (secrets as ***)."""
    lines = ["smbvol: dry run: %s%s; nothing was run. The script (on stdout) is for %s." % (
        inv.operation, " of volume %s" % inv.volume_id if inv.volume_id else "",
        ", ".join(target.hosts) if not target.local else "the Hyper-V host")]
    op = scripts.get_operation(inv.operation)
    for name, value in inv.describe().items():
        lines.append("smbvol:   %s = %s" % (name, _shown(op, name, value)))
    if inv.options:
        lines.append("smbvol:   options: %s" % ", ".join(
            "%s=%s" % (k, str(v).lower()) for k, v in sorted(inv.options.items())))
    envs = sorted({p.secret_env for p in op.params
                   if p.is_secret and p.secret_env and p.name in inv.parameters})
    for env in envs:
        lines.append("smbvol: the script reads the password from $env:%s, or prompts for it."
                     % env)
    lines.append("smbvol: run it in an elevated Windows PowerShell on the Hyper-V host "
                 "(%d lines)." % text.count("\n"))
    if any(ord(c) > 127 for c in text):
        lines.append("smbvol: the script holds non-ASCII characters: save it as UTF-8 with a "
                     "BOM, since Windows PowerShell 5.1 reads a file without one as ANSI.")
    return "\n".join(lines) + "\n"


class VolumeAttach(VolumeCommand):
    """Attach a VHD/VHDX volume to a VM (mounting its share first)."""

    result_type = results.Attachment
    disk_bus = True
    action = "volume attach"

    def plan(self, ops, volume, args):
        return ops.plan_attach(volume.props, args.vm, args.disk_bus)

    def execute(self, ops, volume, args):
        return ops.attach_volume(volume.props, args.vm, args.disk_bus)


class VolumeDetach(VolumeCommand):
    """Detach a volume from a VM (the share stays mounted)."""

    result_type = results.Detachment
    action = "volume detach"

    def plan(self, ops, volume, args):
        return ops.plan_detach(volume.props, args.vm)

    def execute(self, ops, volume, args):
        return ops.detach_volume(volume.props, args.vm)


class ShareMount(VolumeCommand):
    """Mount a volume's share so Hyper-V can use it (checks the image exists)."""

    result_type = results.ShareConnection
    vm = False
    action = "share mount"

    def plan(self, ops, volume, args):
        return ops.plan_connect(volume.props)

    def execute(self, ops, volume, args):
        return ops.connect_volume(volume.props)


class ShareUnmount(VolumeCommand):
    """Unmount a share unless a disk of any VM still lies on it."""

    result_type = results.ShareDisconnection
    vm = False
    image = False
    force = True
    action = "share unmount"

    def plan(self, ops, volume, args):
        return ops.plan_disconnect(volume.props, force=args.force)

    def execute(self, ops, volume, args):
        return ops.disconnect_volume(volume.props, force=args.force)


class VolumeList(HostCommand):
    """List the hard disks of one VM, or of every VM, on each host."""

    result_type = results.DiskAttachment
    action = "volume list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("vm", metavar="VM", nargs="?", default=None,
                            help="name of the VM (default: every VM)")
        return parser

    def on_host(self, args, executor, conf):
        return list(self.ops(executor, conf).list_attachments(args.vm or None))


class HostShow(HostCommand):
    """Show facts about each Hyper-V host: names, addresses, versions, capabilities."""

    fallback_columns = scripts.OPERATIONS["host_info"].result_fields
    action = "host show"

    def on_host(self, args, executor, conf):
        ops = self.ops(executor, conf)
        inv = ops.plan_host_info()
        res = ops.execute(inv, context="reading the facts of host %s" % ops.host,
                          retried=False)
        return dict(res.result)


#: The command table (``name → class``), registered with cliff's CommandManager.
COMMANDS: Sequence[Tuple[str, type]] = (
    ("volume attach", VolumeAttach),
    ("volume detach", VolumeDetach),
    ("volume list", VolumeList),
    ("share mount", ShareMount),
    ("share unmount", ShareUnmount),
    ("host show", HostShow),
)


def command_names() -> Iterable[str]:
    return (name for name, _ in COMMANDS)
