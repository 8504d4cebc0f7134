"""The recommendation API: ``GET /v1/recommendations/{user_id}`` on port 8080.

Assignment (experiments) and the member's features in parallel, then candidates, ranking and
post-ranking, inside a 100 ms budget with the remaining deadline passed to every call. A failing
or slow dependency steps the answer down the degradation ladder (level 0 full, 1 degraded,
2 fallback, 3 emergency) instead of failing it; the level and why are in every answer. Every
served list goes to Kafka as an impression event and a served record. See docs/api.md.
"""
