-- The last attempt's outcome is unknown (the request reached the provider, its answer was
-- lost): the next claim of the row flags it possible_duplicate, since neither Telnyx nor
-- FCM takes an id that would let them drop a repeat. Kept apart from possible_duplicate so
-- a row that never goes out again (expired, dead) is not counted as sent twice.
ALTER TABLE deliveries ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;
