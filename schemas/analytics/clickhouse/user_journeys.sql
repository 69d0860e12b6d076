-- User journeys (SPEC 8), ClickHouse: one row per (experiment_id, user_id),
-- built from the daily rollups in user_journeys (Parquet `user_daily`), which
-- hold valid, non-late events only (SPEC 6.3).
--   days       number of distinct UTC days with activity
--   variants   the variants the user had (sorted; > 1 after a reassignment)
--   events     number of events
--   journey    the daily journeys concatenated in (date, first_ts,
--              variant_id) order: event types in timestamp order
--   value_sum  sum of properties.value (0.0 when none)
--   exposed / converted  any exposure / conversion
--   first_ts / last_ts   first and last event time
-- Identical definition in ../duckdb/user_journeys.sql.
-- Inner aggregates are named apart from the columns (see hourly_breakdown.sql).
SELECT experiment_id,
       user_id,
       n_days                                   AS days,
       variant_list                             AS variants,
       n_events                                 AS events,
       -- concatenate the daily journeys in order; arrayReduce('groupArrayArray')
       -- is arrayFlatten spelled so that ClickHouse 18.16 runs it too
       arrayReduce('groupArrayArray', arrayMap(d -> tupleElement(d, 4),
           arraySort(d -> (tupleElement(d, 1), tupleElement(d, 2), tupleElement(d, 3)), parts))) AS journey,
       total_value                              AS value_sum,
       any_exposed                              AS exposed,
       any_converted                            AS converted,
       min_ts                                   AS first_ts,
       max_ts                                   AS last_ts
FROM
(
    SELECT experiment_id, user_id,
           uniqExact(date)                                   AS n_days,
           arraySort(groupUniqArray(variant_id))             AS variant_list,
           sum(events)                                       AS n_events,
           groupArray((date, first_ts, variant_id, journey)) AS parts,
           sum(value_sum)                                    AS total_value,
           max(exposed)                                      AS any_exposed,
           max(converted)                                    AS any_converted,
           min(first_ts)                                     AS min_ts,
           max(last_ts)                                      AS max_ts
    FROM user_journeys FINAL
    GROUP BY experiment_id, user_id
)
ORDER BY experiment_id, user_id;
