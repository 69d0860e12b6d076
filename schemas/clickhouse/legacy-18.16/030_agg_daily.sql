-- agg_daily for ClickHouse 18.16 (see ../030_agg_daily.sql and README.md).
CREATE TABLE IF NOT EXISTS agg_daily
(
    window_start   DateTime('UTC'),                       -- 00:00 UTC, exact
    window_end     DateTime('UTC'),
    experiment_id  UInt32,
    variant_id     UInt32,
    variant_key    String,
    event_type     String,
    events         UInt64,
    users          UInt64,
    value_count    UInt64,
    value_sum      Float64,
    value_sum_sq   Float64,
    `partition`    Int32,
    date           Date DEFAULT toDate(window_start, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start, 'UTC')
ORDER BY (experiment_id, window_start, variant_id, variant_key, event_type, `partition`)
SETTINGS index_granularity = 8192;
