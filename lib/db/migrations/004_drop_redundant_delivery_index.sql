-- (broadcast_id, status, id) from 003 serves every query (broadcast_id, status) did;
-- one index fewer to maintain on each delivery status change. Dropping an index is
-- safe for a worker of the previous release: no query depends on which index exists.
DROP INDEX IF EXISTS deliveries_broadcast_status;
