-- herald_fair_take (migration 010) records a refusal at a shared bucket only when that
-- bucket refused: its tokens were spent, the party was ahead of its share there, or urgent
-- work wanted it. A tenant held back by its own allowance or a sending number is not
-- waiting for shared capacity, and its Broadcast must not say so (WaitingForCapacity).
-- A party refused counts as wanting for two seconds past its wait (it has work and comes
-- back; a slot cycle on a loaded machine can take longer than one).
-- herald_claim_admit tells the two apart ('wait' / 'slow'), so a worker holds back the whole
-- tenant only for the first, and sends the tenant's rows on its other numbers for the second.
CREATE OR REPLACE FUNCTION herald_fair_take(p_keys text[], p_rates float8[], p_want float8,
                                 p_fair text[], p_parties text[], p_weights float8[], p_urgent boolean,
                                 OUT granted float8, OUT wait_s float8, OUT share float8)
LANGUAGE plpgsql AS $$
DECLARE
  v_now    timestamptz := clock_timestamp();
  v_wait   float8 := 0;
  v_vt     float8[] := '{}';
  v_empty  text[] := '{}';
  v_mine   boolean[] := '{}';
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
      v_empty := v_empty || r.key;
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
    v_mine := v_mine || (p_fair[i] = ANY (v_empty));
    IF NOT p_urgent AND EXISTS (SELECT 1 FROM fair_shares u WHERE u.bucket = p_fair[i] AND u.urgent AND u.wanting_until > v_now) THEN
      -- Urgent work goes first.
      v_wait := greatest(v_wait, 0.1);
      v_mine[i] := true;
    ELSIF v_min IS NOT NULL AND me.vtime - v_min > p_want / me.weight THEN
      -- More than one grant ahead of the party furthest behind: wait until it has caught up,
      -- at the bucket's rate split over everyone wanting it.
      v_wait := greatest(v_wait, (me.vtime - v_min - p_want / me.weight) * v_wsum / v_rate);
      v_mine[i] := true;
    END IF;
  END LOOP;

  IF v_wait > 0 THEN
    granted := 0;
    wait_s := least(v_wait, 5);
    FOR i IN 1 .. coalesce(cardinality(p_fair), 0) LOOP
      UPDATE fair_shares SET vtime = v_vt[i],
             refused_at = CASE WHEN v_mine[i] THEN v_now ELSE fair_shares.refused_at END,
             share = CASE WHEN i = 1 AND v_mine[i] THEN herald_fair_take.share ELSE fair_shares.share END,
             wanting_until = v_now + make_interval(secs => wait_s + 2)
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

CREATE OR REPLACE FUNCTION herald_claim_admit(p_lane text, p_tenant text, p_rows int, p_urgent boolean, p_lease float8,
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
    -- 'wait' when a shared bucket refused (the tenant waits: no chunk of it gets tokens now),
    -- 'slow' when only a bucket of these rows did (a sending number, a campaign, the
    -- broadcast's own rate): the tenant's other rows may go meanwhile.
    verdict := CASE WHEN EXISTS (
                 SELECT 1 FROM fair_shares f JOIN unnest(p_fair, p_parties) AS u(b, p) ON f.bucket = u.b AND f.party = u.p
                  WHERE f.urgent = p_urgent AND f.refused_at >= statement_timestamp()) THEN 'wait' ELSE 'slow' END;
    wait_s := t.wait_s;
    IF NOT p_urgent THEN PERFORM herald_lane_uncount(p_lane, p_tenant, p_rows); END IF;
  END IF;
END $$;
