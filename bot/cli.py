"""The ``licensebot`` command: admin tasks through the same services the Slack app uses.

Settings are read from the environment once per run, and the runtime (which migrates the
database and opens the key vault) is built only by the commands that need it, so every command
works on a fresh database. Every refusal ends as one ``licensebot: <message>`` line on stderr.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import IO, Any

import click
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot import (
    audit_export,
    backup,
    jobs,
    outbox_status,
    reviews,
    roles,
    rotation,
    scheduler,
    usage,
)
from bot.catalog import list_products, load_catalog
from bot.clock import SystemClock
from bot.connectors import pull as connector_pull
from bot.demo import DEFAULT_DIR, DEFAULT_PORT
from bot.directory import import_directory, looks_like_user_id
from bot.errors import (
    CatalogError,
    ConfigError,
    DirectoryError,
    InputError,
    KeyImportError,
    LicenseBotError,
)
from bot.keys import import_keys
from bot.runtime import Runtime, build_runtime, open_database
from bot.seats import import_seats
from bot.settings import ROLES, Role, Settings, load_settings
from storage import audit
from storage.db import Database


class _Failure(click.ClickException):
    """A refusal shown as the single line ``licensebot: <message>``."""

    def show(self, file: IO[Any] | None = None) -> None:
        # One line, whatever the message: some wrap a driver's multi-line text.
        line = " ".join(part.strip() for part in self.format_message().splitlines())
        click.echo(f"licensebot: {line.strip()}", file=file, err=True)


def _database_problem(exc: SQLAlchemyError) -> str:
    # Only the driver's first line: later lines (and SQLAlchemy's "[parameters: ...]") may
    # quote row values.
    orig = getattr(exc, "orig", None)
    first = (str(orig) if orig is not None else str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else 'no details'}"


class _Commands(click.Group):
    """The top-level group: a refusal from any subcommand becomes a ``_Failure``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LicenseBotError as exc:
            raise _Failure(exc.message) from None
        except SQLAlchemyError as exc:
            raise _Failure(f"database error: {_database_problem(exc)}") from None


class _State:
    """Settings and runtime of this run, made on first use and closed when the run ends."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._runtime: Runtime | None = None
        self._database: Database | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = build_runtime(self.settings())
        return self._runtime

    def database(self) -> Database:
        """The migrated database alone, for commands that never decrypt (backup, restore)."""
        if self._database is None:
            self._database = open_database(self.settings())
        return self._database

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.db.dispose()
        if self._database is not None:
            self._database.dispose()


pass_state = click.make_pass_decorator(_State)


def actor() -> str:
    """Who the audit log names for CLI actions: ``cli:<OS user>``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "cli"
    return f"cli:{user}"[:64] if user else "cli"


def _read_text(path: str, error: type[InputError]) -> str:
    """The file (``-`` for stdin) as text; a byte-order mark is dropped."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The line number only: the bytes themselves may be part of a secret.
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{_label(path)}: line {line} is not UTF-8 text; save the file as UTF-8 and retry."
        ) from None


def _label(path: str) -> str:
    return "stdin" if path == "-" else path


@click.group(cls=_Commands)
@click.version_option(package_name="licensebot")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run the company's software licenses: catalog, people, keys, roles and audit."""
    state = _State()
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Console-script entry point (``licensebot``)."""
    cli(prog_name="licensebot")


# --- db ---------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: _State) -> None:
    """Apply any pending migrations (safe to run at every deploy)."""
    url = state.settings().database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
        database = Database(url)
    except (SQLAlchemyError, ImportError) as exc:  # ImportError: the URL names a missing driver
        raise ConfigError(f"DATABASE_URL is not a usable database URL ({exc}).") from None
    try:
        before = _revision(database)
        database.upgrade()
        after = _revision(database)
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"Cannot open the database at DATABASE_URL ({_database_problem(exc)})."
        ) from None
    except CommandError as exc:
        # Typically a database migrated by a newer licensebot than this one.
        raise ConfigError(f"Cannot migrate the database at DATABASE_URL: {exc}.") from None
    finally:
        database.dispose()
    if before == after:
        click.echo(f"Database {shown} is already at the newest revision ({after}).")
    else:
        click.echo(f"Database {shown} upgraded from {before or 'an empty schema'} to {after}.")


def _revision(database: Database) -> str | None:
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# --- serve ------------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=3000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    help="all: answer Slack, deliver notifications, run the scheduled jobs; web: only answer "
    "Slack, while 'all' processes deliver and schedule. Default: LICENSEBOT_ROLE, else all.",
)
@pass_state
def serve(state: _State, host: str, port: int, role: Role | None) -> None:
    """Serve Slack's requests (needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)."""
    # Imported here: the server pulls in Slack's libraries, which admin commands do not need.
    from bot.server import serve as run_server

    settings = state.settings()
    run_server(settings, host=host, port=port, role=role or settings.licensebot_role)


# --- demo -------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--data",
    "data_dir",
    default=str(DEFAULT_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo's database and keys (made if missing; kept between runs).",
)
def demo(port: int, data_dir: Path) -> None:
    """Try licensebot in the browser: the real bot with a local simulation of Slack and a
    sample company. Needs no Slack app and no settings; serves on 127.0.0.1 only."""
    # Imported here, like serve: the demo pulls in Slack's libraries and the server.
    from bot.demo.runner import run_demo

    run_demo(port=port, data_dir=data_dir)


# --- outbox -----------------------------------------------------------------------------------


@cli.group("outbox")
def outbox_group() -> None:
    """Notifications waiting for, or given up on by, the Slack dispatcher."""


@outbox_group.command("list")
@click.option(
    "--status",
    type=click.Choice([*outbox_status.STATUSES, "all"]),
    default="all",
    show_default=True,
    help="Which messages to show.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@pass_state
def outbox_list(state: _State, status: str, limit: int) -> None:
    """Show queued notifications, newest first (failed ones say why)."""
    lines = outbox_status.list_messages(
        state.runtime(), status=None if status == "all" else status, limit=limit
    )
    if not lines:
        click.echo("The outbox is empty." if status == "all" else f"No {status} messages.")
        return
    for line in lines:
        when = (line.sent_at or line.next_attempt_at).isoformat(timespec="seconds")
        click.echo(
            f"{line.id}\t{line.kind}\t{line.status}\tattempts={line.attempts}\t{when}\t"
            f"{line.about}\t{line.last_error}".rstrip()
        )


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@pass_state
def outbox_retry(state: _State, ids: tuple[int, ...]) -> None:
    """Queue failed messages again (all failed ones, or the IDs given)."""
    count = outbox_status.retry_failed(state.runtime(), actor=actor(), ids=list(ids) or None)
    click.echo(f"Queued {count} failed message{'s' if count != 1 else ''} again.")


# --- jobs -------------------------------------------------------------------------------------


@cli.group("jobs")
def jobs_group() -> None:
    """Scheduled jobs (they run inside `licensebot serve`)."""


@jobs_group.command("list")
@pass_state
def jobs_list(state: _State) -> None:
    """Each scheduled job, its schedule and its next run."""
    for line in scheduler.describe(state.runtime()):
        nxt = line.next_run.isoformat(timespec="minutes") if line.next_run else "-"
        click.echo(f"{line.id}\t{line.cron}\tnext {nxt}\t{line.description}")


@jobs_group.command("run")
@click.argument("job_id", type=click.Choice(sorted(jobs.JOBS)))
@pass_state
def jobs_run(state: _State, job_id: str) -> None:
    """Run one job now, exactly as the scheduler would (once per period)."""
    rt = state.runtime()
    did = jobs.JOBS[job_id].run(rt, rt.clock.now())
    click.echo(f"{job_id}: done." if did else f"{job_id}: already done for this period.")


# --- access reviews ---------------------------------------------------------------------------


@cli.group("review")
def review_group() -> None:
    """Access reviews: each product's approvers confirm or revoke its holders."""


@review_group.command("start")
@click.argument("product_id", required=False)
@pass_state
def review_start(state: _State, product_id: str | None) -> None:
    """Send the review card of PRODUCT_ID (or of every active product with holders) to its
    reviewers. A product whose last review is still open is skipped."""
    result = reviews.start(state.runtime(), actor=actor(), product_id=product_id)
    for started in result.started:
        click.echo(
            f"Started review #{started.review_id} of {started.product_id}: "
            f"{started.holders} holders, reviewers {', '.join(started.reviewers)}."
        )
    for skipped in result.skipped:
        click.echo(f"Skipped {skipped.product_id}: {skipped.reason}.")
    if not result.started and not result.skipped:
        click.echo("No active products: nothing to review.")


@review_group.command("list")
@pass_state
def review_list(state: _State) -> None:
    """Open access reviews, oldest first, with how many holders are answered."""
    found = reviews.list_open(state.runtime())
    if not found:
        click.echo("No access review is open.")
        return
    for r in found:
        late = "  (overdue)" if r.overdue else ""
        click.echo(
            f"#{r.review_id}\t{r.product_id}\tstarted {r.started_at:%Y-%m-%d} by {r.started_by}"
            f"\t{r.answered}/{r.total} answered{late}"
        )


# --- catalog ----------------------------------------------------------------------------------


@cli.group()
def catalog() -> None:
    """Products and their approval policies."""


@catalog.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_state
def catalog_load(state: _State, file: str) -> None:
    """Load the catalog YAML; products missing from it are deactivated, never deleted."""
    text = _read_text(file, CatalogError)
    result = load_catalog(state.runtime(), text, actor=actor(), source=_label(file))
    deactivated = f" ({', '.join(result.deactivated)})" if result.deactivated else ""
    click.echo(
        f"Catalog loaded from {_label(file)}: {len(result.added)} added, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged, "
        f"{len(result.deactivated)} deactivated{deactivated}; "
        f"{result.groups} groups with {result.group_members} members."
    )


@catalog.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deactivated products.")
@pass_state
def catalog_list(state: _State, show_all: bool) -> None:
    """Products with their seats: bought, taken, left."""
    products = list_products(state.runtime(), active_only=not show_all)
    if not products:
        click.echo("The catalog is empty. Load one with `licensebot catalog load FILE.yml`.")
        return
    for p in products:
        status = "" if p.active else "  (inactive)"
        click.echo(
            f"{p.id}  {p.name}  [{p.delivery}]  seats {p.seats}, taken {p.seats_taken}, "
            f"left {p.seats_left}  approval: {' > '.join(p.approval) or 'auto'}{status}"
        )


# --- directory --------------------------------------------------------------------------------


@cli.group()
def directory() -> None:
    """People and their managers."""


@directory.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_state
def directory_import(state: _State, file: str) -> None:
    """Import people from CSV: slack_user_id,email,name,manager_slack_user_id,department."""
    text = _read_text(file, DirectoryError)
    result = import_directory(state.runtime(), text, actor=actor(), source=_label(file))
    click.echo(f"{result.added} added, {result.updated} updated, {result.unchanged} unchanged.")


# --- usage ------------------------------------------------------------------------------------


@cli.group("usage")
def usage_group() -> None:
    """Usage signals: when each person last used each product."""


@usage_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_state
def usage_import(state: _State, file: str) -> None:
    """Record last use from CSV: product_id,slack_user_id (or email),last_used_at (ISO 8601).

    A signal older than the one already known is ignored. Any bad line: nothing is recorded.
    """
    text = _read_text(file, usage.UsageImportError)
    rows = usage.parse_csv(text, _label(file))
    result = usage.record_usage(
        state.runtime(), rows, source="csv", actor=actor(), label=_label(file)
    )
    click.echo(
        f"Recorded {result.recorded} usage signals ({result.ignored_older} older than what we knew)"
    )


@usage_group.command("pull")
@pass_state
def usage_pull(state: _State) -> None:
    """Pull usage from the configured connectors (Okta) now, from where the last pull stopped."""
    rt = state.runtime()
    if not rt.policy.connectors:
        raise ConfigError(
            "No usage connector is configured; set LICENSEBOT_OKTA_URL and LICENSEBOT_OKTA_TOKEN."
        )
    results = connector_pull.pull_all(rt, actor=actor())
    for result in results:
        click.echo(result.line())
    failed = [r for r in results if r.error]
    if failed:
        raise _Failure("; ".join(f"{r.connector}: {r.error}" for r in failed))


# --- roles ------------------------------------------------------------------------------------


@cli.group("roles")
def roles_group() -> None:
    """Who is an IT admin or an auditor."""


def _user_id(user_id: str) -> str:
    if not looks_like_user_id(user_id):
        raise InputError(
            f"{user_id!r} is not a Slack user ID (like U012AB3CD; in Slack: profile > "
            "⋮ > Copy member ID)."
        )
    return user_id


@roles_group.command("grant")
@click.argument("user_id")
@click.argument("role")
@pass_state
def roles_grant(state: _State, user_id: str, role: str) -> None:
    """Give USER_ID the role ROLE (it_admin or auditor)."""
    if roles.grant(state.runtime(), _user_id(user_id), role, actor=actor()):
        click.echo(f"Granted {role} to {user_id}.")
    else:
        click.echo(f"{user_id} already has {role}; nothing changed.")


@roles_group.command("revoke")
@click.argument("user_id")
@click.argument("role")
@pass_state
def roles_revoke(state: _State, user_id: str, role: str) -> None:
    """Take the role ROLE away from USER_ID."""
    rt = state.runtime()
    if roles.revoke(rt, _user_id(user_id), role, actor=actor()):
        click.echo(f"Revoked {role} from {user_id}.")
    else:
        click.echo(f"{user_id} did not have {role}; nothing changed.")
    if role == "it_admin" and user_id in rt.admins:
        click.echo(f"{user_id} is still an it_admin through LICENSEBOT_ADMINS; remove them there.")


@roles_group.command("list")
@pass_state
def roles_list(state: _State) -> None:
    """Everyone who holds a role, and where it comes from."""
    holders = roles.list_roles(state.runtime())
    if not holders:
        click.echo("No one holds a role. Grant one with `licensebot roles grant USER_ID ROLE`.")
        return
    for h in holders:
        click.echo(f"{h.user_id}\t{h.role}\t{h.source}")


# --- seats ------------------------------------------------------------------------------------


@cli.group()
def seats() -> None:
    """Seats people already hold (imported when the company adopts the bot)."""


@seats.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_state
def seats_import(state: _State, file: str) -> None:
    """Record the holders in FILE (CSV: product_id,slack_user_id,assigned_at[,key]; - for stdin)."""
    text = _read_text(file, InputError)
    result = import_seats(state.runtime(), text, actor=actor(), source=_label(file))
    click.echo(
        f"Imported {result.added} seats ({result.keys} with a key); "
        f"{result.already_held} already held, skipped."
    )


# --- keys -------------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """License keys (stored encrypted) and the encryption keys that protect them."""


@keys.command("import")
@click.argument("product_id")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_state
def keys_import(state: _State, product_id: str, file: str) -> None:
    """Add the keys in FILE (one per line; - for stdin) to PRODUCT_ID's pool."""
    text = _read_text(file, KeyImportError)
    # split("\n"), not splitlines(): a stray form feed inside a key must be refused, not split.
    result = import_keys(state.runtime(), product_id, text.split("\n"), actor=actor())
    click.echo(
        f"Added {result.added} keys to {product_id} ({result.duplicates} duplicates skipped)."
    )
    if result.assigned:
        click.echo(f"{result.assigned} waitlisted request(s) received a key.")


@keys.command("generate")
def keys_generate() -> None:
    """Print a new encryption key for LICENSEBOT_ENCRYPTION_KEYS.

    To rotate, put the new key first and keep the old ones after it, comma-separated.
    """
    click.echo(Fernet.generate_key().decode("ascii"))


@keys.command("rotate")
@click.option(
    "--batch-size",
    default=rotation.BATCH,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Keys re-encrypted per transaction.",
)
@pass_state
def keys_rotate(state: _State, batch_size: int) -> None:
    """Re-encrypt every stored key under the first key of LICENSEBOT_ENCRYPTION_KEYS.

    Safe to interrupt and re-run: it continues where it stopped. Afterwards the old keys can be
    removed from LICENSEBOT_ENCRYPTION_KEYS.
    """
    count = rotation.rotate_keys(state.runtime(), actor=actor(), batch=batch_size)
    click.echo(
        f"Re-encrypted {count} license keys under the first key of LICENSEBOT_ENCRYPTION_KEYS; "
        "every stored key is now under it."
    )


# --- backup -----------------------------------------------------------------------------------


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def backup_command(state: _State, file: Path) -> None:
    """Write a consistent snapshot of all data to FILE (keys stay encrypted).

    The encryption keys and the audit keys are NOT in the file: keep them safe separately.
    """
    info = backup.create_backup(state.database(), file, now=SystemClock().now())
    click.echo(
        f"Backed up {info.rows} rows from {len(info.tables)} tables to {file} (schema revision "
        f"{info.revision}). It holds no encryption or audit keys: keep those separately."
    )


@cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def restore_command(state: _State, file: Path) -> None:
    """Load the backup FILE into an empty database (all or nothing)."""
    info = backup.restore_backup(state.database(), file)
    click.echo(
        f"Restored {info.rows} rows into {len(info.tables)} tables from {file} (taken "
        f"{info.created_at.isoformat()}). Start licensebot with the same "
        "LICENSEBOT_ENCRYPTION_KEYS and audit keys as the original, or the keys cannot be read."
    )


# --- audit ------------------------------------------------------------------------------------


@cli.group("audit")
def audit_group() -> None:
    """The append-only, hash-chained audit log."""


@audit_group.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(audit_export.FORMATS),
    default="jsonl",
    show_default=True,
)
@click.option("--since", help="Only entries at or after this ISO 8601 date or time (UTC if naive).")
@click.option("--until", help="Only entries before this ISO 8601 date or time (UTC if naive).")
@click.option("--actor", help="Only entries by this actor (a Slack user ID, cli:NAME, licensebot).")
@click.option("--product", help="Only entries about this product ID.")
@pass_state
def audit_export_command(
    state: _State,
    fmt: audit_export.Format,
    since: str | None,
    until: str | None,
    actor: str | None,
    product: str | None,
) -> None:
    """Write the audit entries to stdout, oldest first."""
    # Parsed before the runtime is built: a typo must not wait on (or migrate) the database.
    filters = audit_export.Filters(
        since=audit_export.parse_when(since, option="--since") if since is not None else None,
        until=audit_export.parse_when(until, option="--until") if until is not None else None,
        actor=actor,
        product=product,
    )
    audit_export.export(state.runtime(), sys.stdout, fmt=fmt, filters=filters)


@audit_group.command("verify")
@click.option(
    "--sign-legacy",
    is_flag=True,
    help="First sign the unsigned entries written before audit signing existed (once, after "
    "upgrading); only done when their hash chain is intact.",
)
@pass_state
def audit_verify(state: _State, sign_legacy: bool) -> None:
    """Check the hash chain and signatures: any edit, deletion, insertion or reordering shows."""
    rt = state.runtime()
    if sign_legacy:
        try:
            with rt.db.transaction() as session:
                signed = audit.sign_legacy(session, rt.audit_keys)
        except audit.AuditKeyError as exc:
            raise LicenseBotError(f"{exc}.") from None
        click.echo(f"Signed {signed} legacy entries with audit key id {rt.audit_keys.key_id}.")
    with rt.db.read() as session:
        report = audit.verify(session, rt.audit_keys)
    if report.problem is not None:
        raise LicenseBotError(f"The audit log does not verify: {report.problem}.")
    click.echo(f"{report.entries} entries, chain intact, head {report.head}")


@audit_group.command("generate-key")
def audit_generate_key() -> None:
    """Print a new audit signing key for LICENSEBOT_AUDIT_KEYS.

    To rotate, put the new key first and keep the old ones after it, comma-separated: entries
    signed with an old key verify as long as it stays in the list.
    """
    click.echo(audit.generate_key())
