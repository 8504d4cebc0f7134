-- Impressions shown on {first} .. {last} -> labelled examples: did the member play the title
-- within {horizon_us} µs after it was shown, complete it in that playback, rate it >= 4?
-- Inputs: `impressions`, `playback` and `ratings` (silver, covering the days through the horizon).
WITH shown AS (
    SELECT * FROM impressions WHERE event_date >= {first} AND event_date <= {last}
),
played AS (
    SELECT
        s.event_id,
        s.rank,
        MAX(CASE WHEN p.user_id IS NOT NULL THEN 1 ELSE 0 END) AS played,
        MAX(CASE WHEN p.completed THEN 1 ELSE 0 END) AS completed
    FROM shown s
    LEFT JOIN playback p
        ON p.user_id = s.user_id
        AND p.title_id = s.title_id
        AND unix_micros(p.first_event_at) >= unix_micros(s.shown_at)
        AND unix_micros(p.first_event_at) <= unix_micros(s.shown_at) + {horizon_us}
    GROUP BY s.event_id, s.rank
),
rated AS (
    SELECT s.event_id, s.rank, MAX(CASE WHEN r.rating >= 4 THEN 1 ELSE 0 END) AS rated_high
    FROM shown s
    LEFT JOIN ratings r
        ON r.user_id = s.user_id
        AND r.title_id = s.title_id
        AND unix_micros(r.rated_at) >= unix_micros(s.shown_at)
        AND unix_micros(r.rated_at) <= unix_micros(s.shown_at) + {horizon_us}
    GROUP BY s.event_id, s.rank
)
SELECT
    s.event_date AS label_date,
    CONCAT(s.event_id, ':', CAST(s.rank AS STRING)) AS example_id,
    s.user_id,
    s.title_id,
    s.shown_at AS label_time,
    'impression' AS source,
    p.played = 1 AS played,
    p.completed = 1 AS completed,
    r.rated_high = 1 AS rated_high
FROM shown s
JOIN played p ON p.event_id = s.event_id AND p.rank = s.rank
JOIN rated r ON r.event_id = s.event_id AND r.rank = s.rank
