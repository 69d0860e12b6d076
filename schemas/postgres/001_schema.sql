-- neonblue source schema: the experimentation platform's PostgreSQL tables
-- (PostgreSQL >= 14; verified on 15). Idempotent: safe to apply again.
--
-- Column names and types are those of the captured scenario
-- (shared/fixtures/debezium/scenario/schema.sql), so the Debezium fixtures are
-- exactly what these tables produce, with two additions: constraints (NOT NULL,
-- foreign keys, checks) and assignments.variant_key (see below).
--
-- Every assignment/event write is ONE transaction that also inserts an
-- outbox_events row (the transactional outbox; neonblue source.layout =
-- outbox). 002_cdc.sql sets up logical replication, 003_cdc_role.sql the
-- connector's role.

CREATE TABLE IF NOT EXISTS experiments (
    id          serial PRIMARY KEY,               -- uint32 in neonblue (SPEC 2.3)
    key         text NOT NULL UNIQUE,
    name        text,
    status      text NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'running', 'paused', 'completed', 'archived')),
    created_at  timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS variants (
    id             serial PRIMARY KEY,
    experiment_id  int NOT NULL REFERENCES experiments,
    key            text NOT NULL,                 -- becomes variant_key downstream
    name           text,
    allocation     numeric(5,4) CHECK (allocation BETWEEN 0 AND 1),
    UNIQUE (experiment_id, key),
    UNIQUE (experiment_id, id)                    -- target of assignments' composite FK
);

CREATE TABLE IF NOT EXISTS users (
    id          text PRIMARY KEY,                 -- user_id: text (SPEC 2.3)
    created_at  timestamptz DEFAULT now(),
    attributes  jsonb
);

-- One current assignment per (experiment, user). A reassignment is an UPDATE
-- with a new assigned_at (neonblue keeps every version, SPEC 4). Users are
-- deleted explicitly (no ON DELETE CASCADE), so that the application writes
-- the matching ASSIGNMENT_DELETED outbox row in the same transaction.
CREATE TABLE IF NOT EXISTS assignments (
    id             serial PRIMARY KEY,
    experiment_id  int NOT NULL REFERENCES experiments,
    user_id        text NOT NULL REFERENCES users,
    variant_id     int NOT NULL,
    assigned_at    timestamptz NOT NULL DEFAULT now(),
    source         text,
    UNIQUE (experiment_id, user_id),
    FOREIGN KEY (experiment_id, variant_id) REFERENCES variants (experiment_id, id)
);
-- Not in the captured scenario: the variant's key, denormalised by the
-- trigger below, so that the `tables` layout (which reads assignments rows
-- directly) gets variant_key too (without it, variant_key is null there).
ALTER TABLE assignments ADD COLUMN IF NOT EXISTS variant_key text;
CREATE INDEX IF NOT EXISTS assignments_user_idx ON assignments (user_id);

CREATE OR REPLACE FUNCTION assignments_set_variant_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT v.key INTO NEW.variant_key
    FROM variants v
    WHERE v.id = NEW.variant_id AND v.experiment_id = NEW.experiment_id;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER assignments_variant_key
    BEFORE INSERT OR UPDATE OF experiment_id, variant_id ON assignments
    FOR EACH ROW EXECUTE FUNCTION assignments_set_variant_key();

-- Client-reported events. Deliberately no foreign keys: events for unknown
-- experiments or users must still be stored (neonblue emits them as
-- invalid `unassigned`, SPEC 4), and ingestion must never fail on them.
-- variant_id is the client's claim; the variant that counts is the
-- assignment's. properties: jsonb (Debezium sends it as a JSON string).
CREATE TABLE IF NOT EXISTS events (
    id             text PRIMARY KEY,              -- event_id
    experiment_id  int NOT NULL,
    user_id        text NOT NULL,
    variant_id     int,
    event_type     text NOT NULL,                 -- exposure, page_view, click, conversion, ...
    "timestamp"    timestamptz NOT NULL,          -- event time
    properties     jsonb,
    session_id     text,
    created_at     timestamp without time zone DEFAULT now()   -- as captured (MicroTimestamp)
);
CREATE INDEX IF NOT EXISTS events_user_time_idx ON events (experiment_id, user_id, "timestamp");

-- The transactional outbox. payload is TEXT, as captured: the application's
-- JSON verbatim (jsonb would re-order keys and re-space it; Debezium sends
-- either as a JSON string). aggregate_type: 'assignment' | 'event';
-- event_type: ASSIGNMENT_CREATED | ASSIGNMENT_UPDATED | ASSIGNMENT_DELETED |
-- EVENT_CREATED; aggregate_id: assignment id as text, or the event id.
-- No CHECK on the types: neonblue skips and counts unknown ones (SPEC 2.5).
-- processed_at is for the application's own relay/cleanup; neonblue skips
-- outbox updates and deletes (SPEC 2.2).
CREATE TABLE IF NOT EXISTS outbox_events (
    id              bigserial PRIMARY KEY,
    aggregate_id    text NOT NULL,
    aggregate_type  text NOT NULL,
    event_type      text NOT NULL,
    payload         text NOT NULL,
    created_at      timestamptz DEFAULT now(),
    processed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_events_unprocessed_idx
    ON outbox_events (created_at) WHERE processed_at IS NULL;
