"""Settings of the batch pipelines: the ``pipelines`` section of ``recsys.config.Settings``
(``RECSYS_PIPELINES__*`` environment variables)::

    RECSYS_PIPELINES__ENGINE_THREADS=1 recsys pipeline run daily --date 2026-11-28
"""

from __future__ import annotations

from recsys.config import PipelinesSettings as PipelineSettings
from recsys.config import Settings

__all__ = ["PipelineSettings", "load_pipeline_settings"]


def load_pipeline_settings() -> PipelineSettings:
    """The section from the environment (and ``.env``), as every setting is read."""
    return Settings().pipelines
