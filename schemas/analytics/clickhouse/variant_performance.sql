-- Variant performance (SPEC 8), ClickHouse: one row per
-- (experiment_id, variant_id, variant_key) from events_processed.
--
-- Definitions (identical in ../duckdb/variant_performance.sql):
--   scope            valid events only (is_valid: the variant is the joined
--                    assignment's, SPEC 4). Late events (is_late) ARE counted:
--                    lateness only keeps an event out of the windowed
--                    aggregates, it is still a real, valid event.
--   events           number of valid events
--   unique_users     distinct user_id among them
--   exposures        events with event_type = 'exposure'
--   conversions      events with event_type = 'conversion'
--   exposed_users    distinct users with >= 1 exposure in the variant
--   converted_users  exposed users with >= 1 conversion in the variant
--   conversion_rate  converted_users / exposed_users (NULL when nobody was
--                    exposed); so it is a per-user rate, never above 1
--   total_value      sum of properties.value (0.0 when none)
-- A user reassigned to another variant counts in each variant's rows.
-- variant_key: '' is stored for null (see 010_events_processed.sql) and
-- turned back into NULL here. Aggregates are named apart from the columns
-- they aggregate, and a plain subquery is used instead of WITH: the same text
-- then runs on old servers and on the old analyzer too.
SELECT experiment_id,
       variant_id,
       vkey                                                  AS variant_key,
       sum(n_events)                                         AS events,
       count()                                               AS unique_users,
       sum(n_exposures)                                      AS exposures,
       sum(n_conversions)                                    AS conversions,
       countIf(n_exposures > 0)                              AS exposed_users,
       countIf(n_exposures > 0 AND n_conversions > 0)        AS converted_users,
       countIf(n_exposures > 0 AND n_conversions > 0)
           / nullIf(countIf(n_exposures > 0), 0)             AS conversion_rate,
       coalesce(sum(user_value), 0.0)                        AS total_value
FROM
(   -- one row per user and variant
    SELECT experiment_id, variant_id, nullIf(variant_key, '') AS vkey, user_id,
           count()                 AS n_events,
           countIf(is_exposure)    AS n_exposures,
           countIf(is_conversion)  AS n_conversions,
           sum(value)              AS user_value
    FROM events_processed FINAL
    WHERE is_valid
    GROUP BY experiment_id, variant_id, vkey, user_id
)
GROUP BY experiment_id, variant_id, vkey
ORDER BY experiment_id, variant_id, variant_key;
