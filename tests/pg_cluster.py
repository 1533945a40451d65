"""A throwaway PostgreSQL cluster for the tests and benchmarks of the PostgreSQL backend.

``python -m tests.pg_cluster start`` creates a cluster in a new directory (``initdb``), starts it on
a free port of 127.0.0.1 with its socket in ``DIR`` and prints the directory and its connection string on two lines;
``python -m tests.pg_cluster stop DIR`` stops it (immediate shutdown) and removes ``DIR``.
``.ci/run`` starts one before the tests, exports the string as ``CX_TEST_POSTGRES`` and stops
it when it exits, whatever happened. Without that variable the ``postgres_dsn`` fixture starts
a cluster of its own for the session (and skips where PostgreSQL is not installed).

The server refuses to run as root: run as root, the cluster belongs to the ``postgres`` user
and every command runs through ``runuser``. Nothing here is meant for production: the cluster
trusts every local connection.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV = "CX_TEST_POSTGRES"
USER = "cx"
DATABASE = "cx"


def bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``, or None where PostgreSQL is not installed."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if versions:  # Debian's own binaries, not its version-picking wrappers on PATH
        return versions[0].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(directory: Path) -> str:
    """Create and start a cluster in ``directory`` (which must not exist; as root, its parent
    must be reachable by the ``postgres`` user, as /tmp is); return its connection string. A
    cluster that fails to start is stopped and removed again."""
    binaries = bin_dir()
    if binaries is None:
        raise RuntimeError(
            "PostgreSQL is not installed (no pg_ctl under /usr/lib/postgresql or on PATH)"
        )
    directory.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"

    def run(program: str, *args: str) -> None:
        done = subprocess.run(
            _as_owner([str(binaries / program), *args]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")

    port = _free_port()
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1"
        " -c max_connections=200 -c shared_buffers=64MB"
    )
    try:
        run("initdb", "-D", str(data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        run(
            "pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(directory / "server.log"),
            "-w",
            "start",
        )
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE)
    except BaseException:
        stop(directory)
        raise
    return f"host=127.0.0.1 port={port} user={USER} dbname={DATABASE}"


def new_directory() -> Path:
    """A fresh path for :func:`start` in a private directory under the system's temporary
    directory that the ``postgres`` user can reach."""
    parent = Path(tempfile.mkdtemp(prefix="cx-pg-"))
    parent.chmod(0o755)
    return parent / "cluster"


def stop(directory: Path) -> None:
    """Stop the cluster in ``directory`` if it runs, then remove ``directory``."""
    binaries = bin_dir()
    data = directory / "data"
    if binaries is not None and (data / "postmaster.pid").exists():
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
    shutil.rmtree(directory, ignore_errors=True)
    if directory.parent.name.startswith("cx-pg-"):
        shutil.rmtree(directory.parent, ignore_errors=True)


_databases = itertools.count(1)


@contextlib.contextmanager
def fresh_database(server: str, prefix: str = "cx_test") -> Iterator[str]:
    """The connection string of a new, empty database on ``server`` (a connection string),
    dropped on the way out: nothing of an earlier run (journals, fenced writers) is read."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"{prefix}_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str]) -> int:
    if argv == ["start"]:
        directory = new_directory()
        dsn = start(directory)
        print(directory)
        print(dsn)
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        stop(Path(argv[1]))
        return 0
    print("usage: python -m tests.pg_cluster start | stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
