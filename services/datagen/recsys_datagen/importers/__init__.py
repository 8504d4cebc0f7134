"""Real interaction data (MovieLens, MovieTweetings) imported through the platform's event path.

Parsers (:mod:`.movielens`, :mod:`.movietweetings`) read a dataset into a
:class:`~.source.SourceData`; :mod:`.mapping` turns it into events and catalog rows;
:mod:`.runner` stores the catalog and sends the events through the ingest API.
"""

from recsys_datagen.importers.mapping import ImportProfile, build_catalog, iter_events
from recsys_datagen.importers.movielens import read_movielens
from recsys_datagen.importers.movietweetings import read_movietweetings
from recsys_datagen.importers.runner import ImportReport, run_import
from recsys_datagen.importers.source import ImportFormatError, SourceData

__all__ = [
    "ImportFormatError",
    "ImportProfile",
    "ImportReport",
    "SourceData",
    "build_catalog",
    "iter_events",
    "read_movielens",
    "read_movietweetings",
    "run_import",
]
