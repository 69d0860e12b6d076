-- agg_hourly for ClickHouse 18.16 (see ../020_agg_hourly.sql and README.md).
-- window_start/window_end are whole hours, so DateTime('UTC') is exact and no
-- microsecond column is needed. variant_key: '' = null.
CREATE TABLE IF NOT EXISTS agg_hourly
(
    window_start   DateTime('UTC'),
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
    date           Date  DEFAULT toDate(window_start, 'UTC'),
    hour           UInt8 DEFAULT toHour(window_start, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start, 'UTC')
ORDER BY (experiment_id, window_start, variant_id, variant_key, event_type, `partition`)
SETTINGS index_granularity = 8192;
