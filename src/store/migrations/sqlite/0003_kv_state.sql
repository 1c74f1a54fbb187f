-- Key-value state (`cairn state`, module stages' ctx.state) in the same database as the tasks.
-- Times are ISO 8601 text, kept verbatim so state moved between backends keeps its stamps.

CREATE TABLE kv_entries (
  ns         TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,                          -- JSON text
  updated_at TEXT NOT NULL,
  PRIMARY KEY (ns, key)
) WITHOUT ROWID;

-- A checkpoint is a whole copy of its namespace, taken in one transaction.
CREATE TABLE kv_checkpoints (
  ns      TEXT NOT NULL,
  name    TEXT NOT NULL,
  at      TEXT NOT NULL,
  entries TEXT NOT NULL,                             -- JSON [{key, value, updatedAt}]
  PRIMARY KEY (ns, name)
) WITHOUT ROWID;
