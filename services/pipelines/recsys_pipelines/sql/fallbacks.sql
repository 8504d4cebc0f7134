-- Fallback lists as of {as_of}: the most engaging titles of the {first} .. {as_of} window, per
-- country (titles available there), per country and genre, and globally (docs/models.md).
-- Inputs: `playback` (silver_playback), `ratings` (silver_ratings), `titles` (dim_titles).
--
-- Engagement is counted once per member, title and country, so a member replaying a title (or a
-- client resending) adds nothing: 1 for playing or rating it, +1 if a playback completed, plus
-- (rating - 3) / 2 for their latest rating (-1 .. +1). A list ranks by the country's engagement,
-- then the global engagement, then the catalog's popularity prior, then title id: a country
-- with little traffic of its own still gets a full list of titles available there.
-- DuckDB SQL (unnest of the lists); the output is small and never leaves one machine.
WITH plays AS (
    SELECT user_id, title_id, country, MAX(CASE WHEN completed THEN 1 ELSE 0 END) AS completed
    FROM playback
    WHERE event_date >= {first} AND event_date <= {as_of} AND country IS NOT NULL
    GROUP BY user_id, title_id, country
),
rates AS (
    SELECT user_id, title_id, country, arg_max(rating, rated_at) AS rating
    FROM ratings
    WHERE event_date >= {first} AND event_date <= {as_of} AND country IS NOT NULL
    GROUP BY user_id, title_id, country
),
engaged AS (
    SELECT
        COALESCE(p.title_id, r.title_id) AS title_id,
        COALESCE(p.country, r.country) AS country,
        1.0 + COALESCE(p.completed, 0) + COALESCE((r.rating - 3) / 2.0, 0.0) AS weight
    FROM plays p
    FULL OUTER JOIN rates r
        ON p.user_id = r.user_id AND p.title_id = r.title_id AND p.country = r.country
),
country_score AS (
    SELECT country, title_id, SUM(weight) AS score FROM engaged GROUP BY country, title_id
),
global_score AS (
    SELECT title_id, SUM(weight) AS score FROM engaged GROUP BY title_id
),
catalog AS (
    SELECT
        t.title_id,
        t.genres,
        t.available_countries,
        COALESCE(g.score, 0.0) AS global_score,
        COALESCE(t.popularity, 0.0) AS prior
    FROM titles t
    LEFT JOIN global_score g ON g.title_id = t.title_id
),
available AS (
    SELECT c.title_id, c.genres, c.global_score, c.prior, a.country
    FROM catalog c, unnest(c.available_countries) AS a(country)
),
scored AS (
    SELECT v.*, COALESCE(s.score, 0.0) AS country_score
    FROM available v
    LEFT JOIN country_score s ON s.country = v.country AND s.title_id = v.title_id
),
by_country AS (
    SELECT
        'country' AS list,
        country,
        CAST(NULL AS VARCHAR) AS genre,
        title_id,
        country_score AS score,
        ROW_NUMBER() OVER (
            PARTITION BY country
            ORDER BY country_score DESC, global_score DESC, prior DESC, title_id
        ) AS rank
    FROM scored
),
by_genre AS (
    SELECT
        'country_genre' AS list,
        country,
        g.genre,
        title_id,
        country_score AS score,
        ROW_NUMBER() OVER (
            PARTITION BY country, g.genre
            ORDER BY country_score DESC, global_score DESC, prior DESC, title_id
        ) AS rank
    FROM scored, unnest(scored.genres) AS g(genre)
),
by_world AS (
    SELECT
        'global' AS list,
        CAST(NULL AS VARCHAR) AS country,
        CAST(NULL AS VARCHAR) AS genre,
        title_id,
        global_score AS score,
        ROW_NUMBER() OVER (ORDER BY global_score DESC, prior DESC, title_id) AS rank
    FROM catalog
)
SELECT list, country, genre, title_id, score, CAST(rank AS INT) AS rank
FROM (
    SELECT * FROM by_country
    UNION ALL
    SELECT * FROM by_genre
    UNION ALL
    SELECT * FROM by_world
)
WHERE rank <= {top_n}
ORDER BY list, country, genre, rank
