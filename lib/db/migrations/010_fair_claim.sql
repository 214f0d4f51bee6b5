-- Fair shares of shared limits (additive only: the previous worker version keeps running).
--
-- A shared token bucket (the provider account, a tenant's own allowance) is split between
-- the parties that want it at that moment by start-time fair queueing: each party has a
-- virtual time, the tokens it was granted divided by its weight. A grant goes to a party
-- at most one grant ahead of the party furthest behind; the others are told how long to
-- wait and hand their work back meanwhile (a worker slot never sleeps on tokens). A party
-- that comes back after being idle starts at the furthest-behind virtual time, so idle time
-- is no credit; a party alone takes the whole bucket (work-conserving).
--
-- Levels: account bucket -> tenants (weighted by tenant_plans.fair_share_weight), a
-- tenant's own bucket -> its broadcasts (equal). Urgent work is its own class: while any
-- party wants urgent tokens from a bucket, normal work waits, and urgent parties share
-- the bucket fairly between themselves.
CREATE TABLE fair_shares (
  bucket         text NOT NULL,
  party          text NOT NULL,
  urgent         boolean NOT NULL,
  weight         float8 NOT NULL CHECK (weight > 0),
  vtime          float8 NOT NULL DEFAULT 0,
  -- The party asked recently (granted or refused): it counts in the split until then.
  wanting_until  timestamptz NOT NULL DEFAULT '-infinity',
  -- The last refusal for capacity, and the party's share of the bucket at that moment:
  -- what a Broadcast's WaitingForCapacity condition shows.
  refused_at     timestamptz,
  share          float8,
  PRIMARY KEY (bucket, urgent, party)
);

-- Take p_want tokens from every bucket of p_keys (rates p_rates, as herald_take_tokens) if
-- the fair split allows it. p_fair[i] (each also one of p_keys) is shared fairly between
-- parties; this request is party p_parties[i] with weight p_weights[i] there.
-- granted: tokens taken (0 when refused); wait_s: when refused, seconds until it is worth
-- asking again; share: the party's share of p_fair[1] among those wanting it now.
CREATE FUNCTION herald_fair_take(p_keys text[], p_rates float8[], p_want float8,
                                 p_fair text[], p_parties text[], p_weights float8[], p_urgent boolean,
                                 OUT granted float8, OUT wait_s float8, OUT share float8)
LANGUAGE plpgsql AS $$
DECLARE
  v_now    timestamptz := clock_timestamp();
  v_wait   float8 := 0;
  v_vt     float8[] := '{}';
  v_min    float8;
  v_wsum   float8;
  v_rate   float8;
  me       fair_shares%ROWTYPE;
  r        record;
  i        int;
BEGIN
  share := 1;
  INSERT INTO rate_buckets (key, tokens, updated_at)
    SELECT u.k, greatest(u.rt, 1), v_now FROM unnest(p_keys, p_rates) AS u(k, rt)
    ON CONFLICT (key) DO NOTHING;
  -- Lock in key order so concurrent callers never deadlock; the lock on a fair bucket also
  -- serialises the bookkeeping of its parties.
  FOR r IN
    SELECT b.key, u.rt,
           least(greatest(u.rt, 1), b.tokens + u.rt * extract(epoch FROM v_now - b.updated_at)) AS balance
      FROM rate_buckets b JOIN unnest(p_keys, p_rates) AS u(k, rt) ON u.k = b.key
     ORDER BY b.key
       FOR UPDATE OF b
  LOOP
    IF r.balance <= 0 THEN
      v_wait := greatest(v_wait, (0.001 - r.balance) / r.rt);
    END IF;
  END LOOP;

  FOR i IN 1 .. coalesce(cardinality(p_fair), 0) LOOP
    v_rate := p_rates[array_position(p_keys, p_fair[i])];
    IF v_rate IS NULL THEN RAISE EXCEPTION 'fair bucket % is not one of the keys taken', p_fair[i]; END IF;
    INSERT INTO fair_shares (bucket, party, urgent, weight) VALUES (p_fair[i], p_parties[i], p_urgent, p_weights[i])
      ON CONFLICT (bucket, urgent, party) DO UPDATE SET weight = EXCLUDED.weight;
    SELECT * INTO me FROM fair_shares WHERE bucket = p_fair[i] AND urgent = p_urgent AND party = p_parties[i];
    SELECT min(f.vtime), sum(f.weight) INTO v_min, v_wsum FROM fair_shares f
     WHERE f.bucket = p_fair[i] AND f.urgent = p_urgent AND f.wanting_until > v_now AND f.party <> p_parties[i];
    -- Back after being idle: no credit for the time it wanted nothing.
    IF me.wanting_until <= v_now AND v_min IS NOT NULL THEN me.vtime := greatest(me.vtime, v_min); END IF;
    v_wsum := coalesce(v_wsum, 0) + me.weight;
    IF i = 1 THEN share := me.weight / v_wsum; END IF;
    v_vt := v_vt || me.vtime;
    IF NOT p_urgent AND EXISTS (SELECT 1 FROM fair_shares u WHERE u.bucket = p_fair[i] AND u.urgent AND u.wanting_until > v_now) THEN
      -- Urgent work goes first.
      v_wait := greatest(v_wait, 0.1);
    ELSIF v_min IS NOT NULL AND me.vtime - v_min > p_want / me.weight THEN
      -- More than one grant ahead of the party furthest behind: wait until it has caught up,
      -- at the bucket's rate split over everyone wanting it.
      v_wait := greatest(v_wait, (me.vtime - v_min - p_want / me.weight) * v_wsum / v_rate);
    END IF;
  END LOOP;

  IF v_wait > 0 THEN
    granted := 0;
    wait_s := least(v_wait, 5);
    FOR i IN 1 .. coalesce(cardinality(p_fair), 0) LOOP
      UPDATE fair_shares SET vtime = v_vt[i], refused_at = v_now,
             share = CASE WHEN i = 1 THEN herald_fair_take.share ELSE fair_shares.share END,
             wanting_until = v_now + make_interval(secs => wait_s + 1)
       WHERE bucket = p_fair[i] AND urgent = p_urgent AND party = p_parties[i];
    END LOOP;
    RETURN;
  END IF;

  UPDATE rate_buckets b
     SET tokens = least(greatest(u.rt, 1), b.tokens + u.rt * extract(epoch FROM v_now - b.updated_at)) - p_want,
         updated_at = v_now
    FROM unnest(p_keys, p_rates) AS u(k, rt)
   WHERE b.key = u.k;
  FOR i IN 1 .. coalesce(cardinality(p_fair), 0) LOOP
    UPDATE fair_shares SET vtime = v_vt[i] + p_want / weight, wanting_until = v_now + interval '1 second'
     WHERE bucket = p_fair[i] AND urgent = p_urgent AND party = p_parties[i];
  END LOOP;
  granted := p_want;
  wait_s := 0;
END $$;

-- One admission for one claim: the lane's share (herald_lane_admit, counted) and then the
-- tokens of the fair split; a lane count is given back when the tokens are refused.
-- verdict: the lane's ('ok' | 'share' | 'closed'), or 'wait' when the tokens are refused.
CREATE FUNCTION herald_claim_admit(p_lane text, p_tenant text, p_rows int, p_urgent boolean, p_lease float8,
                                   p_keys text[], p_rates float8[], p_tokens float8,
                                   p_fair text[], p_parties text[], p_weights float8[],
                                   OUT verdict text, OUT wait_s float8, OUT share float8)
LANGUAGE plpgsql AS $$
DECLARE
  t record;
BEGIN
  verdict := herald_lane_admit(p_lane, p_tenant, p_rows, p_urgent, true, p_lease);
  wait_s := 0;
  share := 1;
  IF verdict <> 'ok' OR coalesce(cardinality(p_keys), 0) = 0 THEN RETURN; END IF;
  SELECT * INTO t FROM herald_fair_take(p_keys, p_rates, p_tokens, p_fair, p_parties, p_weights, p_urgent);
  share := t.share;
  IF t.granted <= 0 THEN
    verdict := 'wait';
    wait_s := t.wait_s;
    IF NOT p_urgent THEN PERFORM herald_lane_uncount(p_lane, p_tenant, p_rows); END IF;
  END IF;
END $$;

-- A claim took fewer rows than it was admitted for (another worker was first): give the
-- lane's count and the tokens of the rows it did not take back.
CREATE FUNCTION herald_claim_refund(p_lane text, p_tenant text, p_rows int, p_urgent boolean,
                                    p_keys text[], p_rates float8[], p_tokens float8)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF NOT p_urgent THEN PERFORM herald_lane_uncount(p_lane, p_tenant, p_rows); END IF;
  IF p_tokens > 0 THEN
    UPDATE rate_buckets b SET tokens = least(greatest(u.rt, 1), b.tokens + p_tokens)
      FROM unnest(p_keys, p_rates) AS u(k, rt) WHERE b.key = u.k;
  END IF;
END $$;
