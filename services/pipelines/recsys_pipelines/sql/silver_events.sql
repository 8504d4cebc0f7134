-- Bronze rows of the read window -> de-duplicated, sessionized events (the input of every
-- silver table). Spark SQL; DuckDB runs it through the macros of recsys_pipelines.engine.
-- Input: `bronze` (bronze_events rows). Parameter: {gap_us}, the session gap in microseconds.
--
-- De-duplication: the bronze writer drops resends within its window; beyond it a resend is a
-- second row with the same event_id, and the copy read first (lowest partition, offset) wins.
-- Sessions: per member and device, a new session starts when the member was inactive for more
-- than the gap (30 min, the stream job's rule) since their previous event on that device.
-- Watching is activity: a pause/complete/skip counts from when its segment began (its time minus
-- watched_sec), so a 100 min film played without a pause is one session, not two (the stream
-- job measures the gap between events only; see docs/lake.md).
WITH numbered AS (
    SELECT
        event_id, event_type, user_id, title_id,
        COALESCE(device, 'unknown') AS device,
        country, occurred_at, details,
        unix_micros(occurred_at) AS t_us,
        -- A pause, complete or skip reports the seconds watched since its play: the member was
        -- active from (time - watched) on, however long ago the play event was.
        CASE WHEN event_type IN ('pause', 'complete', 'skip')
            THEN CAST(floor(GREATEST(COALESCE(CAST(get_json_object(details, '$.watched_sec') AS DOUBLE), 0.0), 0.0) * 1000000) AS BIGINT)
            ELSE 0 END AS watched_us,
        ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) AS copy_no
    FROM bronze
),
unique_events AS (
    SELECT * FROM numbered WHERE copy_no = 1
),
gaps AS (
    SELECT
        *,
        CASE
            WHEN LAG(t_us) OVER (PARTITION BY user_id, device ORDER BY t_us, event_id) IS NULL THEN 1
            WHEN t_us - watched_us - LAG(t_us) OVER (PARTITION BY user_id, device ORDER BY t_us, event_id) > {gap_us} THEN 1
            ELSE 0
        END AS starts_session
    FROM unique_events
),
sessions AS (
    SELECT
        *,
        SUM(starts_session) OVER (
            PARTITION BY user_id, device ORDER BY t_us, event_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_no
    FROM gaps
),
bounds AS (
    SELECT
        *,
        MIN(t_us) OVER (PARTITION BY user_id, device, session_no) AS session_start_us,
        MIN(occurred_at) OVER (PARTITION BY user_id, device, session_no) AS session_started_at
    FROM sessions
)
SELECT
    event_id, event_type, user_id, title_id, device, country, occurred_at, details, t_us,
    CAST(session_started_at AS DATE) AS session_date,
    CONCAT(user_id, ':', device, ':', CAST(CAST(floor(session_start_us / 1000) AS BIGINT) AS STRING))
        AS session_id,
    CAST(occurred_at AS DATE) AS event_date
FROM bounds
