-- Sessionized events -> one row per (session, title) of the sessions that started on {dates}:
-- every play segment of the title in the session merged (plays, pauses, the complete or skip).
-- A title only skipped as a preview (never played, paused or completed) is not a playback.
-- Inputs: `events` (silver_events.sql), `titles` (title_id, runtime_min).
WITH per_title AS (
    SELECT
        session_id,
        title_id,
        MIN(session_date) AS event_date,
        MIN(user_id) AS user_id,
        MIN(device) AS device,
        MAX_BY(country, t_us) AS country,
        MIN(occurred_at) AS first_event_at,
        MAX(occurred_at) AS last_event_at,
        SUM(CASE WHEN event_type = 'play' THEN 1 ELSE 0 END) AS plays,
        SUM(CASE WHEN event_type IN ('pause', 'complete') THEN 1 ELSE 0 END) AS stops,
        SUM(
            CASE WHEN event_type IN ('pause', 'complete', 'skip')
                THEN GREATEST(COALESCE(CAST(get_json_object(details, '$.watched_sec') AS DOUBLE), 0.0), 0.0)
                ELSE 0.0 END
        ) AS seconds_watched,
        MAX(CASE WHEN event_type = 'complete' THEN 1 ELSE 0 END) AS has_complete
    FROM events
    WHERE event_type IN ('play', 'pause', 'complete', 'skip')
      AND title_id IS NOT NULL
      AND session_date IN ({dates})
    GROUP BY session_id, title_id
)
SELECT
    p.event_date,
    p.session_id,
    p.user_id,
    p.title_id,
    p.device,
    p.country,
    p.first_event_at,
    p.last_event_at,
    CAST(p.plays AS INT) AS plays,
    p.seconds_watched,
    CAST(t.runtime_min AS BIGINT) * 60 AS runtime_sec,
    CASE WHEN t.runtime_min > 0
        THEN LEAST(p.seconds_watched / (t.runtime_min * 60.0), 1.0) END AS watch_share,
    (p.has_complete = 1 OR COALESCE(p.seconds_watched / (t.runtime_min * 60.0) > 0.9, FALSE))
        AS completed
FROM per_title p
LEFT JOIN titles t ON t.title_id = p.title_id
WHERE p.plays > 0 OR p.stops > 0
