-- Sessionized events -> one row per non-empty search dated {dates}. Input: `events`.
SELECT
    event_date,
    event_id,
    user_id,
    TRIM(get_json_object(details, '$.query')) AS query,
    occurred_at AS searched_at,
    session_id,
    device,
    country
FROM events
WHERE event_type = 'search'
  AND event_date IN ({dates})
  AND LENGTH(TRIM(COALESCE(get_json_object(details, '$.query'), ''))) > 0
