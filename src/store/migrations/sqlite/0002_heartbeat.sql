-- The heartbeat's own records (DESIGN §5): each cycle with the outcome of each part, restore drills,
-- where archived tasks went, and short locks so two processes never run the same upkeep at once.
-- Snapshots are not listed here: a restore replaces this database, so their catalog lives next to the
-- files (state/snapshots/NAME.json).

CREATE TABLE heartbeats (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id  TEXT,                                  -- the daemon session; NULL for `cairn heartbeat`
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  ok          INTEGER NOT NULL,                      -- 1 when every part that ran succeeded
  cycle_ran   INTEGER NOT NULL DEFAULT 0,            -- 1 when the `cycle` command ran in it
  parts       TEXT    NOT NULL,                      -- JSON [{name, ok, ms, error?, skipped?, detail?}]
  flags       TEXT    NOT NULL                       -- JSON [{kind, message, task?, session?}]
);
CREATE INDEX heartbeats_started ON heartbeats (started_at);

CREATE TABLE restore_drills (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at       INTEGER NOT NULL,
  snapshot TEXT    NOT NULL,                         -- the snapshot's name
  ok       INTEGER NOT NULL,
  checks   TEXT    NOT NULL,                         -- JSON {sha256, integrity, tasks, expected_tasks}
  message  TEXT    NOT NULL
);

-- One row per task moved to a monthly archive database (state/archive/history-YYYY-MM.db).
CREATE TABLE archived_tasks (
  task_id     INTEGER PRIMARY KEY,
  archive     TEXT    NOT NULL,                      -- file name under state/archive/
  status      TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  archived_at INTEGER NOT NULL
);

CREATE TABLE maintenance_locks (
  name       TEXT    PRIMARY KEY,
  owner      TEXT    NOT NULL,
  expires_at INTEGER NOT NULL
);
