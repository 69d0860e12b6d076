-- agg_hourly: closed hourly tumbling windows (UTC) over valid, non-late events
-- (SPEC 5, 6.2). Each task partition writes its own rows: totals are SUMs over
-- `partition` (users add up exactly, a user lives in one partition).
--
-- variant_key is nullable in Parquet; here it is LowCardinality(String) with
-- '' for null, because it is part of the sorting key and keys cannot be
-- Nullable without allow_nullable_key (which also slows the key down).
-- date/hour live in the Parquet path only; here they are stored columns
-- computed from window_start (DEFAULT: the sink may omit them).
--
-- Dedup: ReplacingMergeTree on the natural key (window, experiment_id,
-- variant_id, variant_key, event_type, partition): a closed window is emitted
-- once, final, so a re-delivered row is identical and collapses. A replay
-- with a different partition count writes different `partition` values:
-- truncate the table before such a rebuild.
CREATE TABLE IF NOT EXISTS agg_hourly
(
    window_start   DateTime64(6, 'UTC'),                  -- inclusive
    window_end     DateTime64(6, 'UTC'),                  -- exclusive
    experiment_id  UInt32,
    variant_id     UInt32,
    variant_key    LowCardinality(String),                -- '' = null
    event_type     LowCardinality(String),
    events         UInt64,
    users          UInt64,
    value_count    UInt64,
    value_sum      Float64,
    value_sum_sq   Float64,
    `partition`    Int32,
    date           Date  DEFAULT toDate(window_start),    -- Parquet: path only
    hour           UInt8 DEFAULT toHour(window_start)     -- Parquet: path only
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (experiment_id, window_start, variant_id, variant_key, event_type, `partition`)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;
