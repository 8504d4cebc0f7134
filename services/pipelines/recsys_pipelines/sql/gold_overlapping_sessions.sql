-- Data quality (seed 001): pairs of one member's sessions that overlap in time, for the sessions
-- that started on {as_of} (paired with any session of that day or the day before). Sessions are
-- per device, so an overlap is two devices at once (a shared account) or a clock gone wrong.
-- Touching is no overlap (b starts exactly when a ends); a is the one that started first, ties
-- broken by session id, so each pair is reported once. Input: `sessions` (silver_sessions).
SELECT
    {as_of} AS as_of_date,
    a.user_id,
    a.session_id AS session_a,
    b.session_id AS session_b,
    a.device AS device_a,
    b.device AS device_b,
    a.started_at AS a_started_at,
    a.ended_at AS a_ended_at,
    b.started_at AS b_started_at,
    b.ended_at AS b_ended_at,
    CAST(floor((unix_micros(LEAST(a.ended_at, b.ended_at)) - unix_micros(b.started_at)) / 1000000)
        AS BIGINT) AS overlap_sec
FROM sessions a
JOIN sessions b ON a.user_id = b.user_id AND a.session_id <> b.session_id
WHERE b.event_date = {as_of}
  AND (a.started_at < b.started_at OR (a.started_at = b.started_at AND a.session_id < b.session_id))
  AND b.started_at < a.ended_at
