-- Experiment arms (SPEC 10.1, 10.2), DuckDB over the Parquet output. `{root}`
-- is the output root (a path or s3://… URL); the runner substitutes it.
-- Same definitions and result as ../clickhouse/experiment_arms.sql: per
-- (experiment_id, variant_id, metric) the users n, mean and variance per user
-- that `neonblue report` compares.
--   population  users with >= 1 row with exposed; users with rows of more
--               than one variant are left out
--   conversion_rate    any converted (variance = mean * (1 - mean))
--   value_per_user, events_per_user, sessions_per_user: sums over the
--               user's rows (sample variance, n - 1)
-- For `report --from A --to B` add `WHERE date BETWEEN 'A' AND 'B'`.
WITH per_user AS
(
    SELECT experiment_id,
           user_id,
           min(variant_id)                       AS variant_id,
           max(converted::INTEGER)::DOUBLE       AS conv,
           sum(value_sum)                        AS val,
           sum(events)::DOUBLE                   AS evs,
           sum(sessions)::DOUBLE                 AS sess
    FROM read_parquet('{root}/user_daily/**/*.parquet', hive_partitioning = true,
                      hive_types = {'date': DATE})
    GROUP BY experiment_id, user_id
    -- one variant: min = max (cheaper than count(DISTINCT variant_id) = 1)
    HAVING bool_or(exposed) AND min(variant_id) = max(variant_id)
),
arms AS
(
    SELECT experiment_id, variant_id, count(*) AS n,
           avg(conv) AS conv_mean,
           avg(val)  AS val_mean,  var_samp(val)  AS val_var,
           avg(evs)  AS evs_mean,  var_samp(evs)  AS evs_var,
           avg(sess) AS sess_mean, var_samp(sess) AS sess_var
    FROM per_user
    GROUP BY experiment_id, variant_id
)
SELECT experiment_id, variant_id, metric, n, mean, variance
FROM
(
    SELECT experiment_id, variant_id, 'conversion_rate' AS metric, n,
           conv_mean AS mean, conv_mean * (1 - conv_mean) AS variance FROM arms
    UNION ALL
    SELECT experiment_id, variant_id, 'value_per_user', n, val_mean, val_var FROM arms
    UNION ALL
    SELECT experiment_id, variant_id, 'events_per_user', n, evs_mean, evs_var FROM arms
    UNION ALL
    SELECT experiment_id, variant_id, 'sessions_per_user', n, sess_mean, sess_var FROM arms
)
ORDER BY experiment_id, variant_id, metric;
