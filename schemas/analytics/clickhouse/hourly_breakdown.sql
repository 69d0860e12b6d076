-- Hourly breakdown by event type (SPEC 8), ClickHouse, from agg_hourly
-- (closed hourly windows over valid, non-late events). One row per
-- (hour, experiment_id, variant_id, variant_key, event_type); each task
-- partition writes its own rows, so totals are SUMs over `partition`
-- (users stay exact: a user lives in one partition). Summing `users` further,
-- across variants, could count a user reassigned within the hour twice.
--   avg_value = value_sum / value_count (NULL when no event had a value)
-- Identical definition in ../duckdb/hourly_breakdown.sql.
-- The inner query names its aggregates differently from the columns they
-- aggregate (n_events, ...): an alias equal to a column name would be
-- substituted into other aggregates by ClickHouse's old analyzer (< 24.3,
-- or enable_analyzer = 0). Plain subqueries (no WITH ... AS (subquery)) keep
-- it runnable on old servers too.
SELECT date, hour, window_start, experiment_id, variant_id,
       vkey                                 AS variant_key,
       event_type,
       n_events                             AS events,
       n_users                              AS users,
       n_values                             AS value_count,
       total_value                          AS value_sum,
       total_value / nullIf(n_values, 0)    AS avg_value
FROM
(
    SELECT date, hour, window_start, experiment_id, variant_id,
           nullIf(variant_key, '')  AS vkey,
           event_type,
           sum(events)              AS n_events,
           sum(users)               AS n_users,
           sum(value_count)         AS n_values,
           sum(value_sum)           AS total_value
    FROM agg_hourly FINAL
    GROUP BY date, hour, window_start, experiment_id, variant_id, vkey, event_type
)
ORDER BY window_start, experiment_id, variant_id, variant_key, event_type;
