-- The role the Debezium connectors log in as: REPLICATION (to open a
-- replication slot) and SELECT on the captured tables (initial snapshot),
-- UPDATE on the heartbeat row. No ownership needed: the publications are
-- pre-created (002_cdc.sql). No password here: set it out of band
-- (ALTER ROLE neonblue_cdc PASSWORD ...) and give it to Kafka Connect
-- through a config provider. Idempotent.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'neonblue_cdc') THEN
        CREATE ROLE neonblue_cdc WITH LOGIN REPLICATION;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO neonblue_cdc', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO neonblue_cdc;
GRANT SELECT ON outbox_events, assignments, events TO neonblue_cdc;
GRANT SELECT, UPDATE ON debezium_heartbeat TO neonblue_cdc;
