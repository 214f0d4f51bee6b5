-- An inline number (audience.contacts) that is not a contact of the tenant with SMS
-- consent is skipped and counted, unless the tenant has declared that it holds
-- consent for the numbers it names inline (an admin setting, off by default). A
-- contact recorded without consent, and an opt-out, are never overridden by it.
ALTER TABLE tenants ADD COLUMN inline_numbers_consented boolean NOT NULL DEFAULT false;
