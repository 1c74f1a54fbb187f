-- Tasks, their append-only transitions, checkpoints, stage runs and daemon sessions.
-- Times are epoch milliseconds. JSON columns hold text produced by JSON.stringify.

CREATE TABLE tasks (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  request          TEXT    NOT NULL,
  priority         TEXT    NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
  priority_rank    INTEGER NOT NULL,                 -- 0 high, 1 medium, 2 low: dispatch order
  tags             TEXT    NOT NULL DEFAULT '[]',
  state            TEXT    NOT NULL,
  status           TEXT    NOT NULL,
  snapshot         TEXT    NOT NULL,                 -- {value, context} of the task machine
  version          INTEGER NOT NULL DEFAULT 1,       -- optimistic concurrency
  run_stage        TEXT,                             -- the stage run the state asks for next
  run_attempt      INTEGER,
  run_after        INTEGER,                          -- backoff: not before this time
  lease_owner      TEXT,                             -- session running the stage
  lease_expires_at INTEGER,
  lease_token      INTEGER NOT NULL DEFAULT 0,       -- fencing: bumped on every claim
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, id);
CREATE INDEX tasks_state ON tasks (state, id);
CREATE INDEX tasks_dispatch ON tasks (priority_rank, created_at, id) WHERE state = 'pending';
CREATE INDEX tasks_runnable ON tasks (run_after) WHERE run_stage IS NOT NULL AND lease_owner IS NULL;
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE task_dependencies (
  task_id    INTEGER NOT NULL REFERENCES tasks (id),
  depends_on INTEGER NOT NULL REFERENCES tasks (id),
  PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;

CREATE TABLE transitions (
  task_id    INTEGER NOT NULL REFERENCES tasks (id),
  seq        INTEGER NOT NULL,
  from_state TEXT,
  to_state   TEXT    NOT NULL,
  event_type TEXT    NOT NULL,
  stage      TEXT,                                   -- stage events only
  attempt    INTEGER,
  event      TEXT    NOT NULL,                       -- {type, ...payload}
  actor      TEXT    NOT NULL,
  at         INTEGER NOT NULL,
  PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
-- A stage run's result is recorded once, whatever the code does.
CREATE UNIQUE INDEX transitions_one_result_per_run ON transitions (task_id, stage, attempt)
  WHERE event_type IN ('STAGE_SUCCEEDED', 'STAGE_FAILED');

CREATE TABLE checkpoints (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id  INTEGER NOT NULL REFERENCES tasks (id),
  name     TEXT    NOT NULL,
  seq      INTEGER NOT NULL,                         -- the transition that reached it
  state    TEXT    NOT NULL,
  snapshot TEXT    NOT NULL,
  at       INTEGER NOT NULL
);
CREATE INDEX checkpoints_task ON checkpoints (task_id, name, id);

CREATE TABLE stage_runs (
  task_id     INTEGER NOT NULL REFERENCES tasks (id),
  stage       TEXT    NOT NULL,
  attempt     INTEGER NOT NULL,
  run_id      TEXT    NOT NULL UNIQUE,
  session_id  TEXT    NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER,
  outcome     TEXT CHECK (outcome IN ('succeeded', 'failed', 'superseded', 'interrupted')),
  exit_code   INTEGER,
  signal      TEXT,
  pgid        INTEGER,
  PRIMARY KEY (task_id, stage, attempt)
) WITHOUT ROWID;
CREATE INDEX stage_runs_open ON stage_runs (session_id) WHERE outcome IS NULL;

CREATE TABLE sessions (
  id                TEXT    PRIMARY KEY,
  pid               INTEGER NOT NULL,
  host              TEXT    NOT NULL,
  started_at        INTEGER NOT NULL,
  last_heartbeat_at INTEGER NOT NULL,
  status            TEXT    NOT NULL CHECK (status IN ('active', 'stopped', 'crashed', 'stale')),
  ended_at          INTEGER
);
