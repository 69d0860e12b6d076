-- Logical replication for Debezium's PostgreSQL connector (plugin pgoutput).
-- Server settings (postgresql.conf, restart needed): wal_level = logical,
-- max_replication_slots and max_wal_senders >= one per connector.
-- Idempotent: publications are created if missing, then SET to exactly
-- these tables and operations. The connectors use
-- publication.autocreate.mode = disabled, so these definitions are the
-- ones in force (schemas/debezium/*.json).

-- REPLICA IDENTITY: what UPDATE/DELETE events carry in `before`.
--   outbox_events: DEFAULT (primary key). Only inserts are domain messages;
--     neonblue skips outbox updates/deletes (SPEC 2.2).
--   events: DEFAULT. Event deletes are skipped (event_delete).
--   assignments: FULL. Deletes then carry experiment_id/user_id (not only the
--     id; neonblue also keeps the id mapping, SPEC 2.2) and updates carry the
--     old row. Low write volume, so the extra WAL is small.
ALTER TABLE outbox_events REPLICA IDENTITY DEFAULT;
ALTER TABLE events        REPLICA IDENTITY DEFAULT;
ALTER TABLE assignments   REPLICA IDENTITY FULL;

-- Heartbeat row, updated by the connectors' heartbeat.action.query. On a
-- quiet database the captured tables see no writes for long stretches; a
-- change in a published table lets the connector confirm a newer LSN so the
-- replication slot does not pin WAL. It is in both publications but not in
-- table.include.list, so nothing of it reaches Kafka.
CREATE TABLE IF NOT EXISTS debezium_heartbeat (
    id       int PRIMARY KEY,
    beat_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO debezium_heartbeat (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'neonblue_outbox') THEN
        CREATE PUBLICATION neonblue_outbox;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'neonblue_tables') THEN
        CREATE PUBLICATION neonblue_tables;
    END IF;
END
$$;

-- source.layout = outbox / eventrouter. TRUNCATE is not published (a
-- truncate kills the Outbox Event Router, fixtures README surprise 8).
ALTER PUBLICATION neonblue_outbox SET TABLE outbox_events, debezium_heartbeat;
ALTER PUBLICATION neonblue_outbox SET (publish = 'insert, update, delete');

-- source.layout = tables: assignments and events captured directly.
ALTER PUBLICATION neonblue_tables SET TABLE assignments, events, debezium_heartbeat;
ALTER PUBLICATION neonblue_tables SET (publish = 'insert, update, delete');
