-- Hourly breakdown by event type (SPEC 8), DuckDB over the Parquet
-- `agg_hourly` dataset. `{root}` is substituted by the runner. Same
-- definitions and result as ../clickhouse/hourly_breakdown.sql: totals are
-- SUMs over `partition`; avg_value = value_sum / value_count.
-- `hour=07` would be inferred as VARCHAR (leading zero): hive_types types it.
SELECT date,
       hour::UTINYINT                                    AS hour,
       window_start,
       experiment_id,
       variant_id,
       variant_key,
       event_type,
       sum(events)::UBIGINT                              AS events,
       sum(users)::UBIGINT                               AS users,
       sum(value_count)::UBIGINT                         AS value_count,
       sum(value_sum)                                    AS value_sum,
       sum(value_sum) / NULLIF(sum(value_count), 0)      AS avg_value
FROM read_parquet('{root}/agg_hourly/**/*.parquet', hive_partitioning = true,
                  hive_types = {'date': DATE, 'hour': INTEGER})
GROUP BY date, hour, window_start, experiment_id, variant_id, variant_key, event_type
ORDER BY window_start, experiment_id, variant_id, variant_key, event_type;
