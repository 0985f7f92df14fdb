"""The store for several hosts: actor state in one table on a PostgreSQL server.

Where `SQLiteStore` serves the nodes of one host, `PostgresStore` lets nodes on
any number of hosts share state through a server they all reach. The semantics
are SQLite's: a missing row has version 0, a write names the version it read
and is refused with `StaleStateError` if the row moved. Each process holds one
connection, made on its store thread; a batch of requests is sent in one
round trip (libpq's pipeline mode) and committed as one transaction. A broken
connection fails the batch in flight, and the next batch connects afresh.

psycopg is an optional dependency (``pip install 'edabus[postgres]'``), imported
only on the store thread, so ``import edabus`` does not need it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ._store import Load, Save, StaleStateError, Stored, ThreadedStore

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

# Lowercase only: an unquoted name folds to lowercase, so this one spelling means the
# same table in our quoted SQL and in a person's psql session. 63 bytes is NAMEDATALEN - 1.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CONNECT_TIMEOUT_S = 10
_MISSING_DRIVER = "PostgresStore needs psycopg 3: pip install 'edabus[postgres]'"


@dataclass(slots=True)
class _Connect(Load):
    """Not a read: asks the store's thread to connect, so that `open` fails on a bad DSN."""


class PostgresStore(ThreadedStore):
    """Actor state in a table on a PostgreSQL server (the table is created if missing).

    Args:
        dsn: a libpq connection string or URI, e.g. ``"postgresql://app@db.internal/state"``;
            ``connect_timeout`` is 10 s unless it names another.
        table: the table's name, a plain SQL identifier (lowercase letters, digits, ``_``).

    Attributes:
        batches: how many batches the store's thread has run; concurrent requests share one.

    """

    def __init__(self, dsn: str, *, table: str = "edabus_state") -> None:
        if not _IDENTIFIER.fullmatch(table):
            msg = (
                f"table must be a plain SQL identifier (lowercase letters, digits and _, not starting "
                f"with a digit, at most 63 characters), not {table!r}"
            )
            raise ValueError(msg)
        self.dsn = dsn
        self.table = table
        self._sql = _sql(table)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        super().__init__(f"edabus-postgres:{table}")

    def __repr__(self) -> str:
        # The DSN may carry a password: show only the table.
        return f"PostgresStore(table={self.table!r})"

    async def open(self) -> None:
        """Start the store's thread and connect on it; raises if the server cannot be reached."""
        await super().open()
        try:
            await self._thread.call(_Connect("", ""))
        except Exception:
            await self.close()
            raise

    # -- on the store's thread -----------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            import psycopg  # noqa: PLC0415 - optional dependency, needed only once a store opens
            from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError(_MISSING_DRIVER) from exc
        options: dict[str, Any] = {}
        if "connect_timeout" not in conninfo_to_dict(self.dsn):
            options["connect_timeout"] = _CONNECT_TIMEOUT_S
        conn = psycopg.connect(self.dsn, autocommit=False, **options)
        try:
            # to_regclass first: CREATE ... IF NOT EXISTS needs the CREATE privilege even when
            # the table exists, and a deployment may grant only the table's rights.
            if conn.execute("SELECT to_regclass(%s)", (f'"{self.table}"',)).fetchone() == (None,):
                # Two hosts creating the table at once can collide in the catalog: take turns.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"edabus:{self.table}",))
                conn.execute(self._sql.schema)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _run_batch(self, batch: list[Load | Save]) -> list[object]:
        self.batches += 1
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            return _apply_batch(conn, self._sql, batch)
        except Exception as exc:
            self._recover(conn, exc)
            raise

    def _recover(self, conn: psycopg.Connection[tuple[Any, ...]], exc: Exception) -> None:
        """After a failed batch: roll back, or drop a connection the server is gone from.

        Any error aborts the transaction; an OperationalError (or a connection psycopg
        marked broken) may also have lost the server, so the next batch connects afresh.
        """
        import psycopg  # noqa: PLC0415 - already imported by _connect; optional dependency

        rolled_back = False
        if not conn.broken and not isinstance(exc, psycopg.OperationalError):
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
                rolled_back = True
        if not rolled_back:
            with contextlib.suppress(psycopg.Error):
                self._disconnect()


class _Sql(NamedTuple):
    schema: str
    select: str
    insert: str
    update: str


def _sql(table: str) -> _Sql:
    """The statements on ``table``, a name `_IDENTIFIER` has checked; every value is a parameter."""
    quoted = f'"{table}"'
    return _Sql(
        schema=f"""
            CREATE TABLE IF NOT EXISTS {quoted} (
                namespace TEXT NOT NULL,
                key TEXT NOT NULL,
                version BIGINT NOT NULL,
                data BYTEA NOT NULL,
                PRIMARY KEY (namespace, key)
            )
        """,
        select=f"SELECT version, data FROM {quoted} WHERE namespace = %s AND key = %s",  # noqa: S608 - the table name is checked
        insert=f"INSERT INTO {quoted} (namespace, key, version, data) VALUES (%s, %s, 1, %s) ON CONFLICT DO NOTHING",  # noqa: S608 - the table name is checked
        update=(
            f"UPDATE {quoted} SET version = version + 1, data = %s "  # noqa: S608 - the table name is checked
            "WHERE namespace = %s AND key = %s AND version = %s"
        ),
    )


def _apply_batch(conn: psycopg.Connection[tuple[Any, ...]], sql: _Sql, batch: list[Load | Save]) -> list[object]:
    """Send every request and the COMMIT without waiting between them, then read the results."""
    import psycopg  # noqa: PLC0415 - already imported by _connect; optional dependency

    pipeline = conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
    cursors: list[psycopg.Cursor[tuple[Any, ...]] | None] = []
    with pipeline:
        for request in batch:
            if isinstance(request, _Connect):
                cursors.append(None)
                continue
            cursor = conn.cursor()
            if isinstance(request, Load):
                cursor.execute(sql.select, (request.namespace, request.key))
            elif request.version == 0:
                cursor.execute(sql.insert, (request.namespace, request.key, request.data))
            else:
                cursor.execute(sql.update, (request.data, request.namespace, request.key, request.version))
            cursors.append(cursor)
        conn.commit()
    return [_result(cursor, request) for cursor, request in zip(cursors, batch, strict=True)]


def _result(cursor: psycopg.Cursor[tuple[Any, ...]] | None, request: Load | Save) -> object:
    if cursor is None:
        return None
    if isinstance(request, Load):
        row = cursor.fetchone()
        return None if row is None else Stored(int(row[0]), bytes(row[1]))
    if cursor.rowcount != 1:
        return StaleStateError(
            f"state of {request.namespace} {request.key!r} moved past version {request.version}: "
            "another activation wrote it"
        )
    return request.version + 1
