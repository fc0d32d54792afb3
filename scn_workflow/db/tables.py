"""The schema, as SQLAlchemy Core tables. Alembic migrations in migrations/ create it."""

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from scn_workflow.domain.model import Project

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite keeps them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class ProjectList(TypeDecorator):
    """A nomination's projects: domain `Project` values stored as a JSON list."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return [p.as_dict() for p in value] if value is not None else []

    def process_result_value(self, value, dialect):
        return [Project(**p) for p in value or []]


BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
now_utc = lambda: datetime.now(timezone.utc)  # noqa: E731

member_states = sa.Table(
    "member_states", metadata,
    sa.Column("code", sa.String(2), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("lead_agency_name", sa.String(300)),
    sa.Column("lead_agency_email", sa.String(254)),
    sa.Column("lead_agency_webhook_url", sa.String(2000)),
    sa.Column("lead_agency_webhook_secret", sa.String(200)),
    sa.Column("lead_agency_language", sa.String(5), nullable=False, server_default="en"),  # of its dossier
)

cycles = sa.Table(
    "cycles", metadata,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("opens_at", UTCDateTime(), nullable=False),
    sa.Column("closes_at", UTCDateTime(), nullable=False),
    sa.Column("limit_per_state", sa.Integer, nullable=False, server_default="3"),
    sa.Column("requires_action_plan", sa.Boolean, nullable=False, server_default=sa.false()),
)

limit_overrides = sa.Table(
    "limit_overrides", metadata,
    sa.Column("cycle_code", sa.String(40), sa.ForeignKey("cycles.code"), primary_key=True),
    sa.Column("member_state", sa.String(2), sa.ForeignKey("member_states.code"), primary_key=True),
    sa.Column("limit", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("set_by", sa.String(80), nullable=False),
    sa.Column("set_at", UTCDateTime(), nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(80), nullable=False, unique=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("member_state", sa.String(2), sa.ForeignKey("member_states.code")),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("name", sa.String(120)),  # the display name mails greet
    sa.Column("language", sa.String(5), nullable=True),  # en or id; NULL: the browser's Accept-Language
    sa.Column("mail_digest", sa.Boolean, nullable=False, server_default=sa.false()),  # one mail a day
    sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
)

web_sessions = sa.Table(
    "web_sessions", metadata,
    # A signed-in browser: the cookie holds the random id, this row says whether it still counts.
    sa.Column("id_hash", sa.String(64), primary_key=True),  # sha256 of the id in the cookie
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime()),  # sign-out, deactivation, a password change
    sa.Index("ix_web_sessions_user", "user_id"),
)

nominations = sa.Table(
    "nominations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reference", sa.String(60), nullable=False, unique=True),
    sa.Column("member_state", sa.String(2), sa.ForeignKey("member_states.code"), nullable=False),
    sa.Column("cycle", sa.String(40), sa.ForeignKey("cycles.code"), nullable=False),
    sa.Column("city_name", sa.String(120), nullable=False),
    sa.Column("region", sa.String(120)),
    sa.Column("population", sa.BigInteger),
    sa.Column("csco_name", sa.String(120)),
    sa.Column("csco_email", sa.String(254)),
    sa.Column("vision", sa.Text),
    sa.Column("focus_areas", sa.JSON, nullable=False),
    sa.Column("projects", ProjectList, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("submitted_at", UTCDateTime()),
    sa.Column("reviewed_by", sa.String(80)),
    sa.Column("assessment", sa.JSON),
    sa.Column("checks_outcome", sa.String(20)),
    sa.Column("last_event_hash", sa.String(64)),
    sa.Column("event_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_nominations_ms_cycle_state", "member_state", "cycle", "state"),
    sa.Index("ix_nominations_state_updated", "state", "updated_at"),
    # Lists (services/search.py), newest change first or oldest: the whole table, a submitter's
    # member state, a reviewer's view (ever submitted).
    sa.Index("ix_nominations_updated", "updated_at", "id"),
    sa.Index("ix_nominations_ms_updated", "member_state", "updated_at", "id"),
    sa.Index("ix_nominations_submitted_updated", "updated_at", "id",
             postgresql_where=sa.text("submitted_at IS NOT NULL"), sqlite_where=sa.text("submitted_at IS NOT NULL")),
    # `q` (ILIKE '%…%') on PostgreSQL (pg_trgm). SQLite has no trigram index: there they are
    # empty (WHERE 0), which keeps this one schema for both databases at no cost.
    sa.Index("ix_nominations_city_trgm", "city_name", postgresql_using="gin",
             postgresql_ops={"city_name": "gin_trgm_ops"}, postgresql_with={"fastupdate": "off"},
             sqlite_where=sa.false()),
    sa.Index("ix_nominations_region_trgm", "region", postgresql_using="gin",
             postgresql_ops={"region": "gin_trgm_ops"}, postgresql_with={"fastupdate": "off"},
             sqlite_where=sa.false()),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("nomination_id", sa.Integer, sa.ForeignKey("nominations.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("from_state", sa.String(20)),
    sa.Column("to_state", sa.String(20)),
    sa.Column("comment", sa.Text),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("correlation_id", sa.String(64)),  # the request that caused it (not part of the hash)
    sa.UniqueConstraint("nomination_id", "seq", name="uq_events_nomination_seq"),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the event id; also the message id
    sa.Column("event_name", sa.String(40), nullable=False),
    sa.Column("nomination_id", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("published_at", UTCDateTime()),
    sa.Column("publish_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("queues", sa.JSON),  # the queues that react to it, fixed when first published
    sa.Column("completed_at", UTCDateTime()),  # every reaction recorded
    sa.Column("last_error", sa.Text),
    sa.Column("correlation_id", sa.String(64)),
    sa.Index("ix_outbox_unpublished", "created_at",
             postgresql_where=sa.text("published_at IS NULL"), sqlite_where=sa.text("published_at IS NULL")),
    sa.Index("ix_outbox_incomplete", "published_at",
             postgresql_where=sa.text("completed_at IS NULL"), sqlite_where=sa.text("completed_at IS NULL")),
)

checks = sa.Table(
    "checks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("nomination_id", sa.Integer, sa.ForeignKey("nominations.id"), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),  # the submission it checked
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(10), nullable=False),  # passed, warning, failed
    sa.Column("blocking", sa.Boolean, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("ran_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("event_id", "name", name="uq_checks_event_name"),
    sa.Index("ix_checks_nomination", "nomination_id"),
)

effects = sa.Table(
    "effects", metadata,
    # One row per effect of an event (a mail to one address, a check run, a delivery):
    # the idempotency record that makes a redelivered message change nothing.
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("effect", sa.String(300), primary_key=True),  # "mail:" or "digest:" and an address of up to 254
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("detail", sa.Text),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("nomination_id", sa.Integer, sa.ForeignKey("nominations.id"), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),  # webhook, email
    sa.Column("target", sa.String(2000), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # accepted, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_deliveries_nomination", "nomination_id"),
)

failures = sa.Table(
    "failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("task", sa.String(120), nullable=False),
    sa.Column("event_id", sa.String(36)),
    sa.Column("arguments", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failed_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="open"),  # open, retried, discarded
    sa.Column("resolved_by", sa.String(80)),
    sa.Column("resolved_at", UTCDateTime()),
)

webhooks = sa.Table(
    "webhooks", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

attachments = sa.Table(
    "attachments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("nomination_id", sa.Integer, sa.ForeignKey("nominations.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),  # action_plan, ...
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),  # sha256; the stored file's name
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("uploaded_by", sa.String(80), nullable=False),
    sa.Column("uploaded_at", UTCDateTime(), nullable=False),
    sa.Index("ix_attachments_nomination", "nomination_id"),
)

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # sha256 of the bearer token
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Index("ix_api_tokens_user", "user_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    # A retried POST with the same key returns the first answer and creates nothing new.
    sa.Column("username", sa.String(80), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("location", sa.String(500)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

task_runs = sa.Table(
    "task_runs", metadata,
    # One row per task execution, written by the workers through Celery signals.
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task", sa.String(120), nullable=False),
    sa.Column("event_id", sa.String(64)),
    sa.Column("outcome", sa.String(20), nullable=False),  # succeeded, retried, failed
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("worker", sa.String(200)),
    sa.Index("ix_task_runs_finished", "finished_at"),
)

worker_heartbeats = sa.Table(
    "worker_heartbeats", metadata,
    sa.Column("hostname", sa.String(200), primary_key=True),
    sa.Column("queues", sa.JSON, nullable=False),
    sa.Column("running", sa.JSON, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
)

queue_samples = sa.Table(
    "queue_samples", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("taken_at", UTCDateTime(), nullable=False),
    sa.Column("queue", sa.String(40), nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("oldest_age_s", sa.Float),
    sa.Index("ix_queue_samples_taken", "taken_at"),
)

reminders = sa.Table(
    "reminders", metadata,
    # One reminder per nomination, state and waiting period: beat may sweep as often as it likes.
    sa.Column("nomination_id", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(20), primary_key=True),
    sa.Column("period", sa.Integer, primary_key=True),
    sa.Column("sent_at", UTCDateTime(), nullable=False),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime()),
    sa.Index("ix_incidents_open", "key", postgresql_where=sa.text("closed_at IS NULL"),
             sqlite_where=sa.text("closed_at IS NULL")),
)
