-- Contact imports too large for one request (CSV over HERALD_IMPORT_THRESHOLD_BYTES):
-- the upload is staged here in chunks as it arrives (never held whole in memory), then
-- an api process works through it in the background, writing its progress to the job.
CREATE TABLE import_jobs (
  id               uuid PRIMARY KEY,
  tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  status           text NOT NULL DEFAULT 'receiving'
                     CHECK (status IN ('receiving', 'queued', 'running', 'succeeded', 'failed')),
  default_country  text NOT NULL,
  consent_source   text NOT NULL,
  bytes            bigint NOT NULL DEFAULT 0,
  rows_read        int NOT NULL DEFAULT 0,
  created          int NOT NULL DEFAULT 0,
  updated          int NOT NULL DEFAULT 0,
  failed           int NOT NULL DEFAULT 0,
  errors           jsonb NOT NULL DEFAULT '[]',   -- the first row errors, {row, field, reason}
  error            text,                          -- why a failed job stopped
  claimed_by       text,
  heartbeat_at     timestamptz,
  created_at       timestamptz NOT NULL,
  started_at       timestamptz,
  finished_at      timestamptz
);
CREATE INDEX import_jobs_tenant ON import_jobs (tenant_id, created_at DESC);
CREATE INDEX import_jobs_pending ON import_jobs (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE import_job_chunks (
  job_id  uuid NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
  seq     int NOT NULL,
  data    bytea NOT NULL,
  PRIMARY KEY (job_id, seq)
);

-- One import at a time per tenant (its own cap): a second is refused while one is open.
CREATE UNIQUE INDEX import_jobs_one_open ON import_jobs (tenant_id) WHERE status IN ('receiving', 'queued', 'running');
