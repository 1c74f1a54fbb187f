-- The heartbeat's named locks (sqlite/0002's maintenance_locks) on PostgreSQL: several daemons share
-- one schema, and without a lock each of them ran the `cycle` command on every heartbeat, submitting
-- its tasks once per daemon. A row, not a session advisory lock, because the heartbeat also keeps a
-- claim on "this cycle's upkeep is done" after it has finished, until the next cron tick.
-- A holder that dies leaves its row: it expires at expires_at, or sooner once its session is no
-- longer active (src/daemon/heartbeat.ts takes it over then).

CREATE TABLE maintenance_locks (
  name       TEXT   PRIMARY KEY,
  owner      TEXT   NOT NULL,                        -- a session id, or cli:<pid>@<host>
  expires_at BIGINT NOT NULL                         -- epoch ms
);
