-- neonblue's job, done by DuckDB on the same JSONL file (scripts/bench.sh).
-- Placeholders: @INPUT@ (JSONL file), @OUT@ (output root), @THREADS@.
-- What it does, and what it leaves out, is described in scripts/bench/README.md.
SET threads = @THREADS@;
SET TimeZone = 'UTC';
SET preserve_insertion_order = false;

-- 1. Envelopes: outbox creates / snapshot reads of a known aggregate type with
--    a JSON payload. Lines that are not JSON, tombstones, u/d/t are dropped.
CREATE TEMP TABLE env AS
SELECT topic AS src_topic, "partition" AS src_partition, "offset" AS src_offset,
       value.after.aggregate_id AS aggregate_id,
       value.after.aggregate_type AS agg_type,
       value.after.event_type AS ev_type,
       value.after.payload AS payload
FROM read_json('@INPUT@', format = 'newline_delimited', ignore_errors = true,
       columns = {'topic': 'VARCHAR', 'partition': 'INTEGER', 'offset': 'BIGINT',
                  'value': 'STRUCT(op VARCHAR, after STRUCT(aggregate_id VARCHAR, aggregate_type VARCHAR, event_type VARCHAR, payload VARCHAR))'})
WHERE value.op IN ('c', 'r')
  AND value.after.aggregate_type IN ('assignment', 'event');

-- 2. Assignments (payload parsed once), required fields checked.
CREATE TEMP TABLE asg AS
WITH p AS (
  SELECT src_offset, ev_type,
         json_transform(payload, '{"id":"VARCHAR","experiment_id":"UINTEGER","user_id":"VARCHAR","variant_id":"UINTEGER","variant_key":"VARCHAR","assigned_at":"VARCHAR"}') AS j
  FROM env
  WHERE agg_type = 'assignment' AND ev_type IN ('ASSIGNMENT_CREATED', 'ASSIGNMENT_UPDATED', 'ASSIGNMENT_DELETED')
    AND json_valid(payload)
), q AS (
  SELECT *, TRY_CAST(j.assigned_at AS TIMESTAMPTZ) AS at_ts FROM p
)
SELECT src_offset, ev_type = 'ASSIGNMENT_DELETED' AS is_delete,
       j.experiment_id AS experiment_id, j.user_id AS user_id, j.variant_id AS variant_id,
       j.variant_key AS variant_key, at_ts AS assigned_at
FROM q
WHERE j.experiment_id IS NOT NULL AND coalesce(j.user_id, '') <> ''
  AND (ev_type = 'ASSIGNMENT_DELETED' OR (j.variant_id IS NOT NULL AND at_ts IS NOT NULL));

-- 3. Events: payload and properties parsed once each, required fields checked
--    (records failing the checks are what neonblue dead-letters).
CREATE TEMP TABLE ev AS
WITH p AS (
  SELECT src_topic, src_partition, src_offset, aggregate_id,
         json_transform(payload, '{"id":"VARCHAR","experiment_id":"UINTEGER","user_id":"VARCHAR","variant_id":"UINTEGER","event_type":"VARCHAR","timestamp":"VARCHAR","properties":"JSON","session_id":"VARCHAR"}') AS j
  FROM env
  WHERE agg_type = 'event' AND ev_type = 'EVENT_CREATED' AND json_valid(payload)
), q AS (
  -- properties: an object, or a string holding a JSON object; anything else is {}
  SELECT *,
         coalesce(CASE json_type(j.properties)
                    WHEN 'OBJECT' THEN j.properties
                    WHEN 'VARCHAR' THEN CASE WHEN json_valid(j.properties ->> '$')
                                              AND json_type(CAST(j.properties ->> '$' AS JSON)) = 'OBJECT'
                                             THEN CAST(j.properties ->> '$' AS JSON) END
                  END, '{}'::JSON) AS props,
         TRY_CAST(j."timestamp" AS TIMESTAMPTZ) AS ts
  FROM p
), r AS (
  SELECT *, json_transform(props, '{"page":"VARCHAR","device":"VARCHAR","browser":"VARCHAR","value":"DOUBLE","score":"DOUBLE"}') AS pr
  FROM q
)
SELECT coalesce(j.id, aggregate_id) AS event_id, j.experiment_id AS experiment_id, j.user_id AS user_id,
       j.session_id AS session_id, j.event_type AS event_type, ts,
       j.variant_id AS claimed_variant_id,
       pr.page AS page, pr.device AS device, pr.browser AS browser, pr.value AS value,
       CASE WHEN pr.score = floor(pr.score) THEN CAST(pr.score AS BIGINT) END AS score,
       CAST(props AS VARCHAR) AS properties,
       src_topic, src_partition, src_offset
FROM r
WHERE j.experiment_id IS NOT NULL AND coalesce(j.user_id, '') <> '' AND coalesce(j.event_type, '') <> ''
  AND ts IS NOT NULL AND coalesce(j.id, aggregate_id) IS NOT NULL;

-- 4. Deduplicate by event id: the first copy in input order wins.
CREATE TEMP TABLE ev1 AS
SELECT * FROM ev QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY src_partition, src_offset) = 1;

-- 5. Assignment epochs: a delete ends the (experiment, user) history; rows after
--    it (in input order) only see versions written after it.
CREATE TEMP TABLE dels AS
SELECT experiment_id, user_id, src_offset,
       row_number() OVER (PARTITION BY experiment_id, user_id ORDER BY src_offset) AS epoch
FROM asg WHERE is_delete;

CREATE TEMP TABLE versions AS
WITH a AS (
  SELECT a.*, coalesce(d.epoch, 0) AS epoch
  FROM asg a ASOF LEFT JOIN dels d
    ON a.experiment_id = d.experiment_id AND a.user_id = d.user_id AND a.src_offset >= d.src_offset
  WHERE NOT a.is_delete
)
-- a version is identified by its assigned_at: the last write wins
SELECT experiment_id, user_id, epoch, assigned_at,
       arg_max(variant_id, src_offset) AS variant_id, arg_max(variant_key, src_offset) AS variant_key
FROM a GROUP BY ALL;

CREATE TEMP TABLE first_version AS
SELECT experiment_id, user_id, epoch, min(assigned_at) AS assigned_at,
       arg_min(variant_id, assigned_at) AS variant_id, arg_min(variant_key, assigned_at) AS variant_key
FROM versions GROUP BY ALL;

-- 6. The join: latest version with assigned_at <= timestamp; else the
--    earliest (before_assignment); else unassigned.
CREATE TEMP TABLE enriched AS
WITH e AS (
  SELECT e.*, coalesce(d.epoch, 0) AS epoch
  FROM ev1 e ASOF LEFT JOIN dels d
    ON e.experiment_id = d.experiment_id AND e.user_id = d.user_id AND e.src_offset > d.src_offset
), j AS (
  SELECT e.*, v.variant_id AS v_variant_id, v.variant_key AS v_variant_key, v.assigned_at AS v_assigned_at
  FROM e ASOF LEFT JOIN versions v
    ON e.experiment_id = v.experiment_id AND e.user_id = v.user_id AND e.epoch = v.epoch AND e.ts >= v.assigned_at
)
SELECT j.event_id, j.experiment_id, j.user_id, j.session_id, j.event_type, j.ts AS "timestamp",
       CAST(j.ts AS DATE) AS event_date, CAST(hour(j.ts) AS UTINYINT) AS event_hour,
       coalesce(j.v_variant_id, f.variant_id) AS variant_id,
       CASE WHEN j.v_variant_id IS NOT NULL THEN j.v_variant_key ELSE f.variant_key END AS variant_key,
       coalesce(j.v_assigned_at, f.assigned_at) AS assigned_at,
       j.v_variant_id IS NOT NULL AS is_valid,
       CASE WHEN j.v_variant_id IS NOT NULL THEN NULL
            WHEN f.variant_id IS NOT NULL THEN 'before_assignment' ELSE 'unassigned' END AS invalid_reason,
       false AS is_late,
       j.event_type = 'exposure' AS is_exposure, j.event_type = 'click' AS is_click,
       j.event_type = 'conversion' AS is_conversion,
       j.claimed_variant_id,
       coalesce(j.claimed_variant_id <> coalesce(j.v_variant_id, f.variant_id), false) AS variant_mismatch,
       j.page, j.device, j.browser, j.value, j.score, j.properties,
       j.src_topic AS source_topic, j.src_partition AS source_partition, j.src_offset AS source_offset
FROM j LEFT JOIN first_version f
  ON j.experiment_id = f.experiment_id AND j.user_id = f.user_id AND j.epoch = f.epoch;

-- 7. Outputs (Parquet, zstd, Hive-partitioned like neonblue's).
COPY enriched TO '@OUT@/events' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date), OVERWRITE_OR_IGNORE);

COPY (
  SELECT date_trunc('hour', "timestamp") AS window_start, date_trunc('hour', "timestamp") + INTERVAL 1 HOUR AS window_end,
         experiment_id, variant_id, variant_key, event_type,
         count(*)::UBIGINT AS events, count(DISTINCT user_id)::UBIGINT AS users,
         count(value)::UBIGINT AS value_count, coalesce(sum(value), 0.0) AS value_sum,
         coalesce(sum(value * value), 0.0) AS value_sum_sq, 0::INTEGER AS "partition",
         CAST(date_trunc('hour', "timestamp") AS DATE) AS date, lpad(hour("timestamp")::VARCHAR, 2, '0') AS hour
  FROM enriched WHERE is_valid AND NOT is_late
  GROUP BY ALL
) TO '@OUT@/agg_hourly' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour), OVERWRITE_OR_IGNORE);

COPY (
  SELECT date_trunc('day', "timestamp") AS window_start, date_trunc('day', "timestamp") + INTERVAL 1 DAY AS window_end,
         experiment_id, variant_id, variant_key, event_type,
         count(*)::UBIGINT AS events, count(DISTINCT user_id)::UBIGINT AS users,
         count(value)::UBIGINT AS value_count, coalesce(sum(value), 0.0) AS value_sum,
         coalesce(sum(value * value), 0.0) AS value_sum_sq, 0::INTEGER AS "partition",
         event_date AS date
  FROM enriched WHERE is_valid AND NOT is_late
  GROUP BY ALL
) TO '@OUT@/agg_daily' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), OVERWRITE_OR_IGNORE);

COPY (
  SELECT experiment_id, variant_id, user_id,
         arg_min(variant_key, ("timestamp", event_id)) AS variant_key,
         count(*)::UBIGINT AS events,
         list(event_type ORDER BY "timestamp", event_id) AS journey,
         coalesce(sum(value), 0.0) AS value_sum,
         count(DISTINCT session_id)::UBIGINT AS sessions,
         bool_or(is_exposure) AS exposed, bool_or(is_conversion) AS converted,
         min("timestamp") AS first_ts, max("timestamp") AS last_ts, 0::INTEGER AS "partition",
         event_date AS date
  FROM enriched WHERE is_valid AND NOT is_late
  GROUP BY experiment_id, variant_id, user_id, event_date
) TO '@OUT@/user_daily' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), OVERWRITE_OR_IGNORE);
