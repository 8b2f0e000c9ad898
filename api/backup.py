"""Backups of the app database: ``gridmap db backup`` and ``gridmap db restore``.

A backup is a pg_dump archive in the custom format (``-Fc``: compressed, restored selectively
by pg_restore), taken as the tables' owner with PostgreSQL 15's client. It holds the schema, every
row, the row-level security policies and the app role's grants; the password goes to pg_dump
through ``PGPASSWORD``, never on its command line.

A restore goes into an empty database only, as the tables' owner:

* ``--no-owner``: every object belongs to the role that restores, so the SECURITY DEFINER
  functions run as the tables' owner whatever the owner was called where the backup was taken;
* the grants are restored (no ``--no-privileges``), so the app role gets back what it had;
* one transaction (``--single-transaction``, stopping at the first error): a restore that fails
  leaves the database as empty as it found it;
* ``CREATE EXTENSION IF NOT EXISTS postgis`` (and pgrouting) is kept, a no-op where a superuser
  already created them (``gridmap db up`` puts both in ``template1``), but ``COMMENT ON
  EXTENSION`` is left out: only the extension's owner, a superuser, may run it; and so is the
  data of an extension's configuration table (``spatial_ref_sys``) when it holds no row;
* the append-only tables' triggers are created after their rows are loaded, as pg_restore always
  does, and nothing is ever deleted: the target is empty.

A database holding objects is refused unless ``replace``: then the backup is restored into a new
database first, and only when that succeeded is the old one dropped and the new one renamed in
its place, so a failed restore loses nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from api.cluster import PG_BIN
from api.settings import ENV_FILE, VAR

BACKUP_DIR = VAR / "backups"
MAGIC = b"PGDMP"  # the first bytes of a custom-format archive
LOCK_WAIT_TIMEOUT = "60s"  # pg_dump gives up rather than queue behind a long lock
ERROR_LINES = 6  # how many of pg_restore's error lines a message quotes

Say = Callable[[str], None]


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    tables: int
    revision: str | None
    seconds: float

    def __str__(self) -> str:
        return (
            f"wrote {self.path} ({_size(self.size)}, {self.tables} tables, schema revision "
            f"{self.revision or 'none'}) in {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class Restored:
    database: str
    tables: int
    revision: str | None
    replaced: bool
    seconds: float

    def __str__(self) -> str:
        how = "replaced" if self.replaced else "restored into"
        return (
            f"{how} database {self.database}: {self.tables} tables, schema revision "
            f"{self.revision or 'none'}, in {self.seconds:.1f} s"
        )


# --- backup ---


def default_path(now: dt.datetime | None = None) -> Path:
    """``var/backups/gridmap-YYYYMMDD-HHMMSS.dump``, in local time."""
    return BACKUP_DIR / f"gridmap-{(now or dt.datetime.now()):%Y%m%d-%H%M%S}.dump"


def backup(owner_url: str, path: Path | None = None, *, say: Say = lambda _: None) -> Backup:
    """Dump the database at ``owner_url`` (the tables' owner) into ``path``, a custom-format
    archive, written under a temporary name and renamed when complete, readable by its owner
    only (it holds personal data)."""
    started = time.monotonic()
    url = make_url(owner_url)
    path = path or default_path()
    if path.exists():
        raise BackupError(f"{path} exists: choose another file, or remove it first")
    if path.parent == BACKUP_DIR:
        BACKUP_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise BackupError(f"{path.parent} is not a directory: create it first")
    with _connect(url) as cur:
        revision = _revision(cur)
        tables = len(_user_tables(cur))
    say(f"dumping database {url.database} on {_where(url)} ({tables} tables, schema revision "
        f"{revision or 'none'})")  # fmt: skip
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        argv = [_tool("pg_dump"), "--format=custom", "--no-password", f"--file={partial}",
                f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}", f"--dbname={_dsn(url)}"]  # fmt: skip
        done = _run(argv, url)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed (exit {done.returncode}):\n{_summary(done.stderr)}")
        toc = _toc(partial, url)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    dumped = sum(1 for e in toc if e.kind == "TABLE DATA")
    say(f"archive checked: {len(toc)} entries, data of {dumped} tables")
    say("note: the archive does not hold GRIDMAP_SECRET_KEY, which sealed its ID numbers: keep "
        "the key safe apart (var/gridmap.env), a restored database needs it")  # fmt: skip
    return Backup(path, path.stat().st_size, tables, revision, time.monotonic() - started)


# --- restore ---


def restore(
    owner_url: str,
    path: Path,
    *,
    database: str | None = None,
    replace: bool = False,
    app_role: str | None = None,
    say: Say = lambda _: None,
) -> Restored:
    """Restore the archive ``path`` into ``database`` (default: the one of ``owner_url``) on
    the server of ``owner_url``, as that role. The database is created when absent; one holding
    objects is refused, or replaced when ``replace``. ``app_role`` gets CONNECT on it."""
    started = time.monotonic()
    base = make_url(owner_url)
    target = base.set(database=database) if database else base
    name = target.database
    if not name:
        raise BackupError("no database to restore into: the owner's URL names none")
    listing_text = _check_archive(path, base)
    toc = _parse_toc(listing_text)
    header = _header(listing_text)
    say(f"archive {path}: database {header.get('dbname', '?')} dumped "
        f"{header.get('created', '?')} by pg_dump {header.get('pg_dump', '?')}, "
        f"data of {sum(1 for e in toc if e.kind == 'TABLE DATA')} tables")  # fmt: skip

    state = _database_state(base, name)
    replaced = False
    if state is None:
        into = name
    elif not state:
        into = name
        say(f"database {name} exists and is empty: restoring into it")
    elif not replace:
        raise BackupError(
            f"database {name} on {_where(base)} is not empty ({state}): nothing was changed. "
            "Restore into a new database with --database NAME, or pass --yes to replace it "
            "(its current data is dropped once the restore has succeeded)"
        )
    else:
        into = f"{name[:40]}_restore_{secrets.token_hex(4)}"
        replaced = True
        say(f"database {name} holds data ({state}): restoring into {into}, then swapping")
    created = state is None or replaced
    if created:
        _create_database(base, into)
    try:
        _check_extensions(base.set(database=into), toc)
        listing = _selection(path, base, listing_text)
        say(f"restoring into {into} (one transaction)…")
        _pg_restore(path, base.set(database=into), listing, say)
        with _connect(base.set(database=into)) as cur:
            say("analyzing the tables (planner statistics are not in the archive)…")
            cur.execute("ANALYZE")
            tables = len(_user_tables(cur))
            revision = _revision(cur)
    except BaseException:
        if created:
            with contextlib.suppress(Exception):
                _drop_database(base, into)
        raise
    if replaced:
        _swap(base, into, name, say)
    _grant_connect(base.set(database=name), app_role)
    return Restored(name, tables, revision, replaced, time.monotonic() - started)


# --- the archive ---


@dataclass(frozen=True)
class Entry:
    """A line of ``pg_restore --list``: ``id; catalog oid kind schema name owner``."""

    line: str
    kind: str
    rest: str  # after the kind: "schema name owner" or "- name"


# Longest first: "TABLE DATA" before "TABLE".
KINDS = sorted(
    ("TABLE DATA", "TABLE", "COMMENT", "EXTENSION", "ACL", "DEFAULT ACL", "SEQUENCE SET",
     "SEQUENCE OWNED BY", "SEQUENCE", "FK CONSTRAINT", "CONSTRAINT", "INDEX", "TRIGGER",
     "POLICY", "ROW SECURITY", "FUNCTION", "VIEW", "MATERIALIZED VIEW DATA",
     "MATERIALIZED VIEW", "TYPE", "DEFAULT", "SCHEMA", "DOMAIN"),
    key=len, reverse=True,
)  # fmt: skip


def _parse_toc(text: str) -> list[Entry]:
    entries = []
    for line in text.splitlines():
        m = re.match(r"^\d+; \d+ \d+ (.*)$", line)
        if not m:
            continue
        body = m.group(1)
        kind = next((k for k in KINDS if body.startswith(k + " ")), body.split(" ", 1)[0])
        entries.append(Entry(line, kind, body[len(kind) :].strip()))
    return entries


def _check_archive(path: Path, url: URL) -> str:
    """The archive's table of contents (``pg_restore --list``), or an error saying what the file
    is instead."""
    if not path.exists():
        raise BackupError(f"{path}: no such file")
    if path.is_dir():
        raise BackupError(f"{path} is a directory, not a backup file (`gridmap db backup` "
                          "writes a single .dump file)")  # fmt: skip
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    if not head.startswith(MAGIC):
        if b"PostgreSQL database dump" in head:
            raise BackupError(
                f"{path} is a plain SQL dump, not a pg_dump archive: restore it with psql, or "
                "take a backup with `gridmap db backup` (custom format)"
            )
        raise BackupError(
            f"{path} is not a pg_dump archive (it does not start with {MAGIC.decode()}): "
            "restore a file written by `gridmap db backup` (pg_dump -Fc)"
        )
    return _listing(path, url)


def _toc(path: Path, url: URL) -> list[Entry]:
    return _parse_toc(_listing(path, url))


def _listing(path: Path, url: URL) -> str:
    done = _run([_tool("pg_restore"), "--list", str(path)], url)
    if done.returncode != 0:
        raise BackupError(f"pg_restore cannot read {path} (a damaged or truncated archive, or "
                          f"one from a newer pg_dump):\n{_summary(done.stderr)}")  # fmt: skip
    if not _parse_toc(done.stdout):
        raise BackupError(f"{path} is a pg_dump archive with nothing in it")
    return done.stdout


def _header(text: str) -> dict[str, str]:
    """When, from which database and by which pg_dump the archive was written."""
    found: dict[str, str] = {}
    for key, pattern in (("created", r"^; Archive created at (.*)$"),
                         ("dbname", r"^;\s+dbname: (.*)$"),
                         ("pg_dump", r"^;\s+Dumped by pg_dump version: (\S+)")):  # fmt: skip
        m = re.search(pattern, text, flags=re.M)
        if m:
            found[key] = m.group(1).strip()
    return found


def _selection(path: Path, url: URL, listing: str) -> Path:
    """A ``--use-list`` file: the archive's own listing with what the owner may not and need
    not do commented out (comments on extensions; the data of an extension's configuration
    table, spatial_ref_sys, when it holds no row)."""
    toc = _parse_toc(listing)
    tables = {e.rest.rsplit(" ", 1)[0] for e in toc if e.kind == "TABLE"}

    def needless(e: Entry) -> bool:
        if e.kind == "COMMENT":
            return e.rest.startswith("- EXTENSION ")
        return (
            e.kind == "TABLE DATA"
            and e.rest.rsplit(" ", 1)[0] not in tables  # an extension's table
            and _data_is_empty(path, url, e)
        )

    skipped = {e.line for e in toc if needless(e)}
    lines = [";" + ln if ln in skipped else ln for ln in listing.splitlines()]
    fd, name = tempfile.mkstemp(prefix="gridmap-restore-", suffix=".list")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return Path(name)


def _data_is_empty(path: Path, url: URL, entry: Entry) -> bool:
    with tempfile.NamedTemporaryFile("w", suffix=".list", encoding="utf-8") as one:
        one.write(entry.line + "\n")
        one.flush()
        done = _run([_tool("pg_restore"), "--data-only", f"--use-list={one.name}", "--file=-",
                     str(path)], url)  # fmt: skip
    if done.returncode != 0:
        return False
    lines = done.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY "):
            return i + 1 < len(lines) and lines[i + 1] == "\\."
    return not any(line.startswith("INSERT ") for line in lines)


# --- the target database ---


def _database_state(base: URL, name: str) -> str | None:
    """None when ``name`` does not exist, "" when it holds no object of its own (extensions'
    objects aside), else what it holds, for the message."""
    with _connect(base, maintenance=True) as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            return None
    with _connect(base.set(database=name)) as cur:
        cur.execute(
            """
            SELECT count(*) FROM (
                SELECT c.oid, c.relnamespace AS ns, 'pg_class'::regclass AS cls FROM pg_class c
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                UNION ALL
                SELECT p.oid, p.pronamespace, 'pg_proc'::regclass FROM pg_proc p
                UNION ALL
                SELECT t.oid, t.typnamespace, 'pg_type'::regclass FROM pg_type t
                 WHERE t.typtype IN ('e', 'd', 'r')
                    OR t.typtype = 'c'
                       AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'
            ) AS o JOIN pg_namespace n ON n.oid = o.ns
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
              AND n.nspname !~ '^pg_(toast_)?temp_'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.cls
                              AND d.objid = o.oid AND d.deptype = 'e')
            """
        )
        if cur.fetchone()[0] == 0:
            return ""
        tables = _user_tables(cur)
        rows = 0
        for table in tables[:500]:
            cur.execute(
                f"SELECT count(*) FROM (SELECT FROM public.{_ident(table)} LIMIT 1000000) t"
            )
            rows += cur.fetchone()[0]
        revision = _revision(cur)
    held = f"{len(tables)} tables, {rows:,} rows"
    return held + (f", schema revision {revision}" if revision else "")


def _create_database(base: URL, name: str) -> None:
    """A new database from template1 (where PostGIS and pgRouting are), owned by the owner."""
    import psycopg2

    try:
        with _connect(base, maintenance=True) as cur:
            cur.execute(f"CREATE DATABASE {_ident(name)} TEMPLATE template1")
    except psycopg2.Error as exc:
        raise BackupError(f"cannot create database {name} as {base.username}: "
                          f"{_pg_message(exc)}") from None  # fmt: skip


def _drop_database(base: URL, name: str) -> None:
    with _connect(base, maintenance=True) as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


def _swap(base: URL, new: str, name: str, say: Say) -> None:
    """Drop ``name`` (ending its sessions) and rename ``new`` to it."""
    import psycopg2

    say(f"dropping the old database {name} and renaming {new} to {name}")
    try:
        try:
            _drop_database(base, name)
        except psycopg2.errors.InsufficientPrivilege:
            # Other roles' sessions (the app's): only a superuser may end them.
            admin = _admin_url(base)
            if admin is None:
                raise
            with _connect(admin) as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        with _connect(base, maintenance=True) as cur:
            cur.execute(f"ALTER DATABASE {_ident(new)} RENAME TO {_ident(name)}")
    except psycopg2.Error as exc:
        with contextlib.suppress(Exception):
            _drop_database(base, new)
        raise BackupError(
            f"the backup was restored, but database {name} could not be replaced: "
            f"{_pg_message(exc)}; stop what is connected to it (`gridmap serve`) and run the "
            "restore again"
        ) from None


def _admin_url(base: URL) -> URL | None:
    """The local cluster's superuser (``var/gridmap.env``) when it is on the same server."""
    raw = os.environ.get("GRIDMAP_ADMIN_DATABASE_URL")
    if not raw:
        with contextlib.suppress(OSError):
            for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() == "GRIDMAP_ADMIN_DATABASE_URL":
                    raw = value.strip()
    if not raw:
        return None
    admin = make_url(raw)
    same = (admin.host, admin.port) == (base.host, base.port)
    return admin if same else None


def _grant_connect(url: URL, app_role: str | None) -> None:
    """Database-level grants are not in an archive: the app role may connect, as
    ``gridmap db up`` grants."""
    if not app_role or app_role == url.username:
        return
    with _connect(url) as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app_role,))
        if cur.fetchone():
            cur.execute(f"GRANT CONNECT ON DATABASE {_ident(url.database or '')} "
                        f"TO {_ident(app_role)}")  # fmt: skip


def _check_extensions(url: URL, toc: list[Entry]) -> None:
    """The archive's extensions exist in the target, or the owner may create them."""
    wanted = [e.rest.split(" ", 1)[1].strip() for e in toc
              if e.kind == "EXTENSION" and " " in e.rest]  # fmt: skip
    with _connect(url) as cur:
        cur.execute("SELECT extname FROM pg_extension")
        have = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        superuser = bool(cur.fetchone()[0])
    missing = [name for name in wanted if name not in have]
    if missing and not superuser:
        names = ", ".join(missing)
        raise BackupError(
            f"database {url.database} lacks the extension(s) {names}, which only a superuser "
            f"may create: as a superuser, run CREATE EXTENSION for {names} in template1 (as "
            "`gridmap db up` does for the local cluster), then restore again"
        )


# --- pg_restore ---


def _pg_restore(path: Path, url: URL, listing: Path, say: Say) -> None:
    argv = [_tool("pg_restore"), "--no-owner", "--single-transaction", "--exit-on-error",
            "--no-password", "--verbose", f"--use-list={listing}", f"--dbname={_dsn(url)}",
            str(path)]  # fmt: skip
    phase = ""
    errors: list[str] = []
    try:
        for line in _stream(argv, url, errors):
            step = (
                "schema" if line.startswith("pg_restore: creating ") and phase == "" else
                "data" if line.startswith("pg_restore: processing data for table") else
                "indexes, constraints, triggers, policies and grants"
                if line.startswith("pg_restore: creating ") and phase == "data" else phase
            )  # fmt: skip
            if step != phase:
                phase = step
                say(f"  {phase}…")
    finally:
        listing.unlink(missing_ok=True)
    if errors:
        raise BackupError(_restore_error(errors))


def _restore_error(lines: list[str]) -> str:
    text = "\n".join(lines)
    hint = ""
    if "spatial_ref_sys" in text:
        hint = (
            "\nThe backup holds spatial reference systems of its own (rows of spatial_ref_sys, "
            "which PostGIS owns): restore it as a superuser"
        )
    elif m := re.search(r'role "([^"]+)" does not exist', text):
        hint = (f"\nThe role {m.group(1)} is missing on this server: create it first (`gridmap "
                "db up` creates gridmap and gridmap_app on the local cluster)")  # fmt: skip
    elif "permission denied" in text or "must be owner" in text:
        hint = ("\nRestore as the tables' owner (GRIDMAP_OWNER_DATABASE_URL), into a database "
                "created from template1")  # fmt: skip
    elif "end of file" in text or "could not find block" in text or "could not read" in text:
        hint = "\nThe archive is truncated or damaged: restore another backup"
    elif "already exists" in text:
        hint = "\nThe database was not empty: restore into an empty one"
    return (
        "pg_restore failed and the restore was rolled back (one transaction): the database is "
        f"as it was (one created for the restore is dropped).\n{_summary(text)}{hint}"
    )


# --- running the PostgreSQL clients ---


def _tool(name: str) -> str:
    """PostgreSQL 15's client (it reads the archives the server's version writes), else the
    one on PATH."""
    for candidate in (PG_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise BackupError(f"{name} not found ({PG_BIN / name}): run `make deps` (installs "
                      "postgresql-15)")  # fmt: skip


def _dsn(url: URL) -> str:
    """A libpq URL without the password (it goes in PGPASSWORD: `ps` shows command lines)."""
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _env(url: URL) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k != "PGPASSWORD"}
    env["LC_ALL"] = "C"  # English messages, which _summary reads
    env["PGAPPNAME"] = "gridmap-backup"
    env["PGCONNECT_TIMEOUT"] = env.get("PGCONNECT_TIMEOUT", "10")
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return env


def _run(argv: list[str], url: URL) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=_env(url), check=False)
    except OSError as exc:
        raise BackupError(f"cannot run {argv[0]}: {exc.strerror}") from None


def _stream(argv: list[str], url: URL, errors: list[str]) -> Iterator[str]:
    """The lines a verbose client writes to stderr, as they come; its error lines (and the
    lines after the first, which quote the failed command) go into ``errors``."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=_env(url))  # fmt: skip
    except OSError as exc:
        raise BackupError(f"cannot run {argv[0]}: {exc.strerror}") from None
    assert proc.stderr is not None
    failing = False
    try:
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            if ": error: " in line or line.startswith("pg_restore: error") or failing:
                failing = True
                errors.append(line)
            else:
                yield line
    finally:
        code = proc.wait()
    if code != 0 and not errors:
        errors.append(f"{Path(argv[0]).name} exited {code}")


def _summary(text: str) -> str:
    """The lines that say what went wrong, without the clients' chatter."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    picked = [ln for ln in lines if "error" in ln.lower() or ln.startswith(("Command was", "DETAIL",
              "HINT", "LINE"))] or lines  # fmt: skip
    picked = [ln if len(ln) <= 300 else ln[:300] + "…" for ln in picked]
    more = len(picked) - ERROR_LINES
    return "\n".join(f"  {ln}" for ln in picked[:ERROR_LINES]) + (
        f"\n  … and {more} more lines" if more > 0 else ""
    )


# --- SQL ---


@contextlib.contextmanager
def _connect(url: URL, *, maintenance: bool = False) -> Iterator[Any]:
    """An autocommit cursor; ``maintenance``: on the server's ``postgres`` database."""
    import psycopg2

    if maintenance:
        url = url.set(database="postgres")
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10, application_name="gridmap-backup")
    except psycopg2.OperationalError as exc:
        raise BackupError(f"cannot connect to {url.database} on {_where(url)} as "
                          f"{url.username}: {_pg_message(exc)}") from None  # fmt: skip
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _user_tables(cur: Any) -> list[str]:
    """The tables of the public schema that no extension owns."""
    cur.execute(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1
        """
    )
    return [row[0] for row in cur.fetchall()]


def _revision(cur: Any) -> str | None:
    cur.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute("SELECT version_num FROM public.alembic_version")
    row = cur.fetchone()
    return row[0] if row else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _where(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _pg_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
