-- Daily batch title features as of the end of {feature_date}: every title of dim_titles.
-- Inputs: `titles`, `playback` (silver_playback, event_date in [{first_90}, {feature_date}]).
WITH pb AS (
    SELECT * FROM playback WHERE event_date >= {first_90} AND event_date <= {feature_date}
),
seconds_30 AS (
    SELECT title_id, SUM(seconds_watched) AS s
    FROM pb
    WHERE event_date >= {first_30}
    GROUP BY title_id
),
total_30 AS (
    SELECT SUM(s) AS total FROM seconds_30
),
viewers_90 AS (
    SELECT
        title_id,
        user_id,
        SUM(seconds_watched) AS s,
        MAX(CASE WHEN completed THEN 1 ELSE 0 END) AS c,
        MAX(runtime_sec) AS r
    FROM pb
    GROUP BY title_id, user_id
),
completion AS (
    SELECT
        title_id,
        SUM(CASE WHEN c = 1 OR (r > 0 AND s > 0.9 * r) THEN 1 ELSE 0 END) / CAST(COUNT(*) AS DOUBLE)
            AS title_completion_rate_90d
    FROM viewers_90
    GROUP BY title_id
)
SELECT
    {feature_date} AS feature_date,
    t.title_id,
    t.genres AS title_genres,
    CAST(datediff('day', t.release_date, {feature_date}) AS BIGINT) AS release_age_days,
    CASE WHEN tot.total > 0 THEN COALESCE(s.s, 0) / tot.total ELSE 0.0 END AS title_popularity_30d,
    c.title_completion_rate_90d,
    list_sort(t.available_countries) AS available_countries
FROM titles t
CROSS JOIN total_30 tot
LEFT JOIN seconds_30 s ON s.title_id = t.title_id
LEFT JOIN completion c ON c.title_id = t.title_id
