"""The regulator's index: the registry's events, followed from a node into a database.

- :func:`index` follows the events into SQLite (default) or PostgreSQL, resumably and idempotently,
  noticing a restarted chain or a reorganisation (:mod:`rxchain.indexer.core`);
- :func:`verify` re-reads a sample (or all) of the indexed events and states from a node and reports
  every difference (:mod:`rxchain.indexer.check`);
- :mod:`rxchain.indexer.queries` computes the console's figures from the database;
- :func:`rxchain.indexer.bench.bench` measures indexing throughput on a generated workload.

``python -m rxchain.indexer --help`` runs the same as ``rx index``.
"""

from rxchain.indexer.core import IndexStats, Indexer, IndexerError, index
from rxchain.indexer.db import Database, DatabaseError
from rxchain.indexer.check import verify

__all__ = ["Database", "DatabaseError", "IndexStats", "Indexer", "IndexerError", "index", "verify"]
