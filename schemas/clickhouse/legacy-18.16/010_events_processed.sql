-- events_processed for ClickHouse 18.16 (see ../010_events_processed.sql and
-- README.md): DateTime64(6) -> DateTime('UTC') + `<col>_us` UInt32 (the
-- microseconds within the second, 0-999999); Bool -> UInt8;
-- LowCardinality(String) -> String; no insert-time deduplication window.
CREATE TABLE IF NOT EXISTS events_processed
(
    event_id            String,
    experiment_id       UInt32,
    user_id             String,
    session_id          String,                              -- '' = null
    event_type          String,
    timestamp           DateTime('UTC'),                     -- whole seconds
    timestamp_us        UInt32,                              -- + microseconds
    event_date          Date DEFAULT toDate(timestamp, 'UTC'),
    event_hour          UInt8,
    variant_id          Nullable(UInt32),
    variant_key         String,                              -- '' = null
    assigned_at         Nullable(DateTime('UTC')),
    assigned_at_us      Nullable(UInt32),
    is_valid            UInt8,                               -- 0/1
    invalid_reason      String,                              -- '' = null
    is_late             UInt8,
    is_exposure         UInt8,
    is_click            UInt8,
    is_conversion       UInt8,
    claimed_variant_id  Nullable(UInt32),
    variant_mismatch    UInt8,
    page                String,
    device              String,
    browser             String,
    value               Nullable(Float64),
    score               Nullable(Int64),
    properties          String,
    source_topic        String,
    source_partition    Int32,
    source_offset       Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_date)
PRIMARY KEY (experiment_id, event_date, event_type)
ORDER BY (experiment_id, event_date, event_type, user_id, event_id,
          source_topic, source_partition, source_offset)
SETTINGS index_granularity = 8192;
