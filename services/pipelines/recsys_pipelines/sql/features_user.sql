-- Daily batch user features as of the end of {feature_date} (UTC), every registry batch user
-- feature (recsys.features, seed 004) except the static ones, which come from dim_members.
-- DuckDB SQL: the ordered list aggregates (list(x ORDER BY ...)[1:n]) have no direct Spark
-- equivalent; docs/lake.md says how to port them.
-- Inputs: `playback` (silver_playback, event_date in [{first_365}, {feature_date}]),
-- `sessions` (silver_sessions, [{first_30}, {feature_date}]), `titles` (with primary_genre),
-- `utc_offsets` (country, offset_min), `members` (dim_members).
WITH pb AS (
    SELECT
        p.user_id, p.title_id, p.event_date, p.seconds_watched, p.first_event_at, p.country,
        p.completed, p.runtime_sec, t.primary_genre, t.language, t.director
    FROM playback p
    LEFT JOIN titles t ON t.title_id = p.title_id
    WHERE p.event_date >= {first_365} AND p.event_date <= {feature_date}
),
users AS (
    SELECT user_id FROM pb
    UNION
    SELECT user_id FROM sessions WHERE event_date >= {first_30} AND event_date <= {feature_date}
),
hours AS (
    SELECT
        user_id,
        COALESCE(SUM(seconds_watched) FILTER (WHERE event_date >= {first_30}), 0) / 3600.0 AS watch_hours_30d,
        COALESCE(SUM(seconds_watched) FILTER (WHERE event_date >= {first_90}), 0) / 3600.0 AS watch_hours_90d,
        SUM(seconds_watched) / 3600.0 AS watch_hours_365d
    FROM pb
    GROUP BY user_id
),
genre AS (
    SELECT user_id, primary_genre AS genre, SUM(seconds_watched) AS s
    FROM pb
    WHERE event_date >= {first_30} AND primary_genre IS NOT NULL
    GROUP BY user_id, primary_genre
),
genre_vector AS (
    SELECT user_id, {genre_vector} AS genre_affinity_vector
    FROM genre
    GROUP BY user_id
    HAVING SUM(s) > 0
),
per_title_90 AS (
    SELECT
        user_id, title_id, SUM(seconds_watched) AS s, bool_or(completed) AS c,
        MAX(runtime_sec) AS r
    FROM pb
    WHERE event_date >= {first_90}
    GROUP BY user_id, title_id
),
completion AS (
    SELECT
        user_id,
        median(CASE WHEN c THEN 1.0 WHEN r > 0 THEN LEAST(s / r, 1.0) END)
            AS content_completion_rate_p50
    FROM per_title_90
    GROUP BY user_id
),
session_length AS (
    SELECT user_id, AVG(duration_sec) / 60.0 AS avg_session_duration_min
    FROM sessions
    WHERE event_date >= {first_30} AND event_date <= {feature_date}
    GROUP BY user_id
),
local_hours AS (
    SELECT
        pb.user_id,
        CAST(floor(((unix_micros(pb.first_event_at) / 60000000) + COALESCE(o.offset_min, 0)) / 60) AS BIGINT) % 24 AS hour,
        SUM(pb.seconds_watched) AS s
    FROM pb
    LEFT JOIN utc_offsets o ON o.country = pb.country
    WHERE pb.event_date >= {first_30}
    GROUP BY 1, 2
),
preferred_hour AS (
    SELECT user_id, hour AS preferred_time_of_day
    FROM (
        SELECT user_id, hour, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY s DESC, hour) AS n
        FROM local_hours
        WHERE s > 0
    )
    WHERE n = 1
),
languages AS (
    SELECT user_id, list(language ORDER BY s DESC, language)[1:{max_languages}] AS language_preferences
    FROM (
        SELECT user_id, language, SUM(seconds_watched) AS s
        FROM pb
        WHERE event_date >= {first_90} AND language IS NOT NULL
        GROUP BY user_id, language
        HAVING SUM(seconds_watched) > 0
    )
    GROUP BY user_id
),
directors AS (
    SELECT user_id, list(director ORDER BY s DESC, director)[1:{max_directors}] AS top_directors_30d
    FROM (
        SELECT user_id, director, SUM(seconds_watched) AS s
        FROM pb
        WHERE event_date >= {first_30} AND director IS NOT NULL
        GROUP BY user_id, director
        HAVING SUM(seconds_watched) > 0
    )
    GROUP BY user_id
),
latest_country AS (
    SELECT user_id, MAX_BY(country, first_event_at) AS country FROM pb GROUP BY user_id
)
SELECT
    {feature_date} AS feature_date,
    u.user_id,
    g.genre_affinity_vector,
    c.content_completion_rate_p50,
    sl.avg_session_duration_min,
    ph.preferred_time_of_day,
    l.language_preferences,
    COALESCE(m.country, lc.country) AS country,
    m.plan_tier AS subscription_tier,
    h.watch_hours_30d,
    h.watch_hours_90d,
    h.watch_hours_365d,
    d.top_directors_30d
FROM users u
LEFT JOIN hours h ON h.user_id = u.user_id
LEFT JOIN genre_vector g ON g.user_id = u.user_id
LEFT JOIN completion c ON c.user_id = u.user_id
LEFT JOIN session_length sl ON sl.user_id = u.user_id
LEFT JOIN preferred_hour ph ON ph.user_id = u.user_id
LEFT JOIN languages l ON l.user_id = u.user_id
LEFT JOIN directors d ON d.user_id = u.user_id
LEFT JOIN latest_country lc ON lc.user_id = u.user_id
LEFT JOIN members m ON m.user_id = u.user_id
