"""Limits on failed sign-ins (the sign-in form and POST /api/v1/tokens), shared by every process.

The `limits` library (the one beneath Flask-Limiter; its request hooks would cost every request
for limits this service applies only to sign-ins) keeps the counts in its storage: Redis when SCN_RATELIMIT_STORAGE_URL or a
redis:// SCN_BROKER_URL names one (every process and machine counts together), else memory (one
process; development). Only failures count; each is counted three ways, and a sign-in is refused
(429 with Retry-After, before the password is checked) when

1. its address has failed FAILURES_PER_ADDRESS times (any usernames): one address spraying a
   password over many usernames stops there;
2. its address has failed FAILURES_PER_ACCOUNT_AT_ADDRESS times for that username: guessing one
   person's password from one address stops there, and no other address is affected;
3. that username has failed FAILURES_PER_ACCOUNT times from all addresses together AND this
   address has failed for it recently (within window 2). Guesses at one account from many
   addresses stop there, yet the account is never locked: its owner, at an address with no
   recent failure for it, still signs in. The price is that each fresh address gets one guess
   (then it has failed); an attacker's guesses stay bounded by the addresses they control.

The client's address is the connecting one, or the one SCN_TRUSTED_PROXIES proxies report
(ProxyFix in app.py). When the storage cannot be reached, sign-in stays open and the error is
logged: a Redis outage must not lock everyone out (the password hash still slows guessing).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Flask, current_app, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

FAILURES_PER_ADDRESS = parse("20 per 10 minutes")
FAILURES_PER_ACCOUNT_AT_ADDRESS = parse("5 per 15 minutes")
FAILURES_PER_ACCOUNT = parse("20 per hour")
log = logging.getLogger(__name__)


class TooManySignIns(TooManyRequests):
    """429 with the whole seconds to wait in `retry_after` (and its Retry-After header)."""

    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed sign-ins; try again in {retry_after} seconds.", retry_after=retry_after)


class SignInLimits:
    """The three counts of the module's note, in a `limits` storage."""

    def __init__(self, strategy: MovingWindowRateLimiter):
        self.strategy = strategy

    @staticmethod
    def _keys(address: str, username: str) -> dict[RateLimitItem, tuple[str, ...]]:
        # A username from outside may hold anything: the storage sees a fixed-length digest of it.
        account = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]
        return {FAILURES_PER_ADDRESS: ("scn-sign-in", address),
                FAILURES_PER_ACCOUNT_AT_ADDRESS: ("scn-sign-in", address, account),
                FAILURES_PER_ACCOUNT: ("scn-sign-in", account)}

    def _wait(self, item: RateLimitItem, keys: tuple[str, ...]) -> int:
        reset_at = self.strategy.get_window_stats(item, *keys).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def check(self, address: str, username: str) -> None:
        """Raise TooManySignIns when a sign-in from `address` as `username` must wait."""
        keys, strategy = self._keys(address, username), self.strategy
        try:
            waits = [self._wait(item, keys[item]) for item in (FAILURES_PER_ADDRESS, FAILURES_PER_ACCOUNT_AT_ADDRESS)
                     if not strategy.test(item, *keys[item])]
            here = strategy.get_window_stats(FAILURES_PER_ACCOUNT_AT_ADDRESS, *keys[FAILURES_PER_ACCOUNT_AT_ADDRESS])
            failed_here = here.remaining < FAILURES_PER_ACCOUNT_AT_ADDRESS.amount
            if failed_here and not strategy.test(FAILURES_PER_ACCOUNT, *keys[FAILURES_PER_ACCOUNT]):
                # over once the account's window frees a place, or this address's failures age out
                waits.append(min(self._wait(FAILURES_PER_ACCOUNT, keys[FAILURES_PER_ACCOUNT]),
                                 FAILURES_PER_ACCOUNT_AT_ADDRESS.get_expiry()))
        except Exception:  # noqa: BLE001 - the storage's errors depend on its backend; see the module's note
            log.exception("The sign-in limits' storage failed; this sign-in is not limited.")
            return
        if waits:
            raise TooManySignIns(max(waits))

    def failed(self, address: str, username: str) -> None:
        """Count one failed sign-in."""
        try:
            for item, keys in self._keys(address, username).items():
                self.strategy.hit(item, *keys)
        except Exception:  # noqa: BLE001 - as in check
            log.exception("The sign-in limits' storage failed; this failure is not counted.")


# A Redis that accepts connections but never answers must not hang a sign-in: after this long the
# storage counts as down and the sign-in goes on unlimited (see check).
STORAGE_TIMEOUTS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


def storage_uri(settings) -> str:
    """Where the counts live: SCN_RATELIMIT_STORAGE_URL, else a Redis broker, else this process."""
    if settings.ratelimit_storage_url:
        return settings.ratelimit_storage_url
    if (settings.broker_url or "").startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def init_app(app: Flask, settings) -> None:
    """One storage per app (two apps in one process, as in tests, keep their own counts)."""
    storage = storage_from_string(storage_uri(settings), **STORAGE_TIMEOUTS)
    app.extensions["scn_sign_in_limits"] = SignInLimits(MovingWindowRateLimiter(storage))


def client_address() -> str:
    """The client's address (behind SCN_TRUSTED_PROXIES proxies, the one they report: ProxyFix
    sets remote_addr)."""
    return request.remote_addr or "127.0.0.1"


def sign_in_limits() -> SignInLimits:
    return current_app.extensions["scn_sign_in_limits"]
