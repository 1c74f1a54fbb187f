-- A stage result recorded by the holder of its lease no longer notifies the schema's channel.
-- Why: NOTIFY takes one database-wide lock at commit and holds it through the WAL flush, so every
-- notifying commit waits for the one before it to reach disk; PostgreSQL can no longer flush several
-- commits at once. With 16 stages in flight, pgbench on this server measured 5,700 commits/s without
-- pg_notify and 880/s with it (10 clients). Four of a task's five transitions are stage results.
-- Nothing is lost by not hearing them: the listener only serves a daemon's check for runs that others
-- overtook (a completion is fenced by its own lease, so it overtakes nobody), and daemons look for
-- runnable work on every poll whatever the marker says. Everything else still notifies: new tasks,
-- START, approvals, cancel, rewind, retry, resume.
CREATE OR REPLACE FUNCTION cairn_commit_transitions(p_writes jsonb, p_is_retry boolean)
RETURNS TABLE (ok boolean, reason text, message text, seq integer, task json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  w        jsonb;
  c        jsonb;
  g        record;
  v_task   BIGINT;
  v_exp    INTEGER;
  v_at     BIGINT;
  v_seq    INTEGER;
  v_notify boolean := false;
BEGIN
  -- Lock every row of the batch in id order first: two batches never wait on each other in a circle.
  -- (= ANY of an ARRAY: an index lookup per id; an IN subquery can be planned as a scan of every task.)
  PERFORM 1 FROM tasks t
   WHERE t.id = ANY (ARRAY(SELECT (e->>'task_id')::bigint FROM jsonb_array_elements(p_writes) e))
   ORDER BY t.id FOR UPDATE;
  FOR w IN SELECT e FROM jsonb_array_elements(p_writes) e LOOP
    v_task := (w->>'task_id')::bigint;
    v_exp := (w->>'expected_version')::integer;
    v_at := (w->>'at')::bigint;
    c := CASE WHEN jsonb_typeof(w->'completion') = 'object' THEN w->'completion' END;
    SELECT t.version, t.lease_owner, t.lease_token INTO g FROM tasks t WHERE t.id = v_task;
    IF NOT FOUND THEN
      RETURN QUERY SELECT false, 'missing'::text, format('task %s does not exist', v_task), NULL::integer, NULL::json;
      CONTINUE;
    END IF;
    IF g.version <> v_exp THEN
      IF p_is_retry AND EXISTS (
        SELECT 1 FROM transitions x
         WHERE x.task_id = v_task AND x.seq = v_exp + 1 AND x.actor = w->>'actor' AND x.at = v_at AND x.event = w->>'event'
      ) THEN
        RETURN QUERY SELECT true, NULL::text, NULL::text, v_exp + 1, cairn_task_json(v_task);
      ELSE
        RETURN QUERY SELECT false, 'conflict'::text,
          format('task %s changed (version %s, expected %s)', v_task, g.version, v_exp), NULL::integer, NULL::json;
      END IF;
      CONTINUE;
    END IF;
    IF c IS NOT NULL THEN
      IF g.lease_owner IS NULL OR g.lease_token <> (c->>'lease_token')::bigint THEN
        RETURN QUERY SELECT false, 'fenced'::text,
          format('task %s: the lease for %s attempt %s was lost (token %s, now %s)',
                 v_task, c->>'stage', c->>'attempt', c->>'lease_token', g.lease_token),
          NULL::integer, NULL::json;
        CONTINUE;
      END IF;
      UPDATE stage_runs r
         SET outcome = c->>'outcome', finished_at = v_at, exit_code = (c->>'exit_code')::integer, signal = c->>'signal'
       WHERE r.task_id = v_task AND r.stage = c->>'stage' AND r.attempt = (c->>'attempt')::integer AND r.outcome IS NULL;
      IF NOT FOUND THEN
        RETURN QUERY SELECT false, 'duplicate'::text,
          format('task %s: %s attempt %s was already recorded', v_task, c->>'stage', c->>'attempt'), NULL::integer, NULL::json;
        CONTINUE;
      END IF;
    ELSE
      -- Any other transition ends whatever run was open: it was interrupted (RESUME) or overtaken (cancel, rewind).
      UPDATE stage_runs r
         SET outcome = CASE WHEN w->>'event_type' = 'RESUME' THEN 'interrupted' ELSE 'superseded' END, finished_at = v_at
       WHERE r.task_id = v_task AND r.outcome IS NULL;
    END IF;
    SELECT coalesce(max(x.seq), 0) + 1 INTO v_seq FROM transitions x WHERE x.task_id = v_task;
    INSERT INTO transitions (task_id, seq, from_state, to_state, event_type, stage, attempt, event, actor, at)
    VALUES (v_task, v_seq, w->>'from', w->>'to', w->>'event_type', c->>'stage', (c->>'attempt')::integer,
            w->>'event', w->>'actor', v_at);
    UPDATE tasks t
       SET state = w->>'to', status = w->>'status', snapshot = w->>'snapshot', version = t.version + 1,
           run_stage = w->>'run_stage', run_attempt = (w->>'run_attempt')::integer, run_after = (w->>'run_after')::bigint,
           lease_owner = NULL, lease_expires_at = NULL, updated_at = v_at
     WHERE t.id = v_task AND t.version = v_exp;
    INSERT INTO checkpoints (task_id, name, seq, state, snapshot, at)
    SELECT v_task, k.name, v_seq, w->>'to', w->>'snapshot', v_at
      FROM jsonb_array_elements_text(w->'checkpoints') WITH ORDINALITY AS k(name, n) ORDER BY k.n;
    INSERT INTO notes (task_id, scope, kind, text, rationale, impact, category, stage, attempt, source, actor, at)
    SELECT n.task_id, n.scope, n.kind, n.text, n.rationale, n.impact, n.category, n.stage, n.attempt, n.source, n.actor, n.at
      FROM jsonb_to_recordset(coalesce(w->'notes', '[]'::jsonb))
           AS n(task_id BIGINT, scope TEXT, kind TEXT, text TEXT, rationale TEXT, impact TEXT, category TEXT,
                stage TEXT, attempt INTEGER, source TEXT, actor TEXT, at BIGINT);
    -- Only a write with no completion can overtake a run someone else holds (cancel, rewind, resume, START).
    v_notify := v_notify OR c IS NULL;
    RETURN QUERY SELECT true, NULL::text, NULL::text, v_seq, cairn_task_json(v_task);
  END LOOP;
  IF v_notify THEN PERFORM cairn_notify_change(); END IF;
END
$$;
