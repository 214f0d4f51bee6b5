-- Rollout lanes (additive only: the previous worker version keeps running).
--
-- A lane is a worker color. Its weight (0-100) is the share of each tenant's work it
-- claims; its role says what it is in a rollout: `stable` (the version in service),
-- `canary` (a new version on a share of the work) or `preview` (a new version that
-- serves only the tenants in `tenants`, the synthetic load-test tenants).
-- The Release controller is the only writer of weights (core/delivery lanes module).
CREATE TABLE lanes (
  color       text PRIMARY KEY CHECK (color ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'),
  version     text NOT NULL DEFAULT '',
  weight      int NOT NULL DEFAULT 0 CHECK (weight BETWEEN 0 AND 100),
  role        text NOT NULL DEFAULT 'canary' CHECK (role IN ('stable', 'canary', 'preview')),
  tenants     text[] NOT NULL DEFAULT '{}',
  -- Every weight change starts a new epoch: shares are counted from it.
  epoch       bigint NOT NULL DEFAULT 1,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (role <> 'preview' OR weight = 0)
);
-- Before any Release: blue serves everything, green is idle.
INSERT INTO lanes (color, version, weight, role) VALUES ('blue', '', 100, 'stable'), ('green', '', 0, 'canary');

-- Rows each lane claimed of each tenant's work in the current epoch (the deficit
-- counters that keep every tenant's split at the weights).
CREATE TABLE lane_shares (
  tenant_id  text NOT NULL,
  color      text NOT NULL,
  epoch      bigint NOT NULL,
  claimed    bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, color)
);

-- The lane whose worker claimed the row last (null until claimed).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS lane text;

-- Workers register their version and readiness with their heartbeat.
ALTER TABLE workers ADD COLUMN IF NOT EXISTS version text NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN IF NOT EXISTS ready boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS workers_lane_live ON workers (lane, heartbeat_at) WHERE stopped_at IS NULL;

-- Every provider attempt (not only the row's last state), for the rollout analysis:
-- a canary whose sends fail at the provider leaves rows that wait and are later sent
-- by another lane, so final states alone would show the canary healthy.
-- outcome: accepted | recipient_failure (this recipient's fault) | provider_failure
-- (the provider's or our credentials': says nothing about the recipient) | orphaned
-- (the worker died holding the row). Times are the database's clock.
CREATE TABLE attempts (
  id            bigserial PRIMARY KEY,
  delivery_id   bigint NOT NULL,
  tenant_id     text NOT NULL,
  broadcast_id  uuid NOT NULL,
  channel       text NOT NULL,
  lane          text NOT NULL,
  version       text NOT NULL,
  worker_id     text,
  outcome       text NOT NULL CHECK (outcome IN ('accepted', 'recipient_failure', 'provider_failure', 'orphaned')),
  code          text,
  -- Whether a request reached the wire (false: the circuit was open, or orphaned).
  called        boolean NOT NULL,
  duration_ms   double precision,
  started_at    timestamptz NOT NULL,
  finished_at   timestamptz NOT NULL
);
CREATE INDEX attempts_lane_time ON attempts (lane, finished_at);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- Whether lane p_color may claim p_rows rows of p_tenant's work now:
--   'ok'     claim them (counted when p_count);
--   'share'  the lane is ahead of its weight for this tenant: wait a moment;
--   'closed' the lane takes none of this work (weight 0, a preview lane and a real
--            tenant, a synthetic tenant that has a preview lane, urgent work and a
--            lane that is not stable): hand it back.
-- Lanes at weight > 0 with no live worker (none heart-beating within p_lease
-- seconds) are left out of the split, so work never waits for a lane nobody serves.
CREATE FUNCTION herald_lane_admit(p_color text, p_tenant text, p_rows int, p_urgent boolean, p_count boolean, p_lease float8)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  l        lanes%ROWTYPE;
  v_prev   text;
  v_weight float8 := 0;
  v_mine   float8 := 0;
  v_total  float8 := 0;
  r        record;
BEGIN
  SELECT * INTO l FROM lanes WHERE color = p_color;
  IF NOT FOUND THEN RETURN 'closed'; END IF;
  SELECT p.color INTO v_prev FROM lanes p WHERE p.role = 'preview' AND p_tenant = ANY (p.tenants) LIMIT 1;
  IF v_prev IS NOT NULL THEN
    RETURN CASE WHEN v_prev = p_color THEN 'ok' ELSE 'closed' END;
  END IF;
  IF l.role = 'preview' OR l.weight = 0 THEN RETURN 'closed'; END IF;
  IF p_urgent THEN
    RETURN CASE WHEN l.role = 'stable' THEN 'ok' ELSE 'closed' END;
  END IF;
  IF p_count THEN
    INSERT INTO lane_shares (tenant_id, color, epoch)
      SELECT p_tenant, x.color, x.epoch FROM lanes x WHERE x.role <> 'preview' AND x.weight > 0
      ON CONFLICT DO NOTHING;
    -- Locking the tenant's counters in color order serialises its claims without deadlocks.
    PERFORM 1 FROM lane_shares WHERE tenant_id = p_tenant ORDER BY color FOR UPDATE;
  END IF;
  FOR r IN
    SELECT x.color, x.weight, CASE WHEN s.epoch = x.epoch THEN s.claimed ELSE 0 END AS claimed
      FROM lanes x LEFT JOIN lane_shares s ON s.tenant_id = p_tenant AND s.color = x.color
     WHERE x.role <> 'preview' AND x.weight > 0
       AND (x.color = p_color OR EXISTS (
             SELECT 1 FROM workers w WHERE w.lane = x.color AND w.stopped_at IS NULL
                AND w.heartbeat_at > now() - make_interval(secs => p_lease)))
  LOOP
    v_weight := v_weight + r.weight;
    v_total := v_total + r.claimed;
    IF r.color = p_color THEN v_mine := r.claimed; END IF;
  END LOOP;
  IF v_mine > (l.weight / v_weight) * (v_total + p_rows) THEN RETURN 'share'; END IF;
  IF p_count THEN
    UPDATE lane_shares SET claimed = CASE WHEN epoch = l.epoch THEN claimed ELSE 0 END + p_rows, epoch = l.epoch
     WHERE tenant_id = p_tenant AND color = p_color;
  END IF;
  RETURN 'ok';
END $$;

-- Rows counted by herald_lane_admit that the claim then did not take (another worker
-- was first, or the broadcast was paused meanwhile).
CREATE FUNCTION herald_lane_uncount(p_color text, p_tenant text, p_rows int)
RETURNS void LANGUAGE sql AS $$
  UPDATE lane_shares s SET claimed = greatest(0, s.claimed - p_rows)
    FROM lanes l WHERE l.color = s.color AND s.epoch = l.epoch AND s.tenant_id = p_tenant AND s.color = p_color;
$$;
