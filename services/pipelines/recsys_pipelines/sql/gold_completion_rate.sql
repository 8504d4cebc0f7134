-- Completion rate per title and country for titles released after {released_after} and up to
-- {as_of} (seed 001). A viewer is a member who played the title up to {as_of}; their sessions of
-- it are merged: they completed it if any session reached a complete event or watched > 90 % of
-- the runtime, or all their sessions together watched > 90 % of it. For a series the runtime
-- is one episode's, so a completion means about one episode's worth.
-- rate = completions / distinct viewers. Inputs: `playback`, `titles`.
WITH viewer AS (
    SELECT
        title_id,
        country,
        user_id,
        SUM(seconds_watched) AS seconds,
        MAX(CASE WHEN completed THEN 1 ELSE 0 END) AS any_completed
    FROM playback
    WHERE event_date <= {as_of} AND country IS NOT NULL
    GROUP BY title_id, country, user_id
)
SELECT
    {as_of} AS as_of_date,
    v.title_id,
    v.country,
    t.name AS title_name,
    t.release_date,
    CAST(COUNT(*) AS BIGINT) AS viewers,
    CAST(SUM(CASE WHEN v.any_completed = 1 OR v.seconds > 0.9 * t.runtime_min * 60 THEN 1 ELSE 0 END)
        AS BIGINT) AS completions,
    SUM(CASE WHEN v.any_completed = 1 OR v.seconds > 0.9 * t.runtime_min * 60 THEN 1 ELSE 0 END)
        / CAST(COUNT(*) AS DOUBLE) AS completion_rate
FROM viewer v
JOIN titles t ON t.title_id = v.title_id
WHERE t.release_date > {released_after} AND t.release_date <= {as_of}
GROUP BY v.title_id, v.country, t.name, t.release_date
