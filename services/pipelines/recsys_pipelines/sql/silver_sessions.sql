-- Sessionized events -> one row per session that started on one of {dates}.
-- Input: `events` (silver_events.sql).
SELECT
    MIN(session_date) AS event_date,
    session_id,
    MIN(user_id) AS user_id,
    MIN(device) AS device,
    MAX_BY(country, t_us) AS country,
    MIN(occurred_at) AS started_at,
    MAX(occurred_at) AS ended_at,
    CAST(floor((MAX(t_us) - MIN(t_us)) / 1000000) AS BIGINT) AS duration_sec,
    CAST(COUNT(*) AS INT) AS events,
    CAST(SUM(CASE WHEN event_type = 'play' THEN 1 ELSE 0 END) AS INT) AS plays,
    CAST(COUNT(DISTINCT CASE WHEN event_type = 'play' THEN title_id END) AS INT) AS titles_played,
    SUM(
        CASE WHEN event_type IN ('pause', 'complete', 'skip')
            THEN GREATEST(COALESCE(CAST(get_json_object(details, '$.watched_sec') AS DOUBLE), 0.0), 0.0)
            ELSE 0.0 END
    ) AS seconds_watched
FROM events
WHERE session_date IN ({dates})
GROUP BY session_id
