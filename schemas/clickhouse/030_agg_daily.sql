-- agg_daily: closed daily tumbling windows (UTC); same columns, key and dedup
-- rules as agg_hourly (see 020_agg_hourly.sql), without `hour`.
CREATE TABLE IF NOT EXISTS agg_daily
(
    window_start   DateTime64(6, 'UTC'),                  -- inclusive, 00:00 UTC
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
    date           Date DEFAULT toDate(window_start)      -- Parquet: path only
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (experiment_id, window_start, variant_id, variant_key, event_type, `partition`)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;
