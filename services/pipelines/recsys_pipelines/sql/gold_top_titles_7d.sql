-- Top 10 titles per country by hours viewed over the 7 days {first} .. {as_of} (seed 001:
-- "hours viewed, not unique viewers"). A viewing counts on the day its session started and in
-- the country the member watched from (the event's country), available there or not.
-- Inputs: `playback` (silver_playback), `titles` (dim_titles).
WITH hours AS (
    SELECT
        country,
        title_id,
        SUM(seconds_watched) / 3600.0 AS hours_viewed,
        COUNT(DISTINCT user_id) AS viewers
    FROM playback
    WHERE event_date >= {first} AND event_date <= {as_of} AND country IS NOT NULL
    GROUP BY country, title_id
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY country ORDER BY hours_viewed DESC, title_id) AS rank
    FROM hours
)
SELECT
    {as_of} AS as_of_date,
    r.country,
    CAST(r.rank AS INT) AS rank,
    r.title_id,
    t.name AS title_name,
    r.hours_viewed,
    CAST(r.viewers AS BIGINT) AS viewers
FROM ranked r
LEFT JOIN titles t ON t.title_id = r.title_id
WHERE r.rank <= 10
