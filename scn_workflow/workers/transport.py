"""kombu's Redis transport with one client object per channel, for the relay's publishing.

kombu builds a new redis-py client for every message it publishes (Channel.conn_or_acquire), and
redis-py fills a table of some 170 reply callbacks in each client's constructor: a quarter of the
CPU a Celery publish costs (bench/floor.py measures a publish). Here a channel builds its client
once, on the channel's own connection pool (a new pool, as after a reconnection, gets a new client).
redis-py clients are safe to share between threads; everything else is kombu's. Used when
SCN_BROKER_URL is redis:// (workers/__init__.py); other brokers keep their own transport.
"""

from __future__ import annotations

from contextlib import contextmanager

from kombu.transport import redis


class Channel(redis.Channel):
    _scn_client = None  # (the pool it was built on, the client)

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool, kept = self.pool, self._scn_client
        if kept is None or kept[0] is not pool:
            kept = self._scn_client = (pool, self._create_client())
        yield kept[1]


class Transport(redis.Transport):
    Channel = Channel
