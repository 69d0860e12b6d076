-- Property extraction (SPEC 8), DuckDB over the Parquet `events` dataset:
-- page, value and score per (experiment_id, variant_id, variant_key,
-- event_type, page) over valid events. `{root}` is substituted by the runner.
-- Same definitions and result as ../clickhouse/property_extraction.sql.
-- Other keys: json_extract_string(properties, '$.key').
SELECT experiment_id,
       variant_id,
       variant_key,
       event_type,
       page,
       count(*)                     AS events,
       count(value)                 AS value_count,
       coalesce(sum(value), 0.0)    AS value_sum,
       avg(value)                   AS avg_value,
       min(value)                   AS min_value,
       max(value)                   AS max_value,
       count(score)                 AS score_count,
       avg(score)                   AS avg_score,
       min(score)                   AS min_score,
       max(score)                   AS max_score
FROM read_parquet('{root}/events/**/*.parquet', hive_partitioning = true,
                  hive_types = {'event_date': DATE})
WHERE is_valid
GROUP BY experiment_id, variant_id, variant_key, event_type, page
ORDER BY experiment_id, variant_id, variant_key, event_type, page;
