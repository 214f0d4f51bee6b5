-- A tenant's plan: its API allowance (requests a minute, enforced by the api across
-- replicas) and its weight when tenants share a limit (the scheduler's fair share).
-- One table, so both read the same figures and a new plan is a row, not a deploy.
CREATE TABLE tenant_plans (
  plan                     text PRIMARY KEY CHECK (plan ~ '^[a-z][a-z0-9-]*$'),
  api_requests_per_minute  integer NOT NULL CHECK (api_requests_per_minute > 0),
  fair_share_weight        integer NOT NULL CHECK (fair_share_weight > 0)
);

INSERT INTO tenant_plans (plan, api_requests_per_minute, fair_share_weight) VALUES
  ('free', 100, 1),
  ('standard', 300, 3),
  ('pro', 1000, 10);

ALTER TABLE tenants ADD COLUMN plan text NOT NULL DEFAULT 'free' REFERENCES tenant_plans (plan);
