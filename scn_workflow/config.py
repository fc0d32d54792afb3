"""Configuration, read once from the environment (the variables of DESIGN.md)."""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from dataclasses import dataclass, replace

DEFAULT_BASE_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Settings:
    instance_path: str
    database_url: str
    broker_url: str | None = None
    secret_key: str = ""
    smtp_url: str | None = None
    mail_from: str = "scn-workflow@localhost"
    env: str = "development"
    redeliver_after_s: float = 60.0
    base_url: str = DEFAULT_BASE_URL  # SCN_BASE_URL: links in mails and packages
    # SCN_WEBHOOK_ALLOWED_NETWORKS: private ranges webhook URLs may reach all the same (an intranet receiver)
    webhook_allowed_networks: tuple = ()
    # SCN_TRUSTED_PROXIES: how many reverse proxies in front of the app set X-Forwarded-For; the client's
    # address is read that many hops back (0: the connecting address, no header believed)
    trusted_proxies: int = 0
    # SCN_RATELIMIT_STORAGE_URL: where the sign-in limits count (redis://...); unset: a redis:// broker, else
    # each process counts alone (memory://)
    ratelimit_storage_url: str | None = None
    # Not in DESIGN.md's table: tuning of the workers, with safe defaults.
    sweep_interval_s: float = 5.0  # SCN_SWEEP_INTERVAL_S: how often beat (or the embedded worker) sweeps
    # SCN_SWEEP_BATCH: the most outbox rows one sweep publishes (and locks while it does); after a long
    # broker outage the rest goes at the next sweeps instead of in one transaction of unbounded size.
    sweep_batch: int = 500
    # SCN_EXPORT_BATCH: the rows a CSV download reads per query, each in its own short read-only
    # transaction: a download of every row keeps one batch in memory and no transaction open while it is sent.
    export_batch: int = 1000
    max_retries: int = 5  # SCN_MAX_RETRIES: retries of a task before it becomes a recorded failure
    # SCN_RETRY_BASE_S: Celery's retry_backoff, whole seconds: the n-th retry waits a random time of at
    # most base * 2^n seconds (full jitter), never more than retry_cap_s.
    retry_base_s: int = 1
    retry_cap_s: int = 300
    embedded_autostart: bool = True  # start the in-process worker when SCN_BROKER_URL is unset
    # Operations thresholds (issue: operators): what `ops status` and the alerts call wrong.
    queue_max_age_s: float = 300.0  # SCN_QUEUE_MAX_AGE_S: oldest message older than this is a problem
    outbox_max_age_s: float = 120.0  # SCN_OUTBOX_MAX_AGE_S: unpublished outbox rows older than this
    stuck_after_h: float = 72.0  # SCN_STUCK_AFTER_H: a nomination waiting longer in submitted/reviewed
    alert_webhook_url: str | None = None  # SCN_ALERT_WEBHOOK_URL: also POST each alert here
    # SCN_HANDOVER_LINK_DAYS: how long the signed links to a handover's PDFs (and its acknowledgement) work
    handover_link_days: int = 30
    # SCN_ACK_AFTER_DAYS: a nomination handed over this many days ago without the lead agency's
    # acknowledgement is a problem operators see
    ack_after_days: int = 7

    @property
    def embedded_worker(self) -> bool:
        return not self.broker_url

    @classmethod
    def from_env(cls, instance_path: str, environ=None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        settings = cls(
            instance_path=instance_path,
            database_url=env.get("SCN_DATABASE_URL")
            or "sqlite:///" + os.path.join(instance_path, "scn-workflow.sqlite3"),
            broker_url=env.get("SCN_BROKER_URL") or None,
            secret_key=env.get("SCN_SECRET_KEY") or _development_secret(instance_path, env),
            smtp_url=env.get("SCN_SMTP_URL") or None,
            mail_from=env.get("SCN_MAIL_FROM") or cls.mail_from,
            env=env.get("SCN_ENV") or "development",
            redeliver_after_s=_float(env, "SCN_REDELIVER_AFTER_S", 60.0),
            base_url=(env.get("SCN_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            webhook_allowed_networks=_networks(env, "SCN_WEBHOOK_ALLOWED_NETWORKS"),
            trusted_proxies=_whole(env, "SCN_TRUSTED_PROXIES", 0, minimum=0),
            ratelimit_storage_url=env.get("SCN_RATELIMIT_STORAGE_URL") or None,
            sweep_interval_s=_float(env, "SCN_SWEEP_INTERVAL_S", 5.0),
            sweep_batch=_whole(env, "SCN_SWEEP_BATCH", 500),
            export_batch=_whole(env, "SCN_EXPORT_BATCH", 1000),
            max_retries=int(_float(env, "SCN_MAX_RETRIES", 5)),
            retry_base_s=_whole(env, "SCN_RETRY_BASE_S", 1),
            queue_max_age_s=_float(env, "SCN_QUEUE_MAX_AGE_S", 300.0),
            outbox_max_age_s=_float(env, "SCN_OUTBOX_MAX_AGE_S", 120.0),
            stuck_after_h=_float(env, "SCN_STUCK_AFTER_H", 72.0),
            alert_webhook_url=env.get("SCN_ALERT_WEBHOOK_URL") or None,
            handover_link_days=_whole(env, "SCN_HANDOVER_LINK_DAYS", 30),
            ack_after_days=_whole(env, "SCN_ACK_AFTER_DAYS", 7),
        )
        return replace(settings, **overrides)

    def problems(self) -> list[str]:
        """Why this configuration must not run in production (empty when it may)."""
        found = []
        if self.env not in ("development", "production"):
            found.append(f"SCN_ENV must be 'development' or 'production', not {self.env!r}.")
        if self.env == "production":
            if len(self.secret_key) < 16:
                found.append("SCN_SECRET_KEY must be set to a secret of 16 characters or more.")
            if self.base_url == DEFAULT_BASE_URL:
                found.append("SCN_BASE_URL must be set to the public address of the web app.")
            if self.database_url.startswith("sqlite"):
                found.append("SCN_DATABASE_URL must point at PostgreSQL, not SQLite.")
            if self.embedded_worker:
                found.append("SCN_BROKER_URL must be set: the embedded worker is for development only.")
        return found


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def _whole(env, name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise ValueError(f"{name} must be a whole number of {minimum} or more, not {raw!r}")
    return int(raw)


def _networks(env, name: str) -> tuple:
    """Comma-separated CIDRs, as ip_network objects."""
    found = []
    for part in (env.get(name) or "").split(","):
        if part.strip():
            try:
                found.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{name} must be comma-separated networks such as 10.0.0.0/8, not {part!r}") from None
    return tuple(found)


def _development_secret(instance_path: str, env) -> str:
    """Outside production without SCN_SECRET_KEY: a random key made once and kept in the instance
    folder, so no two installations share one and sessions survive a restart. Production must set
    SCN_SECRET_KEY (problems() says so)."""
    if (env.get("SCN_ENV") or "development") == "production":
        return ""
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path, encoding="ascii") as kept:
            key = kept.read().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(instance_path, exist_ok=True)
    key = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as kept:
        kept.write(key)
    return key
