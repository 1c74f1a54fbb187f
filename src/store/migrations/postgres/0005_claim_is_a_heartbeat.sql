-- A claim also renews its session's heartbeat, so "session silent" and "lease expired" agree.
CREATE OR REPLACE FUNCTION cairn_claim_run(p_task BIGINT, p_session TEXT, p_now BIGINT, p_lease_ms BIGINT, p_is_retry boolean)
RETURNS TABLE (task json, run json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  t record;
BEGIN
  IF p_is_retry AND EXISTS (
    SELECT 1 FROM tasks x JOIN stage_runs r ON r.task_id = x.id AND r.stage = x.run_stage AND r.attempt = x.run_attempt
     WHERE x.id = p_task AND x.lease_owner = p_session AND r.session_id = p_session AND r.started_at = p_now AND r.outcome IS NULL
  ) THEN
    RETURN QUERY SELECT cairn_task_json(p_task),
      (SELECT row_to_json(r) FROM tasks x JOIN stage_runs r ON r.task_id = x.id AND r.stage = x.run_stage AND r.attempt = x.run_attempt
        WHERE x.id = p_task);
    RETURN;
  END IF;
  SELECT x.run_stage, x.run_attempt INTO t FROM tasks x
   WHERE x.id = p_task AND x.run_stage IS NOT NULL AND x.lease_owner IS NULL AND (x.run_after IS NULL OR x.run_after <= p_now)
   FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  -- A session others marked stale (it was frozen) must not take new leases: its tasks are being resumed.
  IF EXISTS (SELECT 1 FROM sessions s WHERE s.id = p_session AND s.status <> 'active') THEN RETURN; END IF;
  -- A run is started once: with its lease lost but the run recorded, it is not started again.
  IF EXISTS (SELECT 1 FROM stage_runs r WHERE r.task_id = p_task AND r.stage = t.run_stage AND r.attempt = t.run_attempt) THEN
    RETURN;
  END IF;
  UPDATE tasks x SET lease_owner = p_session, lease_expires_at = p_now + p_lease_ms, lease_token = x.lease_token + 1
   WHERE x.id = p_task;
  -- A claim is a sign of life: the session counts as heard from now, so it cannot be judged silent
  -- (and its tasks resumed) before the lease it just took runs out.
  UPDATE sessions s SET last_heartbeat_at = GREATEST(s.last_heartbeat_at, p_now) WHERE s.id = p_session AND s.status = 'active';
  INSERT INTO stage_runs (task_id, stage, attempt, run_id, session_id, started_at)
  -- The run id is "<task>.<stage>.<attempt>", as runIdOf builds it for SQLite.
  VALUES (p_task, t.run_stage, t.run_attempt, p_task || '.' || t.run_stage || '.' || t.run_attempt, p_session, p_now);
  RETURN QUERY SELECT cairn_task_json(p_task),
    (SELECT row_to_json(r) FROM stage_runs r WHERE r.task_id = p_task AND r.stage = t.run_stage AND r.attempt = t.run_attempt);
END
$$;
