-- Variant performance (SPEC 8), DuckDB over the Parquet output. `{root}` is
-- the output root (a path or s3://… URL); the runner substitutes it.
-- Same definitions and result as ../clickhouse/variant_performance.sql:
--   scope            valid events only (is_valid); late events ARE counted
--   events           number of valid events
--   unique_users     distinct user_id among them
--   exposures        events with event_type = 'exposure'
--   conversions      events with event_type = 'conversion'
--   exposed_users    distinct users with >= 1 exposure in the variant
--   converted_users  exposed users with >= 1 conversion in the variant
--   conversion_rate  converted_users / exposed_users (NULL when nobody was exposed)
--   total_value      sum of properties.value (0.0 when none)
-- Sums are cast back to BIGINT (DuckDB widens sum(BIGINT) to HUGEINT).
WITH per_user AS
(
    SELECT experiment_id, variant_id, variant_key, user_id,
           count(*)                                  AS n_events,
           count(*) FILTER (WHERE is_exposure)       AS n_exposures,
           count(*) FILTER (WHERE is_conversion)     AS n_conversions,
           sum(value)                                AS user_value
    FROM read_parquet('{root}/events/**/*.parquet', hive_partitioning = true,
                      hive_types = {'event_date': DATE})
    WHERE is_valid
    GROUP BY experiment_id, variant_id, variant_key, user_id
)
SELECT experiment_id,
       variant_id,
       variant_key,
       sum(n_events)::BIGINT                                             AS events,
       count(*)                                                          AS unique_users,
       sum(n_exposures)::BIGINT                                          AS exposures,
       sum(n_conversions)::BIGINT                                        AS conversions,
       count(*) FILTER (WHERE n_exposures > 0)                           AS exposed_users,
       count(*) FILTER (WHERE n_exposures > 0 AND n_conversions > 0)     AS converted_users,
       (count(*) FILTER (WHERE n_exposures > 0 AND n_conversions > 0))
           / NULLIF(count(*) FILTER (WHERE n_exposures > 0), 0)          AS conversion_rate,
       coalesce(sum(user_value), 0.0)                                    AS total_value
FROM per_user
GROUP BY experiment_id, variant_id, variant_key
ORDER BY experiment_id, variant_id, variant_key;
