-- User journeys (SPEC 8), DuckDB over the Parquet `user_daily` dataset
-- (valid, non-late events, one row per date/experiment/variant/user).
-- `{root}` is substituted by the runner. Same definitions and result as
-- ../clickhouse/user_journeys.sql: one row per (experiment_id, user_id);
-- journey = the daily journeys concatenated in (date, first_ts, variant_id)
-- order.
SELECT experiment_id,
       user_id,
       count(DISTINCT date)                                   AS days,
       list_sort(list(DISTINCT variant_id))                   AS variants,
       sum(events)::UBIGINT                                   AS events,
       flatten(list(journey ORDER BY date, first_ts, variant_id)) AS journey,
       sum(value_sum)                                         AS value_sum,
       bool_or(exposed)                                       AS exposed,
       bool_or(converted)                                     AS converted,
       min(first_ts)                                          AS first_ts,
       max(last_ts)                                           AS last_ts
FROM read_parquet('{root}/user_daily/**/*.parquet', hive_partitioning = true,
                  hive_types = {'date': DATE})
GROUP BY experiment_id, user_id
ORDER BY experiment_id, user_id;
