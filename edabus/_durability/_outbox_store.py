"""`SQLiteOutbox`: a bus's unacknowledged reliable messages, kept in a SQLite file through a crash.

A publisher that is a script or a web process dies with the reliable messages
its owners have not acknowledged yet. Given one of these
(``edabus.connect(..., outbox=edabus.SQLiteOutbox(path))``), its bus writes each
reliable message there before ``publish`` returns and removes it once its owner
answered; the next bus opened on the same file sends again, in order, what is
left. The file also keeps the bus's sender id and the highest number it gave
(`Meta.sender`, `Meta.seq`), so the owners recognise the messages they already
applied and drop them: each is applied once.

One bus at a time uses a file: the connection holds SQLite's lock while it is
open, and a second bus that opens the file fails with `OutboxInUseError`.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edabus._exceptions import OutboxInUseError
from edabus._transport._outbox import Kept, KeptMessage

from ._store import StoreThread

__all__ = ["SQLiteOutbox"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS edabus_outbox_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    (
        "CREATE TABLE IF NOT EXISTS edabus_outbox ("
        " key TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, trace TEXT NOT NULL, payload BLOB NOT NULL,"
        " PRIMARY KEY (key, seq)) WITHOUT ROWID"
    ),
)


@dataclass(slots=True)
class _Open:
    """Take the file; read what it keeps."""


@dataclass(slots=True)
class _Add:
    message: KeptMessage
    high: int


@dataclass(slots=True)
class _Remove:
    answered: Sequence[tuple[str, int]]


class SQLiteOutbox:
    """A durable outbox for one bus at a time, in a SQLite file (created if missing).

    Args:
        path: the database file.
        durable: fsync every commit (``synchronous=FULL``), which also survives a
            power loss; by default a commit survives the process (``NORMAL``).

    """

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self._db: sqlite3.Connection | None = None
        self._thread = StoreThread(f"edabus-outbox:{self.path.name}", self._run_batch, self._disconnect)
        self.batches = 0

    def __repr__(self) -> str:
        return f"SQLiteOutbox({str(self.path)!r})"

    async def open(self) -> Kept:
        """Take the file (`OutboxInUseError` if another bus holds it); what it keeps."""
        self._thread.start()
        try:
            kept: Kept = await self._thread.call(_Open())
        except BaseException:
            await self._thread.stop()
            raise
        return kept

    async def add(self, message: KeptMessage, high: int) -> None:
        """Keep ``message`` and the highest number given; committed on return."""
        await self._thread.call(_Add(message, high))

    async def remove(self, answered: Sequence[tuple[str, int]]) -> None:
        """Forget these messages (key and number): their owners answered."""
        await self._thread.call(_Remove(answered))

    async def close(self) -> None:
        """Finish queued writes and release the file."""
        await self._thread.stop()

    # -- on the store's thread -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=0.5, isolation_level=None, check_same_thread=False)
        try:
            # Exclusive: the first write takes the lock and keeps it while the connection lives.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            # WAL: a commit appends to the log, with no fsync unless durable (NORMAL keeps it
            # through a crash of the process, as the state store does).
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            db.close()
            msg = f"the outbox {str(self.path)!r} is in use by another bus ({exc})"
            raise OutboxInUseError(msg) from exc
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("COMMIT")
        return db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _run_batch(self, batch: list[_Open | _Add | _Remove]) -> list[object]:
        self.batches += 1
        if self._db is None:
            try:
                self._db = self._connect()
            except OutboxInUseError as exc:
                return [exc] * len(batch)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            results = [self._apply(db, request) for request in batch]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return results

    @staticmethod
    def _apply(db: sqlite3.Connection, request: _Open | _Add | _Remove) -> object:
        if isinstance(request, _Add):
            message = request.message
            db.execute(
                "INSERT OR REPLACE INTO edabus_outbox (key, seq, type, trace, payload) VALUES (?, ?, ?, ?, ?)",
                (message.key, message.seq, message.type_name, message.trace, message.payload),
            )
            db.execute(
                "INSERT INTO edabus_outbox_meta (name, value) VALUES ('high', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                " WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER)",
                (str(request.high),),
            )
            return None
        if isinstance(request, _Remove):
            db.executemany("DELETE FROM edabus_outbox WHERE key = ? AND seq = ?", request.answered)
            return None
        meta = dict(db.execute("SELECT name, value FROM edabus_outbox_meta").fetchall())
        sender = meta.get("sender")
        if sender is None:
            sender = f"outbox-{uuid.uuid4().hex[:16]}"
            db.execute("INSERT INTO edabus_outbox_meta (name, value) VALUES ('sender', ?)", (sender,))
        rows = db.execute("SELECT key, seq, payload, type, trace FROM edabus_outbox ORDER BY key, seq").fetchall()
        messages = [
            KeptMessage(key, seq, bytes(payload), type_name, trace) for key, seq, payload, type_name, trace in rows
        ]
        return Kept(sender, int(meta.get("high", 0)), messages)
