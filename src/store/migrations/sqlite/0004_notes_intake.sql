-- Decisions and insights recorded with a task (from `cairn note`, a stage's output, or an import),
-- and the keys of work already taken in (inbox files by content hash, imported items), so that
-- taking the same thing in twice after a crash never creates a task twice.

CREATE TABLE notes (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id   INTEGER REFERENCES tasks (id),          -- null for notes kept for a scope (an imported experiment)
  scope     TEXT,
  kind      TEXT    NOT NULL CHECK (kind IN ('decision', 'insight')),
  text      TEXT    NOT NULL,
  rationale TEXT,
  impact    TEXT,
  category  TEXT,
  stage     TEXT,                                   -- set when a stage's output carried it
  attempt   INTEGER,
  source    TEXT    NOT NULL,                       -- cli, stage, import
  actor     TEXT    NOT NULL,
  at        INTEGER NOT NULL
);
CREATE INDEX notes_task ON notes (task_id, id);

CREATE TABLE intake_keys (
  source   TEXT    NOT NULL,                        -- inbox, import:<kind>, cycle
  key      TEXT    NOT NULL,                        -- content hash or item id
  task_ids TEXT    NOT NULL,                        -- JSON array of the tasks it created
  at       INTEGER NOT NULL,
  PRIMARY KEY (source, key)
) WITHOUT ROWID;
