-- Members with no impression on {first} .. {last} (imported datasets have none): each playback
-- that started then is a positive at its first event; completed and rated >= 4 as for
-- impressions. Negatives are sampled in Python. Inputs: `playback`, `ratings`, `impressions`.
WITH shown_users AS (
    SELECT DISTINCT user_id FROM impressions WHERE event_date >= {first} AND event_date <= {last}
),
plays AS (
    SELECT p.*
    FROM playback p
    LEFT JOIN shown_users u ON u.user_id = p.user_id
    WHERE u.user_id IS NULL
      AND p.plays > 0
      AND CAST(p.first_event_at AS DATE) >= {first}
      AND CAST(p.first_event_at AS DATE) <= {last}
)
SELECT
    CAST(p.first_event_at AS DATE) AS label_date,
    CONCAT('playback:', p.user_id, ':', p.title_id, ':',
        CAST(unix_micros(p.first_event_at) AS STRING)) AS example_id,
    p.user_id,
    p.title_id,
    p.first_event_at AS label_time,
    'playback' AS source,
    TRUE AS played,
    p.completed,
    COALESCE(MAX(CASE WHEN r.rating >= 4 THEN 1 ELSE 0 END), 0) = 1 AS rated_high
FROM plays p
LEFT JOIN ratings r
    ON r.user_id = p.user_id
    AND r.title_id = p.title_id
    AND unix_micros(r.rated_at) >= unix_micros(p.first_event_at)
    AND unix_micros(r.rated_at) <= unix_micros(p.first_event_at) + {horizon_us}
GROUP BY p.user_id, p.title_id, p.first_event_at, p.completed
