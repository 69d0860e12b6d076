-- user_journeys for ClickHouse 18.16 (see ../040_user_journeys.sql and
-- README.md): first_ts/last_ts split into DateTime('UTC') + `_us` UInt32,
-- exposed/converted as UInt8, variant_key String ('' = null).
CREATE TABLE IF NOT EXISTS user_journeys
(
    experiment_id  UInt32,
    variant_id     UInt32,
    user_id        String,
    variant_key    String,
    events         UInt64,
    journey        Array(String),
    value_sum      Float64,
    sessions       UInt64,
    exposed        UInt8,
    converted      UInt8,
    first_ts       DateTime('UTC'),
    first_ts_us    UInt32,
    last_ts        DateTime('UTC'),
    last_ts_us     UInt32,
    `partition`    Int32,
    date           Date DEFAULT toDate(first_ts, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(date)
ORDER BY (experiment_id, date, variant_id, user_id)
SETTINGS index_granularity = 8192;
