-- The synthetic load-test tenant's plan: k6 registers its audience through the api, one
-- device a request, far past a customer's allowance; its fair-share weight stays 1, so
-- a load test never outweighs a real tenant.
INSERT INTO tenant_plans (plan, api_requests_per_minute, fair_share_weight) VALUES ('synthetic', 60000, 1);

-- A tenant's API allowance as a token bucket shared by every api replica: it holds up
-- to a minute's requests (the plan's figure) and refills at that rate, on the database
-- clock, so replicas with skewed clocks still count one allowance.
CREATE TABLE api_allowances (
  tenant_id   text PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
  tokens      float8 NOT NULL,
  updated_at  timestamptz NOT NULL
);

-- Takes one request from the tenant's allowance. Returns 0 when admitted, else the
-- seconds until one request is allowed again (the Retry-After). The upsert locks the
-- tenant's row, so concurrent requests are counted one after the other.
CREATE FUNCTION herald_api_admit(p_tenant text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  v_now    timestamptz := clock_timestamp();
  v_cap    float8;
  v_tokens float8;
BEGIN
  SELECT p.api_requests_per_minute INTO v_cap
    FROM tenants t JOIN tenant_plans p ON p.plan = t.plan WHERE t.id = p_tenant;
  IF v_cap IS NULL THEN
    RAISE EXCEPTION 'no tenant %', p_tenant USING ERRCODE = 'no_data_found';
  END IF;
  INSERT INTO api_allowances AS a (tenant_id, tokens, updated_at) VALUES (p_tenant, v_cap, v_now)
  ON CONFLICT (tenant_id) DO UPDATE
    SET tokens = least(v_cap, a.tokens + v_cap / 60.0 * extract(epoch FROM v_now - a.updated_at)),
        updated_at = v_now
  RETURNING tokens INTO v_tokens;
  IF v_tokens >= 1 THEN
    UPDATE api_allowances SET tokens = tokens - 1 WHERE tenant_id = p_tenant;
    RETURN 0;
  END IF;
  RETURN (1 - v_tokens) / (v_cap / 60.0);
END $$;

-- What a key may do. A key made before scopes existed keeps every scope it had in effect.
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL
  DEFAULT ARRAY['contacts:read', 'contacts:write', 'devices:write', 'broadcasts:read', 'opt-outs:read', 'opt-outs:write']
  CHECK (cardinality(scopes) > 0
         AND scopes <@ ARRAY['contacts:read', 'contacts:write', 'devices:write', 'broadcasts:read', 'opt-outs:read', 'opt-outs:write']);
