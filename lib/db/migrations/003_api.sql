-- Additions for the api service (additive only: the previous release keeps running).

-- A tenant's own answer to an inbound HELP (else the api's default text).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS help_text text;

-- Deliveries of a broadcast, paged by (status, id) with an optional status filter.
-- Covers what deliveries_broadcast_status does (counts by status); that one can go
-- in a later release once nothing relies on it.
CREATE INDEX IF NOT EXISTS deliveries_broadcast_status_id ON deliveries (broadcast_id, status, id);

-- Opt-outs of a tenant, newest first.
CREATE INDEX IF NOT EXISTS opt_outs_tenant_time ON opt_outs (tenant_id, opted_out_at DESC, phone DESC);

-- Device tokens name their contact by external id.
CREATE INDEX IF NOT EXISTS contacts_external_id ON contacts (tenant_id, external_id) WHERE external_id IS NOT NULL;

-- Receipts that arrived before their send was recorded (the provider answered the
-- send and fired the webhook before the worker committed the provider message id):
-- the api matches them again shortly after.
CREATE INDEX IF NOT EXISTS provider_events_unmatched ON provider_events (received_at)
  WHERE delivery_id IS NULL AND event_type IN ('message.sent', 'message.finalized');
