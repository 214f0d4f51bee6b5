-- Organizations that send. Rate limits are per second; quiet hours are local
-- wall-clock times in the contact's zone (else default_time_zone).
CREATE TABLE tenants (
  id                    text PRIMARY KEY CHECK (id ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'),
  name                  text NOT NULL,
  default_time_zone     text NOT NULL DEFAULT 'UTC',
  quiet_hours_start     time,
  quiet_hours_end       time,
  sms_per_second        double precision NOT NULL DEFAULT 10 CHECK (sms_per_second > 0),
  push_per_second       double precision NOT NULL DEFAULT 500 CHECK (push_per_second > 0),
  messaging_profile_id  text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Sending numbers with the carrier limit of their kind (toll-free 20/s, 10DLC per
-- campaign, long code to non-US 0.1/s).
CREATE TABLE sending_numbers (
  id             bigserial PRIMARY KEY,
  tenant_id      text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  phone_number   text NOT NULL UNIQUE,
  kind           text NOT NULL CHECK (kind IN ('toll_free', '10dlc', 'long_code', 'short_code')),
  campaign_id    text,
  per_second     double precision NOT NULL CHECK (per_second > 0),
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sending_numbers_tenant ON sending_numbers (tenant_id);

-- API keys are stored as a SHA-256 of the secret; the prefix finds the row.
CREATE TABLE api_keys (
  id          bigserial PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  prefix      text NOT NULL UNIQUE,
  key_hash    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

CREATE TABLE contacts (
  id             bigserial PRIMARY KEY,
  tenant_id      text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  external_id    text,
  phone          text CHECK (phone IS NULL OR phone ~ '^\+[1-9][0-9]{6,14}$'),
  name           text,
  time_zone      text,
  tags           text[] NOT NULL DEFAULT '{}',
  sms_consent    boolean NOT NULL DEFAULT true,
  consent_at     timestamptz,
  consent_source text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, phone)
);
CREATE INDEX contacts_tags ON contacts USING gin (tags);
CREATE INDEX contacts_tenant_id ON contacts (tenant_id, id);

-- The durable per-tenant opt-out list, keyed by number so that it survives a
-- contact's deletion and re-import. Checked at send time, always.
CREATE TABLE opt_outs (
  tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  phone         text NOT NULL,
  opted_out_at  timestamptz NOT NULL,
  source        text NOT NULL,            -- inbound_keyword | provider_40300 | api
  keyword       text,
  PRIMARY KEY (tenant_id, phone)
);

CREATE TABLE device_tokens (
  id              bigserial PRIMARY KEY,
  tenant_id       text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  contact_id      bigint REFERENCES contacts(id) ON DELETE CASCADE,
  token           text NOT NULL,
  platform        text NOT NULL DEFAULT 'android' CHECK (platform IN ('android', 'ios', 'web')),
  tags            text[] NOT NULL DEFAULT '{}',
  active          boolean NOT NULL DEFAULT true,
  invalidated_at  timestamptz,
  invalid_reason  text,
  last_seen_at    timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, token)
);
CREATE INDEX device_tokens_contact ON device_tokens (contact_id) WHERE active;
CREATE INDEX device_tokens_tags ON device_tokens USING gin (tags) WHERE active;

-- A broadcast as the delivery core knows it: the operator upserts it from the
-- Broadcast resource. Workers read message, generation, suspended and
-- cancelled_at at send time, so edits apply to every row not yet sent.
CREATE TABLE broadcasts (
  id                    uuid PRIMARY KEY,
  tenant_id             text NOT NULL REFERENCES tenants(id),
  namespace             text,
  name                  text,
  generation            bigint NOT NULL DEFAULT 1,
  channel               text NOT NULL CHECK (channel IN ('sms', 'push')),
  message_text          text NOT NULL,
  message_title         text,
  audience              jsonb NOT NULL DEFAULT '{}',
  priority              text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'urgent')),
  rate_per_second       double precision,
  max_attempts          int NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 50),
  expire_after_seconds  int NOT NULL DEFAULT 21600 CHECK (expire_after_seconds > 0),
  suspended             boolean NOT NULL DEFAULT false,
  cancelled_at          timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX broadcasts_tenant ON broadcasts (tenant_id, created_at DESC);

-- One occurrence per send of a broadcast (one for send-now/sendAt/localTime, one
-- per cron tick). `key` makes planning idempotent.
CREATE TABLE occurrences (
  id             uuid PRIMARY KEY,
  broadcast_id   uuid NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
  key            text NOT NULL,
  scheduled_at   timestamptz NOT NULL,
  local_time     text,                     -- HH:MM when each recipient gets it in their own zone
  local_date     date,
  planned_at     timestamptz,
  audience_size  int,
  batches        int,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (broadcast_id, key)
);

-- A delivery is a row: exactly one per (occurrence, recipient, channel).
CREATE TABLE deliveries (
  id                   bigserial PRIMARY KEY,
  occurrence_id        uuid NOT NULL REFERENCES occurrences(id) ON DELETE CASCADE,
  broadcast_id         uuid NOT NULL,
  tenant_id            text NOT NULL,
  channel              text NOT NULL CHECK (channel IN ('sms', 'push')),
  recipient_key        text NOT NULL,      -- c:<contact id> | d:<device token id> | t:<topic> | p:<phone>
  contact_id           bigint,
  device_token_id      bigint,
  address              text NOT NULL,      -- phone, token or topic frozen at planning
  batch_no             int NOT NULL,
  status               text NOT NULL DEFAULT 'queued' CHECK (status IN
                         ('queued', 'sending', 'retry', 'deferred', 'held', 'sent', 'delivered',
                          'failed', 'dead', 'skipped', 'expired', 'cancelled')),
  due_at               timestamptz NOT NULL,
  expires_at           timestamptz NOT NULL,
  next_attempt_at      timestamptz,
  attempts             int NOT NULL DEFAULT 0,
  segments             int,
  encoding             text,
  provider_message_id  text,
  error_code           text,
  last_error           text,
  possible_duplicate   boolean NOT NULL DEFAULT false,
  claimed_by           text,
  claimed_at           timestamptz,
  sent_at              timestamptz,
  finalized_at         timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (occurrence_id, recipient_key, channel)
);
-- A job names (occurrence, batch_no): the worker's claim reads by it.
CREATE INDEX deliveries_batch ON deliveries (occurrence_id, batch_no);
-- The sweeper's scan for retries, deferrals and orphaned in-flight rows.
CREATE INDEX deliveries_wakeup ON deliveries (next_attempt_at) WHERE status IN ('retry', 'deferred');
CREATE INDEX deliveries_inflight ON deliveries (claimed_at) WHERE status = 'sending';
-- Receipts find their delivery by the provider's id.
CREATE INDEX deliveries_provider_id ON deliveries (provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX deliveries_broadcast_status ON deliveries (broadcast_id, status);

-- Everything providers tell us (receipts, inbound messages), deduplicated by
-- their event id so redelivered webhooks change nothing.
CREATE TABLE provider_events (
  id            bigserial PRIMARY KEY,
  provider      text NOT NULL,
  event_id      text NOT NULL,
  event_type    text NOT NULL,
  tenant_id     text,
  delivery_id   bigint,
  payload       jsonb NOT NULL,
  occurred_at   timestamptz,
  received_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider, event_id)
);

-- Token buckets shared by every worker process (tenant, sending number, account).
CREATE TABLE rate_buckets (
  key         text PRIMARY KEY,
  tokens      double precision NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Worker liveness, so a row in flight on a dead worker is found and counted.
CREATE TABLE workers (
  id            text PRIMARY KEY,
  lane          text NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  stopped_at    timestamptz
);
