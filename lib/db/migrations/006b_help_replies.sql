-- When each number was last answered a HELP, per tenant: a reply goes out at most once
-- an hour per (tenant, number), so a flood of HELPs (or of forged ones) costs the tenant
-- one message an hour, not one each. Checked and updated in the webhook's transaction.
CREATE TABLE help_replies (
  tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  phone       text NOT NULL,
  replied_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, phone)
);
