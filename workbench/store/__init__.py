"""Where market data is kept between runs: one interface, two backends.

The map of this subpackage:

* ``base.py``: :class:`MarketStore`, the interface (``get(key, rules)`` ->
  :class:`StoredFrame` or None, ``put(key, frame, fetched_at=, expires_at=, version=)``;
  the frame's format version is kept beside it, and an entry of another version is
  ``outdated``: not served, refetched) and :func:`open_store`, which picks the backend.
* ``parquet.py``: :class:`ParquetStore`, the default: parquet files under the cache
  directory (``workbench.data.cache``: atomic writes, validation on read, quarantine).
* ``redis.py``: :class:`RedisStore`, a cache a whole lab or team shares: versioned keys,
  Arrow IPC values, Redis expiry that follows the same freshness rules, and the local
  parquet store underneath it, so a Redis server that is down or unreachable costs one
  warning and nothing else (reads and writes go local; what was written meanwhile is
  uploaded when the server is back). :class:`RedisLink` is that connection-with-fallback,
  shared with the live publisher (``workbench.live.publish``).
* ``server.py``: :class:`RedisServer`, a throwaway ``redis-server`` on a free loopback
  port (tests, notebooks, benchmarks).

``load_bars`` (``workbench.data.yahoo``) reads and writes through :func:`open_store`:
parquet unless ``store=`` names a Redis URL or ``$WORKBENCH_REDIS_URL`` is set.
"""
from __future__ import annotations

from .base import MarketStore, StoredFrame, open_store
from .parquet import ParquetStore

__all__ = ["MarketStore", "StoredFrame", "ParquetStore", "open_store"]
