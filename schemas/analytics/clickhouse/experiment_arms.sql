-- Experiment arms (SPEC 10.1, 10.2), ClickHouse: one row per
-- (experiment_id, variant_id, metric) with the inputs of `neonblue report`:
-- the arm's users n, the mean per user and the variance per user, from
-- user_journeys (Parquet `user_daily`). Welch/delta-method intervals follow
-- from these three numbers per arm (formulas in SPEC 10.2).
--
-- Definitions (identical in ../duckdb/experiment_arms.sql and in `report`):
--   population  users with >= 1 row with exposed in the experiment; users
--               with rows of more than one variant are left out
--   conversion_rate    1 if any row has converted, else 0 (a proportion:
--                      variance = mean * (1 - mean))
--   value_per_user     sum of value_sum    (sample variance, n - 1; NaN for one user)
--   events_per_user    sum of events       (sample variance, n - 1)
--   sessions_per_user  sum of sessions     (sample variance, n - 1)
-- Over every date in the table: for `report --from A --to B` add
-- `WHERE date BETWEEN 'A' AND 'B'` to the innermost query.
-- Aggregates are named apart from the columns they aggregate (see
-- hourly_breakdown.sql); flags go through toUInt8 (Bool in the current DDL,
-- UInt8 in legacy-18.16/).
SELECT experiment_id,
       arm                        AS variant_id,
       tupleElement(m, 1)         AS metric,
       users                      AS n,
       tupleElement(m, 2)         AS mean,
       tupleElement(m, 3)         AS variance
FROM
(
    SELECT experiment_id,
           arm,
           count()                AS users,
           [('conversion_rate',   avg(conv), avg(conv) * (1 - avg(conv))),
            ('value_per_user',    avg(val),  varSamp(val)),
            ('events_per_user',   avg(evs),  varSamp(evs)),
            ('sessions_per_user', avg(sess), varSamp(sess))] AS ms
    FROM
    (   -- one row per analysed user
        SELECT experiment_id,
               user_id,
               min(variant_id)                    AS arm,
               toFloat64(max(toUInt8(converted))) AS conv,
               sum(value_sum)                     AS val,
               toFloat64(sum(events))             AS evs,
               toFloat64(sum(sessions))           AS sess
        FROM user_journeys FINAL
        GROUP BY experiment_id, user_id
        -- one variant: min = max (cheaper than uniqExact(variant_id) = 1)
        HAVING max(toUInt8(exposed)) = 1 AND min(variant_id) = max(variant_id)
    )
    GROUP BY experiment_id, arm
)
ARRAY JOIN ms AS m
ORDER BY experiment_id, variant_id, metric;
