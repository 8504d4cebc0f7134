"""The Iceberg bronze table: every event on the events topic, appended exactly once.

    writer = BronzeWriter(Settings(), load_bronze_settings())
    await writer.run()  # until writer.stop()

See docs/bronze-lake.md for the design (micro-commits, offsets in snapshot summaries, rejects).
"""

from recsys_bronze.batch import CommitResult
from recsys_bronze.settings import BronzeSettings, load_bronze_settings
from recsys_bronze.writer import BronzeWriter

__all__ = ["BronzeSettings", "BronzeWriter", "CommitResult", "load_bronze_settings"]
