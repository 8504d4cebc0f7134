"""The recommendation API (issue 13). Today: post-ranking, the last stage of a request
(postrank.py). The FastAPI service (port 8080), its degradation ladder and the served-list log are
planned (docs/api.md)."""
