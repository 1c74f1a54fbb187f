-- Results of `npm run bench`, one row per run, so `npm run bench -- --history` shows how figures moved.
CREATE TABLE bench_runs (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  version TEXT    NOT NULL,                         -- package version and git commit
  quick   INTEGER NOT NULL,
  machine TEXT    NOT NULL,                         -- cores, cpu, node
  rows    TEXT    NOT NULL                          -- the printed table as JSON
);
