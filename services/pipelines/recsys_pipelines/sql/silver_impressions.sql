-- Sessionized events -> one row per title shown by an impression event dated {dates}.
-- Inputs: `events`, `positions` (one column `i`: 0, 1, ... up to the longest row shown).
-- The explode is a join on the element index rather than Spark's posexplode or DuckDB's unnest,
-- which differ; both engines run this form unchanged.
WITH shown AS (
    SELECT
        event_date, event_id, user_id, occurred_at, session_id, device, country,
        get_json_object(details, '$.title_ids') AS title_ids,
        get_json_object(details, '$.row') AS row_name,
        CAST(COALESCE(get_json_object(details, '$.position'), '0') AS INT) AS row_position,
        NULLIF(get_json_object(details, '$.request_id'), '') AS request_id
    FROM events
    WHERE event_type = 'impression' AND event_date IN ({dates})
)
SELECT
    s.event_date,
    s.event_id,
    s.user_id,
    get_json_object(s.title_ids, CONCAT('$[', CAST(p.i AS STRING), ']')) AS title_id,
    s.occurred_at AS shown_at,
    s.row_name,
    s.row_position,
    CAST(p.i AS INT) AS rank,
    s.request_id,
    s.session_id,
    s.device,
    s.country
FROM shown s
JOIN positions p ON p.i < json_array_length(s.title_ids)
