-- Property extraction (SPEC 8), ClickHouse: page, value and score as
-- extracted by neonblue from the event properties (SPEC 2.3: value = a JSON
-- number or numeric string, score = an integral number), summarised per
-- (experiment_id, variant_id, variant_key, event_type, page) over valid
-- events (late ones included, as in variant_performance). page '' is stored
-- for null and turned back into NULL here.
--   events                       valid events
--   value_count / score_count    how many had a value / score
--   value_sum                    0.0 when none; avg/min/max NULL when none
-- Other keys are in `properties` (compact JSON text): JSONExtract*(properties,
-- 'key') here, json_extract*(properties, '$.key') in DuckDB.
-- Identical definition in ../duckdb/property_extraction.sql.
-- Inner columns are named apart from the output aliases (see
-- hourly_breakdown.sql), so the text also runs on the old analyzer.
SELECT experiment_id,
       variant_id,
       vkey                     AS variant_key,
       event_type,
       page_path                AS page,
       count()                  AS events,
       count(v)                 AS value_count,
       coalesce(sum(v), 0.0)    AS value_sum,
       avg(v)                   AS avg_value,
       min(v)                   AS min_value,
       max(v)                   AS max_value,
       count(s)                 AS score_count,
       avg(s)                   AS avg_score,
       min(s)                   AS min_score,
       max(s)                   AS max_score
FROM
(
    SELECT experiment_id, variant_id, nullIf(variant_key, '') AS vkey, event_type,
           nullIf(page, '') AS page_path, value AS v, score AS s
    FROM events_processed FINAL
    WHERE is_valid
)
GROUP BY experiment_id, variant_id, vkey, event_type, page_path
ORDER BY experiment_id, variant_id, variant_key, event_type, page;
