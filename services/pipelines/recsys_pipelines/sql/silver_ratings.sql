-- Sessionized events -> one row per rating event dated {dates}. Input: `events`.
SELECT
    event_date,
    event_id,
    user_id,
    title_id,
    CAST(get_json_object(details, '$.rating') AS INT) AS rating,
    occurred_at AS rated_at,
    session_id,
    device,
    country
FROM events
WHERE event_type = 'rate' AND title_id IS NOT NULL AND event_date IN ({dates})
