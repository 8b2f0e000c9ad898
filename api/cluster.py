"""The project-local PostgreSQL 15 + PostGIS cluster under ``var/``, so ``make run`` needs no setup.

``up()`` creates the cluster on first use (``var/pgdata``), starts it on a port of its own (chosen
per checkout, remembered in ``var/pg.port``), makes sure the roles and the database exist and
writes ``var/gridmap.env``, which the settings read. It is idempotent and quick when the cluster
already runs, so the Makefile calls it every time.

Roles: ``postgres`` (superuser, only for this module), ``gridmap`` (owns the database and the
tables, runs migrations) and ``gridmap_app`` (the app; owns nothing, so row-level security
applies to it). PostGIS and pgRouting are installed in ``template1``, because creating them needs a
superuser and every database created later (the tests' too) should already have them.

PostgreSQL refuses to run as root, so under root the server runs as the OS user ``postgres``:
it owns the data directory, and gets a POSIX ACL granting traverse (``x``) on each ancestor
directory it could not otherwise pass, so the checkout may live anywhere (``/root``, ``mktemp
-d``) without any chmod of the user's directories.

If ``GRIDMAP_DATABASE_URL`` or ``DATABASE_URL`` is set, an external server is used and this
module manages nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.settings import ENV_FILE, ROOT, VAR

log = logging.getLogger(__name__)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
PGROUTING_CONTROL = Path("/usr/share/postgresql/15/extension/pgrouting.control")

DATA_DIR = VAR / "pgdata"
LOG_FILE = VAR / "postgres.log"
PORT_FILE = VAR / "pg.port"
SECRETS_FILE = VAR / "secrets.json"
LOCK_FILE = VAR / "cluster.lock"
CONF_FILE = "gridmap.conf"  # inside the data directory, included from postgresql.conf

DATABASE = "gridmap"
OWNER_ROLE = "gridmap"
APP_ROLE = "gridmap_app"
SUPERUSER = "postgres"
ROOT_SERVER_USER = "postgres"  # the OS user the server runs as when we are root

PORT_LOW, PORT_HIGH = 55000, 59999
# A Unix socket path holds at most 107 bytes; keep a margin.
SOCKET_PATH_MAX = 100
START_TIMEOUT_S = 60
EXTERNAL_VARS = ("GRIDMAP_DATABASE_URL", "DATABASE_URL")
ENV_KEYS = (
    "GRIDMAP_DATABASE_URL",
    "GRIDMAP_OWNER_DATABASE_URL",
    "GRIDMAP_ADMIN_DATABASE_URL",
    "GRIDMAP_SECRET_KEY",
)
ENV_HEADER = "# Written by `gridmap db up` (api/cluster.py) for the local cluster."


class ClusterError(RuntimeError):
    """The local cluster could not be managed; the message says what to do."""


@dataclass(frozen=True)
class ClusterInfo:
    """Where the database is. URLs carry passwords: ``str()`` hides them, ``repr()`` omits them."""

    database_url: str
    owner_database_url: str
    admin_database_url: str | None = None
    port: int | None = None
    data_dir: Path | None = None
    socket_dir: Path | None = None
    log_file: Path | None = None
    external: bool = False
    started: bool = False  # True when this call started the server

    def __str__(self) -> str:
        if self.external:
            return f"external server {redact(self.database_url)} (nothing to manage)"
        state = "started" if self.started else "already running"
        return (
            f"{redact(self.database_url)} ({state}; data {self.data_dir}, "
            f"socket {self.socket_dir}, log {self.log_file})"
        )

    def __repr__(self) -> str:
        return f"ClusterInfo({self})"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


# --- public API ---


def up() -> ClusterInfo:
    """Create (first time), configure and start the local cluster, ensure roles and database,
    write ``var/gridmap.env``. Idempotent; does nothing for an external server."""
    external = _external_info()
    if external is not None:
        log.info("using %s", external)
        return external
    _check_installed()
    with _locked():
        return _up()


def down() -> bool:
    """Stop the local cluster if it runs (fast shutdown: connections are closed).
    Returns whether a server was stopped."""
    if _external_info() is not None:
        log.info("an external server is configured: nothing to stop")
        return False
    if not DATA_DIR.exists():
        return False
    with _locked():
        if _running_pid() is None:
            return False
        port = _pidfile_port()
        _pg_ctl("stop", "-m", "fast", what="stop PostgreSQL")
        log.info("stopped the cluster in %s", DATA_DIR)
        socket_dir = _socket_dir(port) if port else None
        if socket_dir is not None and socket_dir.parent != VAR:
            with contextlib.suppress(OSError):  # not empty: leave it
                socket_dir.rmdir()
        return True


def status() -> dict[str, Any]:
    """What runs where, for ``gridmap db status``; reads only, starts nothing."""
    external = _external_info()
    if external is not None:
        return {"external": True, "database_url": redact(external.database_url)}
    pid = _running_pid()
    port = _pidfile_port() if pid is not None else _remembered_port()
    return {
        "external": False,
        "running": pid is not None,
        "pid": pid,
        "port": port,
        "initialized": _initialized(),
        "data_dir": str(DATA_DIR),
        "socket_dir": str(_socket_dir(port)) if port else None,
        "log_file": str(LOG_FILE),
        "env_file": str(ENV_FILE),
    }


def reset() -> ClusterInfo:
    """Drop and recreate the database ``gridmap`` (empty but for PostGIS), terminating its
    connections; the caller migrates. Only for the local cluster."""
    if _external_info() is not None:
        raise ClusterError(
            "reset only manages the local cluster, but GRIDMAP_DATABASE_URL/DATABASE_URL points "
            "at an external server: drop and recreate that database yourself"
        )
    _check_installed()
    with _locked():
        info = _up()
        pw = _load_secrets()
        with _connect(info.port, "postgres", SUPERUSER, pw["postgres_password"]) as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (DATABASE,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        _ensure_database(info.port, pw)
        log.info("recreated database %s", DATABASE)
        return info


# --- the steps of up() ---


def _up() -> ClusterInfo:
    account = _server_account()
    if _initialized():
        _adopt_data_dir(account)  # before anything under var/ changes hands
    pw = _load_secrets()
    _prepare_var(account)
    if not _initialized():
        _initdb(account, pw)

    pid = _running_pid()
    port = _pidfile_port() if pid is not None else None
    port = port or _choose_port(running=pid is not None)
    if _remembered_port() != port:
        PORT_FILE.write_text(f"{port}\n")
    socket_dir = _socket_dir(port)
    _prepare_dir(socket_dir, account)
    config_changed = _write_config(port, socket_dir, account)

    started = False
    if pid is None:
        if _is_root():
            _grant_traverse(account.pw_name, VAR)
        _remove_stale_locks(socket_dir, port)
        _pg_ctl("start", "-l", str(LOG_FILE), what="start PostgreSQL")
        started = True
        log.info("started PostgreSQL 15 on 127.0.0.1:%d (data %s)", port, DATA_DIR)
    elif config_changed:
        _pg_ctl("restart", "-m", "fast", "-l", str(LOG_FILE), what="restart PostgreSQL")
        log.info("restarted PostgreSQL for its new configuration")

    _ensure_roles(port, pw)
    _ensure_database(port, pw)
    info = ClusterInfo(
        database_url=_url(APP_ROLE, pw["gridmap_app_password"], port, DATABASE),
        owner_database_url=_url(OWNER_ROLE, pw["gridmap_password"], port, DATABASE),
        admin_database_url=_url(SUPERUSER, pw["postgres_password"], port, "postgres"),
        port=port,
        data_dir=DATA_DIR,
        socket_dir=socket_dir,
        log_file=LOG_FILE,
        started=started,
    )
    _write_env_file(info, pw["secret_key"])
    return info


def _external_info() -> ClusterInfo | None:
    """An external server is configured in the environment (not in var/gridmap.env)."""
    url = next((os.environ[v] for v in EXTERNAL_VARS if os.environ.get(v)), None)
    # Exported from var/gridmap.env itself (`set -a; . var/gridmap.env`): that is our cluster.
    if url is None or url == _read_env_file().get("GRIDMAP_DATABASE_URL"):
        return None
    owner = os.environ.get("GRIDMAP_OWNER_DATABASE_URL") or url
    return ClusterInfo(
        database_url=url,
        owner_database_url=owner,
        admin_database_url=os.environ.get("GRIDMAP_ADMIN_DATABASE_URL"),
        external=True,
    )


def _check_installed() -> None:
    for name in ("postgres", "initdb", "pg_ctl"):
        if not (PG_BIN / name).is_file():
            raise ClusterError(
                f"PostgreSQL 15 server not found ({PG_BIN / name}): run `make deps` "
                "(installs postgresql-15 and postgresql-15-postgis-3)"
            )
    if not POSTGIS_CONTROL.is_file():
        raise ClusterError(
            f"PostGIS for PostgreSQL 15 not found ({POSTGIS_CONTROL}): run `make deps` "
            "(installs postgresql-15-postgis-3)"
        )
    if not PGROUTING_CONTROL.is_file():
        raise ClusterError(
            f"pgRouting for PostgreSQL 15 not found ({PGROUTING_CONTROL}): run `make deps` "
            "(installs postgresql-15-pgrouting)"
        )
    if _is_root():
        for tool, package in (("runuser", "util-linux"), ("setfacl", "acl")):
            if _which(tool) is None:
                raise ClusterError(f"`{tool}` not found: run `make deps` (installs {package})")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One cluster operation at a time per checkout (two `make` runs may overlap)."""
    VAR.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Read-only is enough for flock, and works on a lock file another user (root) created.
    fd = os.open(LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- who runs the server ---


def _is_root() -> bool:
    return os.geteuid() == 0


def _server_account() -> pwd.struct_passwd:
    """The OS user the server runs as: ourselves, or ``postgres`` when we are root."""
    if not _is_root():
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(ROOT_SERVER_USER)
    except KeyError:
        pass
    # Debian's postgresql package creates this user; a machine without it gets a system user.
    _run(
        [
            _which("useradd") or "/usr/sbin/useradd",
            "--system",
            "--user-group",
            "--home-dir",
            "/var/lib/postgresql",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            ROOT_SERVER_USER,
        ],
        what=f"create the system user {ROOT_SERVER_USER}",
    )
    log.info("created the system user %s to run PostgreSQL", ROOT_SERVER_USER)
    return pwd.getpwnam(ROOT_SERVER_USER)


def _chown(path: Path, account: pwd.struct_passwd) -> None:
    if _is_root():
        os.chown(path, account.pw_uid, account.pw_gid)


def _prepare_var(account: pwd.struct_passwd) -> None:
    VAR.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not LOG_FILE.exists():
        fd = os.open(LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
    if _is_root() and LOG_FILE.stat().st_uid != account.pw_uid:
        _chown(LOG_FILE, account)


def _prepare_dir(path: Path, account: pwd.struct_passwd) -> None:
    """A private directory of the server user (socket directory)."""
    created = not path.exists()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == account.pw_uid:
        return
    if _is_root() and (created or path.parent == VAR):
        _chown(path, account)
        return
    raise ClusterError(
        f"{path} belongs to uid {st.st_uid}, not to {account.pw_name}, who runs the server: "
        f"remove it (it only holds the server's socket)"
    )


def _adopt_data_dir(account: pwd.struct_passwd) -> None:
    """The data directory must belong to the server user. Root hands a root-owned one (copied
    or restored as root) to it, but leaves a developer's own cluster alone."""
    owner = DATA_DIR.stat().st_uid
    if owner == account.pw_uid:
        return
    if not _is_root() or owner != 0:
        try:
            name = pwd.getpwuid(owner).pw_name
        except KeyError:
            name = f"uid {owner}"
        raise ClusterError(
            f"{DATA_DIR} belongs to {name}, but the server would run as {account.pw_name}: "
            f"run this as {'root' if name == ROOT_SERVER_USER else name}, or delete the local "
            "data with `make clean`"
        )
    for dirpath, dirnames, filenames in os.walk(DATA_DIR):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            os.lchown(name, account.pw_uid, account.pw_gid)
    log.info("handed %s to the OS user %s", DATA_DIR, account.pw_name)


def _grant_traverse(user: str, target: Path) -> None:
    """Let ``user`` reach ``target``: on each ancestor it cannot traverse, add an ACL entry
    ``u:user:x`` (traverse only, no listing; the directory's mode is left alone)."""
    dirs = [str(p) for p in reversed([target, *target.parents])]
    # chdir is the kernel's own check, ACLs included; the first failure is the blocker.
    probe = 'for d do cd "$d" 2>/dev/null || { printf "%s\\n" "$d"; exit 1; }; done'
    for _ in range(len(dirs) + 1):
        result = _run_as_server(["/bin/sh", "-c", probe, "sh", *dirs], check=False)
        if result.returncode == 0:
            return
        blocked = result.stdout.strip()
        if not blocked:
            raise ClusterError(f"cannot check directory access as {user}: {result.stderr}")
        setfacl = _which("setfacl") or "setfacl"
        done = _run([setfacl, "-m", f"u:{user}:x", blocked], check=False)
        if done.returncode != 0:
            raise ClusterError(
                f"the server runs as the OS user {user}, who cannot enter {blocked}, and "
                f"granting it with `setfacl -m u:{user}:x {blocked}` failed "
                f"({done.stderr.strip()}): the file system may lack ACL support; move the "
                "checkout elsewhere or allow that user to traverse the directory"
            )
        log.info("granted traverse (ACL u:%s:x) on %s", user, blocked)
    raise ClusterError(f"{user} still cannot reach {target} after setting ACLs")


# --- creating and configuring the cluster ---


def _initialized() -> bool:
    return (DATA_DIR / "PG_VERSION").is_file()


def _initdb(account: pwd.struct_passwd, pw: dict[str, str]) -> None:
    """initdb into a staging directory, renamed when complete, so a failed initdb leaves
    nothing that looks like a cluster."""
    if DATA_DIR.exists() and any(DATA_DIR.iterdir()):
        raise ClusterError(
            f"{DATA_DIR} exists but holds no cluster (no PG_VERSION): delete it, or run "
            "`make clean` to delete all local data"
        )
    if _is_root():
        _grant_traverse(account.pw_name, VAR)
    staging = VAR / "pgdata.initdb"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700)
    _chown(staging, account)
    fd, pwfile = tempfile.mkstemp(dir=VAR, prefix=".pwfile-")
    try:
        os.write(fd, (pw["postgres_password"] + "\n").encode())
        os.close(fd)
        _chown(Path(pwfile), account)
        _run_as_server(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(staging),
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                f"--locale={_locale()}",
                "--no-instructions",
            ],
            what="initialise the cluster (initdb)",
        )
    finally:
        os.unlink(pwfile)
    conf = staging / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as handle:
        handle.write(f"\n# Settings of this checkout (api/cluster.py)\ninclude '{CONF_FILE}'\n")
    if DATA_DIR.exists():
        DATA_DIR.rmdir()
    staging.rename(DATA_DIR)
    log.info("initialised a PostgreSQL 15 cluster in %s", DATA_DIR)


def _locale() -> str:
    """C.UTF-8 (byte order, Unicode character classes) where the system has it, else C."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "C"
    names = {line.strip().lower().replace("-", "") for line in out.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


def _config_text(port: int, socket_dir: Path) -> str:
    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    # Parallel queries put dynamic shared memory in /dev/shm, often 64 MB in containers.
    try:
        stat = os.statvfs("/dev/shm")
        shm_ok = stat.f_frsize * stat.f_blocks >= 1 << 30
    except OSError:
        shm_ok = False
    lines = [
        "# Written by api/cluster.py on every `gridmap db up`: change that file, not this one.",
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = {quoted(str(socket_dir))}",
        "unix_socket_permissions = 0700",
        "max_connections = 100",
        "shared_buffers = 256MB",
        "work_mem = 16MB",
        "maintenance_work_mem = 256MB",
        "effective_cache_size = 1GB",
        "random_page_cost = 1.1",
        "max_wal_size = 2GB",
        # An acknowledged visit or case is on disk: synchronous_commit stays on (the default);
        # the demo loader turns it off for its own transaction only.
        # JIT costs more than it saves on the short spatial queries of an API.
        "jit = off",
        f"dynamic_shared_memory_type = {'posix' if shm_ok else 'mmap'}",
        "logging_collector = off",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        "log_min_duration_statement = 2000",
        "log_lock_waits = on",
    ]
    return "\n".join(lines) + "\n"


def _write_config(port: int, socket_dir: Path, account: pwd.struct_passwd) -> bool:
    """Write the checkout's settings; True when they changed (a running server must restart)."""
    path = DATA_DIR / CONF_FILE
    text = _config_text(port, socket_dir)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    existed = path.exists()
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    _chown(path, account)
    main_conf = DATA_DIR / "postgresql.conf"
    if f"include '{CONF_FILE}'" not in main_conf.read_text(encoding="utf-8"):
        with main_conf.open("a", encoding="utf-8") as handle:
            handle.write(f"\ninclude '{CONF_FILE}'\n")
    return existed


# --- ports, sockets, pid files ---


def _path_hash() -> str:
    return hashlib.sha256(os.fsencode(ROOT)).hexdigest()


def _port_free(port: int) -> bool:
    """Nobody listens on 127.0.0.1:port (binding as the server would, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _remembered_port() -> int | None:
    try:
        port = int(PORT_FILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return port if 1024 <= port <= 65535 else None


def _choose_port(*, running: bool) -> int:
    """The remembered port; else, or when someone else took it, the first free port from a
    starting point derived from the checkout's path (two checkouts rarely collide)."""
    port = _remembered_port()
    if port is not None and (running or _port_free(port)):
        return port
    if port is not None:
        log.warning("port %d is taken by another process: choosing a new one", port)
    span = PORT_HIGH - PORT_LOW + 1
    start = int(_path_hash(), 16) % span
    for step in range(span):
        candidate = PORT_LOW + (start + step) % span
        if candidate != port and _port_free(candidate):
            PORT_FILE.write_text(f"{candidate}\n")
            return candidate
    raise ClusterError(f"no free TCP port on 127.0.0.1 between {PORT_LOW} and {PORT_HIGH}")


def _socket_dir(port: int) -> Path:
    """``var/run`` unless the socket's path would be too long for a Unix socket."""
    local = VAR / "run"
    if len(os.fsencode(local / f".s.PGSQL.{port}")) <= SOCKET_PATH_MAX:
        return local
    return Path("/tmp") / f"gridmap-{_path_hash()[:8]}"


def _read_pidfile() -> list[str] | None:
    try:
        return (DATA_DIR / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise ClusterError(
            f"cannot read {DATA_DIR}: the cluster belongs to another user (created as root?); "
            "run as that user or root"
        ) from None


def _pid_is_ours(pid: int) -> bool:
    """A live postmaster of this data directory (it chdirs there), not a reused PID."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:  # gone, or another user's process
        return False
    return os.path.realpath(cwd) == os.path.realpath(DATA_DIR)


def _running_pid() -> int | None:
    lines = _read_pidfile()
    if not lines or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    return pid if _pid_is_ours(pid) else None


def _pidfile_port() -> int | None:
    lines = _read_pidfile() or []
    return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None


def _remove_stale_locks(socket_dir: Path, port: int) -> None:
    """After a crash or reboot the pid may belong to an unrelated process of the same user,
    which makes PostgreSQL refuse to start; such lock files are stale, remove them."""
    for lock in (DATA_DIR / "postmaster.pid", socket_dir / f".s.PGSQL.{port}.lock"):
        try:
            first = lock.read_text().split("\n", 1)[0].strip()
        except FileNotFoundError:
            continue
        if first.isdigit() and _pid_is_ours(int(first)):
            continue
        lock.unlink()
        log.warning("removed the stale lock file %s (pid %s is not this cluster)", lock, first)
        if lock.parent == socket_dir:
            with contextlib.suppress(FileNotFoundError):
                (socket_dir / f".s.PGSQL.{port}").unlink()


# --- running commands ---


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _child_env() -> dict[str, str]:
    """Our environment without PG* variables (they would redirect pg_ctl), English messages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
    env["LC_ALL"] = "C"
    return env


def _run(
    argv: list[str], *, what: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            argv, cwd="/", env=_child_env(), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise ClusterError(f"could not {what or 'run ' + argv[0]}: {exc}") from exc
    if check and result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise ClusterError(
            f"could not {what or 'run ' + argv[0]} (`{' '.join(argv)}` exited "
            f"{result.returncode}):\n{output}"
        )
    return result


def _run_as_server(
    argv: list[str], *, what: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    if _is_root():
        argv = [_which("runuser") or "runuser", "-u", ROOT_SERVER_USER, "--", *argv]
    return _run(argv, what=what, check=check)


def _pg_ctl(action: str, *args: str, what: str) -> None:
    argv = [str(PG_BIN / "pg_ctl"), action, "-D", str(DATA_DIR), "-w"]
    argv += ["-t", str(START_TIMEOUT_S), *args]
    result = _run_as_server(argv, check=False)
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise ClusterError(
            f"could not {what} (pg_ctl exited {result.returncode}): {output}\n"
            f"--- last lines of {LOG_FILE} ---\n{_log_tail()}"
        )


def _log_tail(lines: int = 30) -> str:
    try:
        with LOG_FILE.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read the log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


# --- secrets, roles, the database, the env file ---


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_env_file() -> dict[str, str]:
    values: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values


def _load_secrets() -> dict[str, str]:
    """Passwords and the app's secret key: generated once, kept in var/secrets.json (mode 600)."""
    try:
        data: dict[str, str] = json.loads(SECRETS_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except ValueError as exc:
        raise ClusterError(
            f"{SECRETS_FILE} is not valid JSON ({exc}): repair or delete it"
        ) from exc
    if not data.get("postgres_password") and _initialized():
        raise ClusterError(
            f"{SECRETS_FILE} with the superuser's password is missing but {DATA_DIR} exists: "
            "restore the file, or delete the local data with `make clean`"
        )
    changed = False
    for key in ("postgres_password", "gridmap_password", "gridmap_app_password"):
        if not data.get(key):
            data[key] = secrets.token_urlsafe(24)
            changed = True
    if not data.get("secret_key"):
        # Keep the key of an older env file: sessions and signed tokens stay valid.
        data["secret_key"] = _read_env_file().get("GRIDMAP_SECRET_KEY") or secrets.token_hex(32)
        changed = True
    if changed:
        VAR.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(SECRETS_FILE, json.dumps(data, indent=2) + "\n")
    return data


def _url(user: str, password: str, port: int, database: str) -> str:
    # token_urlsafe passwords need no percent-encoding.
    return f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{port}/{database}"


@contextlib.contextmanager
def _connect(port: int | None, database: str, user: str, password: str) -> Iterator[Any]:
    """An autocommit cursor over TCP with a password, as the app connects."""
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            dbname=database,
            user=user,
            password=password,
            connect_timeout=10,
            application_name="gridmap-cluster",
        )
    except psycopg2.OperationalError as exc:
        raise ClusterError(
            f"cannot connect to the local cluster as {user} on 127.0.0.1:{port}/{database}: "
            f"{str(exc).strip()}\n(if the passwords in {SECRETS_FILE} no longer match the "
            "cluster, delete the local data with `make clean`)"
        ) from exc
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _ensure_role(cur: Any, role: str, attributes: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(f'{verb} ROLE "{role}" WITH {attributes} PASSWORD %s', (password,))


def _ensure_roles(port: int, pw: dict[str, str]) -> None:
    with _connect(port, "postgres", SUPERUSER, pw["postgres_password"]) as cur:
        _ensure_role(
            cur,
            OWNER_ROLE,
            "LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION",
            pw["gridmap_password"],
        )
        _ensure_role(
            cur,
            APP_ROLE,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION",
            pw["gridmap_app_password"],
        )
    # Every database created from now on (the tests' too) starts with PostGIS, pgRouting and a
    # public schema where only its owner creates objects.
    with _connect(port, "template1", SUPERUSER, pw["postgres_password"]) as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        cur.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
        cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def _ensure_database(port: int | None, pw: dict[str, str]) -> None:
    with _connect(port, "postgres", SUPERUSER, pw["postgres_password"]) as cur:
        cur.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (DATABASE,)
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{OWNER_ROLE}" TEMPLATE template1')
            log.info("created database %s owned by %s", DATABASE, OWNER_ROLE)
        elif row[0] != OWNER_ROLE:
            cur.execute(f'ALTER DATABASE "{DATABASE}" OWNER TO "{OWNER_ROLE}"')
        cur.execute(f'GRANT CONNECT ON DATABASE "{DATABASE}" TO "{APP_ROLE}"')
    with _connect(port, DATABASE, SUPERUSER, pw["postgres_password"]) as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        cur.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
        cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cur.execute(f'GRANT USAGE ON SCHEMA public TO "{APP_ROLE}"')


def _write_env_file(info: ClusterInfo, secret_key: str) -> None:
    """var/gridmap.env for the settings; lines other than ours are kept."""
    ours = {
        "GRIDMAP_DATABASE_URL": info.database_url,
        "GRIDMAP_OWNER_DATABASE_URL": info.owner_database_url,
        "GRIDMAP_ADMIN_DATABASE_URL": info.admin_database_url or "",
        "GRIDMAP_SECRET_KEY": secret_key,
    }
    kept: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
            key = line.partition("=")[0].strip()
            if key not in ENV_KEYS and line.strip() != ENV_HEADER:
                kept.append(line)
    text = "\n".join([ENV_HEADER, *(f"{k}={v}" for k, v in ours.items()), *kept]) + "\n"
    try:
        if ENV_FILE.read_text(encoding="utf-8") == text and ENV_FILE.stat().st_mode & 0o077 == 0:
            return
    except FileNotFoundError:
        pass
    _write_private(ENV_FILE, text)
