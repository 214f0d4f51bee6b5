-- A token bucket per key (tenant, sending number, campaign, account, broadcast),
-- shared by every worker process. Buckets hold at most one second of tokens (at
-- least 1, so a 0.1/s long code can still send one). A request is granted whole
-- when every bucket has a positive balance, and may drive balances negative: the
-- debt makes the next caller wait, so the average rate holds across processes.
-- Returns the tokens granted (> 0) or minus the seconds to wait (<= 0).
CREATE FUNCTION herald_take_tokens(p_keys text[], p_rates float8[], p_want float8)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  v_now  timestamptz := clock_timestamp();
  v_wait float8 := 0;
  r      record;
BEGIN
  INSERT INTO rate_buckets (key, tokens, updated_at)
    SELECT u.k, greatest(u.rt, 1), v_now FROM unnest(p_keys, p_rates) AS u(k, rt)
    ON CONFLICT (key) DO NOTHING;
  -- Lock in key order so concurrent callers never deadlock.
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
  IF v_wait > 0 THEN
    RETURN -v_wait;
  END IF;
  UPDATE rate_buckets b
     SET tokens = least(greatest(u.rt, 1), b.tokens + u.rt * extract(epoch FROM v_now - b.updated_at)) - p_want,
         updated_at = v_now
    FROM unnest(p_keys, p_rates) AS u(k, rt)
   WHERE b.key = u.k;
  RETURN p_want;
END $$;
