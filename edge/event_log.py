"""The append-only local event log, and the outbox every network sink delivers from.

SQLite in WAL mode with ``synchronous=FULL``: an event the agent appended is on
disk before ``append`` returns, and a power cut or ``kill -9`` mid-write leaves
either the whole event or none of it. Each network sink keeps a cursor (the id
of the last event it delivered) in the same database, so after an outage or a
restart it resumes exactly after what it delivered, in order.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from edgecsi.edge.events import Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    emitted REAL NOT NULL,
    body    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    sink    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
"""


class EventLog:
    """Thread-safe; one connection guarded by a lock (writes are small and rare)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._new_event = threading.Condition(self._lock)

    def append(self, event: Event) -> Event:
        """Store the event durably and give it its id."""
        with self._lock:
            event.id = None  # the row id is the event id; one INSERT is one atomic write
            cur = self._db.execute("INSERT INTO events (emitted, body) VALUES (?, ?)",
                                   (event.emitted, event.to_json()))
            event.id = int(cur.lastrowid)
            self._new_event.notify_all()
        return event

    def after(self, last_id: int, limit: int = 100) -> list[Event]:
        with self._lock:
            rows = self._db.execute("SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                    (last_id, limit)).fetchall()
        events = []
        for row_id, body in rows:
            event = Event.from_json(body)
            event.id = int(row_id)
            events.append(event)
        return events

    def wait_after(self, last_id: int, timeout: float) -> bool:
        """Block until an event newer than ``last_id`` exists (or timeout)."""
        with self._new_event:
            return self._new_event.wait_for(lambda: self._max_id_locked() > last_id, timeout=timeout)

    def _max_id_locked(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return int(row[0])

    def max_id(self) -> int:
        with self._lock:
            return self._max_id_locked()

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def cursor(self, sink: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_id FROM cursors WHERE sink = ?", (sink,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, sink: str, last_id: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO cursors (sink, last_id) VALUES (?, ?) "
                             "ON CONFLICT(sink) DO UPDATE SET last_id = excluded.last_id", (sink, last_id))

    def pending(self, sink: str) -> int:
        last = self.cursor(sink)
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events WHERE id > ?", (last,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
