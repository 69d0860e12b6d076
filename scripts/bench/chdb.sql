-- neonblue's job, done by chDB (ClickHouse in-process) on the same JSONL file.
-- Placeholders: @INPUT@ (JSONL file), @OUT@ (output root), @THREADS@.
-- Same steps as duckdb.sql; see scripts/bench/README.md.
SET max_threads = @THREADS@;
SET max_insert_threads = @THREADS@;
SET session_timezone = 'UTC';
SET output_format_parquet_compression_method = 'zstd';

-- 1. Envelopes: outbox creates / snapshot reads of a known aggregate type.
--    A line that is not JSON extracts as defaults and is dropped here.
CREATE TABLE env ENGINE = Memory AS
WITH JSONExtract(line, 'Tuple(topic String, partition Int32, offset Int64, value Tuple(op String, after Tuple(aggregate_id String, aggregate_type String, event_type String, payload String)))') AS r
SELECT tupleElement(r, 'topic') AS src_topic, tupleElement(r, 'partition') AS src_partition,
       tupleElement(r, 'offset') AS src_offset,
       tupleElement(tupleElement(tupleElement(r, 'value'), 'after'), 'aggregate_id') AS aggregate_id,
       tupleElement(tupleElement(tupleElement(r, 'value'), 'after'), 'aggregate_type') AS agg_type,
       tupleElement(tupleElement(tupleElement(r, 'value'), 'after'), 'event_type') AS ev_type,
       tupleElement(tupleElement(tupleElement(r, 'value'), 'after'), 'payload') AS payload
FROM file('@INPUT@', 'LineAsString')
WHERE tupleElement(tupleElement(r, 'value'), 'op') IN ('c', 'r')
  AND agg_type IN ('assignment', 'event');

-- 2. Assignments, required fields checked.
CREATE TABLE asg ENGINE = Memory AS
WITH JSONExtract(payload, 'Tuple(id Nullable(String), experiment_id Nullable(UInt32), user_id Nullable(String), variant_id Nullable(UInt32), variant_key Nullable(String), assigned_at Nullable(String))') AS j,
     parseDateTime64BestEffortOrNull(tupleElement(j, 'assigned_at'), 6, 'UTC') AS at
SELECT src_offset, ev_type = 'ASSIGNMENT_DELETED' AS is_delete,
       assumeNotNull(tupleElement(j, 'experiment_id')) AS experiment_id,
       assumeNotNull(tupleElement(j, 'user_id')) AS user_id,
       tupleElement(j, 'variant_id') AS variant_id, tupleElement(j, 'variant_key') AS variant_key,
       assumeNotNull(at) AS assigned_at
FROM env
WHERE agg_type = 'assignment' AND ev_type IN ('ASSIGNMENT_CREATED', 'ASSIGNMENT_UPDATED', 'ASSIGNMENT_DELETED')
  AND tupleElement(j, 'experiment_id') IS NOT NULL AND coalesce(tupleElement(j, 'user_id'), '') != ''
  AND (ev_type = 'ASSIGNMENT_DELETED' OR (tupleElement(j, 'variant_id') IS NOT NULL AND at IS NOT NULL));

-- 3. Events: payload and properties parsed, required fields checked.
CREATE TABLE ev ENGINE = Memory AS
WITH JSONExtract(payload, 'Tuple(id Nullable(String), experiment_id Nullable(UInt32), user_id Nullable(String), variant_id Nullable(UInt32), event_type Nullable(String), timestamp Nullable(String), session_id Nullable(String))') AS j,
     JSONExtractRaw(payload, 'properties') AS praw,
     multiIf(startsWith(praw, '{'), praw,
             startsWith(praw, '"') AND startsWith(JSONExtractString(praw), '{') AND isValidJSON(JSONExtractString(praw)), JSONExtractString(praw),
             '{}') AS props,
     parseDateTime64BestEffortOrNull(tupleElement(j, 'timestamp'), 6, 'UTC') AS t,
     toFloat64OrNull(trimBoth(JSONExtractRaw(props, 'score'), '"')) AS score_f
SELECT assumeNotNull(coalesce(tupleElement(j, 'id'), nullIf(aggregate_id, ''))) AS event_id,
       assumeNotNull(tupleElement(j, 'experiment_id')) AS experiment_id,
       assumeNotNull(tupleElement(j, 'user_id')) AS user_id,
       tupleElement(j, 'session_id') AS session_id,
       assumeNotNull(tupleElement(j, 'event_type')) AS event_type,
       assumeNotNull(t) AS ts,
       tupleElement(j, 'variant_id') AS claimed_variant_id,
       JSONExtract(props, 'page', 'Nullable(String)') AS page,
       JSONExtract(props, 'device', 'Nullable(String)') AS device,
       JSONExtract(props, 'browser', 'Nullable(String)') AS browser,
       toFloat64OrNull(trimBoth(JSONExtractRaw(props, 'value'), '"')) AS value,
       if(score_f = floor(score_f), toInt64OrNull(toString(score_f)), NULL) AS score,
       props AS properties,
       src_topic, src_partition, src_offset
FROM env
WHERE agg_type = 'event' AND ev_type = 'EVENT_CREATED'
  AND tupleElement(j, 'experiment_id') IS NOT NULL AND coalesce(tupleElement(j, 'user_id'), '') != ''
  AND coalesce(tupleElement(j, 'event_type'), '') != '' AND t IS NOT NULL
  AND coalesce(tupleElement(j, 'id'), nullIf(aggregate_id, '')) IS NOT NULL;

-- 4. Deduplicate by event id: the first copy in input order wins.
CREATE TABLE ev1 ENGINE = Memory AS
SELECT * FROM ev ORDER BY src_partition, src_offset LIMIT 1 BY event_id;

-- 5. Assignment epochs (a delete ends the history) and versions.
CREATE TABLE dels ENGINE = Memory AS
SELECT experiment_id, user_id, src_offset,
       toUInt64(row_number() OVER (PARTITION BY experiment_id, user_id ORDER BY src_offset)) AS epoch
FROM asg WHERE is_delete;

CREATE TABLE versions ENGINE = Memory AS
SELECT a.experiment_id AS experiment_id, a.user_id AS user_id, d.epoch AS epoch, a.assigned_at AS assigned_at,
       argMax(a.variant_id, a.src_offset) AS variant_id, argMax(a.variant_key, a.src_offset) AS variant_key
FROM (SELECT * FROM asg WHERE NOT is_delete) AS a
ASOF LEFT JOIN dels AS d
  ON a.experiment_id = d.experiment_id AND a.user_id = d.user_id AND a.src_offset >= d.src_offset
GROUP BY experiment_id, user_id, epoch, assigned_at;

CREATE TABLE first_version ENGINE = Memory AS
SELECT experiment_id, user_id, epoch, min(assigned_at) AS first_at,
       argMin(variant_id, assigned_at) AS first_variant_id, argMin(variant_key, assigned_at) AS first_variant_key
FROM versions GROUP BY experiment_id, user_id, epoch;

-- 6. The join: latest version with assigned_at <= timestamp; else the
--    earliest (before_assignment); else unassigned.
CREATE TABLE enriched ENGINE = Memory AS
WITH e AS (
  SELECT e.*, d.epoch AS epoch
  FROM ev1 AS e ASOF LEFT JOIN dels AS d
    ON e.experiment_id = d.experiment_id AND e.user_id = d.user_id AND e.src_offset > d.src_offset
), j AS (
  SELECT e.*, v.variant_id AS v_variant_id, v.variant_key AS v_variant_key, v.assigned_at AS v_assigned_at,
         v.user_id != '' AS matched
  FROM e ASOF LEFT JOIN versions AS v
    ON e.experiment_id = v.experiment_id AND e.user_id = v.user_id AND e.epoch = v.epoch AND e.ts >= v.assigned_at
)
SELECT j.event_id AS event_id, j.experiment_id AS experiment_id, j.user_id AS user_id, j.session_id AS session_id,
       j.event_type AS event_type, j.ts AS timestamp,
       toDate(j.ts) AS event_date, toUInt8(toHour(j.ts)) AS event_hour,
       if(j.matched, j.v_variant_id, if(f.user_id != '', f.first_variant_id, NULL)) AS variant_id,
       if(j.matched, j.v_variant_key, if(f.user_id != '', f.first_variant_key, NULL)) AS variant_key,
       if(j.matched, toNullable(j.v_assigned_at), if(f.user_id != '', toNullable(f.first_at), NULL)) AS assigned_at,
       toBool(j.matched) AS is_valid,
       multiIf(j.matched, NULL, f.user_id != '', 'before_assignment', 'unassigned') AS invalid_reason,
       toBool(false) AS is_late,
       toBool(j.event_type = 'exposure') AS is_exposure, toBool(j.event_type = 'click') AS is_click,
       toBool(j.event_type = 'conversion') AS is_conversion,
       j.claimed_variant_id AS claimed_variant_id,
       toBool(coalesce(j.claimed_variant_id != variant_id, false)) AS variant_mismatch,
       j.page AS page, j.device AS device, j.browser AS browser, j.value AS value, j.score AS score,
       j.properties AS properties,
       j.src_topic AS source_topic, j.src_partition AS source_partition, j.src_offset AS source_offset
FROM j LEFT JOIN first_version AS f
  ON j.experiment_id = f.experiment_id AND j.user_id = f.user_id AND j.epoch = f.epoch;

-- 7. Outputs (Parquet, zstd, Hive-style directories like neonblue's).
INSERT INTO FUNCTION file('@OUT@/events/event_date={_partition_id}/data.parquet', 'Parquet')
PARTITION BY event_date
SELECT * FROM enriched;

INSERT INTO FUNCTION file('@OUT@/agg_hourly/{_partition_id}/data.parquet', 'Parquet')
PARTITION BY concat('date=', toString(toDate(window_start)), '/hour=', leftPad(toString(toHour(window_start)), 2, '0'))
SELECT toStartOfHour(timestamp) AS window_start, window_start + INTERVAL 1 HOUR AS window_end,
       experiment_id, assumeNotNull(variant_id) AS variant_id, variant_key, event_type,
       count() AS events, uniqExact(user_id) AS users,
       count(value) AS value_count, sum(coalesce(value, 0)) AS value_sum,
       sum(coalesce(value * value, 0)) AS value_sum_sq, toInt32(0) AS partition
FROM enriched WHERE is_valid AND NOT is_late
GROUP BY window_start, experiment_id, variant_id, variant_key, event_type;

INSERT INTO FUNCTION file('@OUT@/agg_daily/date={_partition_id}/data.parquet', 'Parquet')
PARTITION BY toString(toDate(window_start))
SELECT toStartOfDay(timestamp) AS window_start, window_start + INTERVAL 1 DAY AS window_end,
       experiment_id, assumeNotNull(variant_id) AS variant_id, variant_key, event_type,
       count() AS events, uniqExact(user_id) AS users,
       count(value) AS value_count, sum(coalesce(value, 0)) AS value_sum,
       sum(coalesce(value * value, 0)) AS value_sum_sq, toInt32(0) AS partition
FROM enriched WHERE is_valid AND NOT is_late
GROUP BY window_start, experiment_id, variant_id, variant_key, event_type;

INSERT INTO FUNCTION file('@OUT@/user_daily/date={_partition_id}/data.parquet', 'Parquet')
PARTITION BY toString(date)
SELECT event_date AS date, experiment_id, assumeNotNull(variant_id) AS variant_id, user_id,
       argMin(variant_key, (timestamp, event_id)) AS variant_key,
       count() AS events,
       arrayMap(x -> x.3, arraySort(groupArray((timestamp, event_id, event_type)))) AS journey,
       sum(coalesce(value, 0)) AS value_sum,
       uniqExact(session_id) AS sessions,
       toBool(max(is_exposure)) AS exposed, toBool(max(is_conversion)) AS converted,
       min(timestamp) AS first_ts, max(timestamp) AS last_ts, toInt32(0) AS partition
FROM enriched WHERE is_valid AND NOT is_late
GROUP BY date, experiment_id, variant_id, user_id;
