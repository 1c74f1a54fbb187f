-- sqlite/0003 on PostgreSQL: the key-value state (`cairn state`, module stages' ctx.state) in the same
-- schema as the tasks, so several daemons sharing the database share the state too, and migrate-store
-- can carry a SQLite user's keys across. Times are ISO 8601 text, kept verbatim (as on SQLite) so
-- state moved between backends keeps its stamps; values are JSON text, not JSONB (which reorders keys).

CREATE TABLE kv_entries (
  ns         TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,                          -- JSON text
  updated_at TEXT NOT NULL,
  PRIMARY KEY (ns, key)
);

-- A checkpoint is a whole copy of its namespace, taken in one transaction.
CREATE TABLE kv_checkpoints (
  ns      TEXT NOT NULL,
  name    TEXT NOT NULL,
  at      TEXT NOT NULL,
  entries TEXT NOT NULL,                             -- JSON [{key, value, updatedAt}]
  PRIMARY KEY (ns, name)
);
