-- user_journeys: one row per (date, experiment_id, variant_id, user_id) with
-- valid non-late events (SPEC 6.3, Parquet dataset `user_daily`).
-- variant_key: '' = null (as in the other tables). `date` is the UTC rollup
-- day (Parquet: path only), which is the day of first_ts.
-- Dedup: ReplacingMergeTree on the natural key; a user lives in one task
-- partition, so `partition` is not part of it.
CREATE TABLE IF NOT EXISTS user_journeys
(
    experiment_id  UInt32,
    variant_id     UInt32,
    user_id        String,
    variant_key    LowCardinality(String),                -- of the first event; '' = null
    events         UInt64,
    journey        Array(String),                         -- event types by timestamp, ties by event_id
    value_sum      Float64,                               -- 0.0 when no value
    sessions       UInt64,                                -- distinct non-null session_id
    exposed        Bool,
    converted      Bool,
    first_ts       DateTime64(6, 'UTC'),
    last_ts        DateTime64(6, 'UTC'),
    `partition`    Int32,
    date           Date DEFAULT toDate(first_ts)          -- Parquet: path only
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(date)
ORDER BY (experiment_id, date, variant_id, user_id)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;
