-- events_processed: one row per event that went through the join (SPEC 6.1,
-- Parquet dataset `events`). Types exactly as SPEC 6.1; columns that are
-- nullable in Parquet but typed String / LowCardinality(String) there
-- (session_id, variant_key, invalid_reason, page, device, browser) hold ''
-- for null: insert with input_format_null_as_default=1 (the default) or
-- ifNull(x, ''); queries that want SQL NULL back use nullIf(x, '').
--
-- Dedup (SPEC 6.4, 7): ReplacingMergeTree on the natural key. An output row
-- is identified by its origin record (source_topic/partition/offset) and its
-- event_id; a re-delivered or replayed batch rewrites rows with the same key,
-- which merges (and SELECT ... FINAL) collapse to one. The key also leads with
-- the columns the analytics filter on (experiment_id, event_date, event_type).
-- non_replicated_deduplication_window additionally drops a retried insert of
-- an identical block (or one with the same insert_deduplication_token) at
-- insert time, so plain SELECTs do not see a retried batch either.
CREATE TABLE IF NOT EXISTS events_processed
(
    event_id            String,
    experiment_id       UInt32,
    user_id             String,
    session_id          String,                           -- '' = null
    event_type          LowCardinality(String),
    timestamp           DateTime64(6, 'UTC'),
    event_date          Date DEFAULT toDate(timestamp),   -- Parquet: path only
    event_hour          UInt8,                            -- 0-23, UTC
    variant_id          Nullable(UInt32),                 -- from the assignment
    variant_key         LowCardinality(String),           -- '' = null
    assigned_at         Nullable(DateTime64(6, 'UTC')),   -- of the joined version
    is_valid            Bool,
    invalid_reason      LowCardinality(String),           -- '', unassigned, before_assignment
    is_late             Bool,
    is_exposure         Bool,
    is_click            Bool,
    is_conversion       Bool,
    claimed_variant_id  Nullable(UInt32),
    variant_mismatch    Bool,
    page                String,                           -- '' = null
    device              String,                           -- '' = null
    browser             String,                           -- '' = null
    value               Nullable(Float64),
    score               Nullable(Int64),
    properties          String,                           -- compact JSON, '{}' if absent
    source_topic        LowCardinality(String),
    source_partition    Int32,
    source_offset       Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_date)
PRIMARY KEY (experiment_id, event_date, event_type)
ORDER BY (experiment_id, event_date, event_type, user_id, event_id,
          source_topic, source_partition, source_offset)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;
