-- Runs waiting for a slot, kept in the order dispatch takes them (sqlite/0006). The index it replaces
-- was keyed by due time alone: every dispatch round sorted all waiting runs, and every claim round's
-- "best waiting priority" read them all. With 10,000 waiting runs that was 7.0 ms and 2.9 ms; in
-- dispatch order it is 0.04 ms and 0.01 ms.
DROP INDEX tasks_runnable;
CREATE INDEX tasks_runnable ON tasks (priority_rank, (coalesce(run_after, 0)), id)
  WHERE run_stage IS NOT NULL AND lease_owner IS NULL;
