"""Liveness and readiness."""

import sqlalchemy as sa
from flask import Blueprint, jsonify

from scn_workflow.current import svc

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database (and the broker, when one is configured) answer within a short timeout."""
    services = svc()
    checks = {}
    try:
        with services.uow(read_only=True) as uow:
            uow.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        checks["database"] = f"failed: {type(exc).__name__}"
    if services.settings.broker_url:
        checks["broker"] = _broker_status(services.settings.broker_url)
    else:
        checks["broker"] = "embedded"
    ready = all(v in ("ok", "embedded") for v in checks.values())
    failed = [name for name, v in checks.items() if v not in ("ok", "embedded")]
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    if failed:
        body["failed"] = failed
    return jsonify(body), 200 if ready else 503


def _broker_status(url: str) -> str:
    from kombu import Connection
    try:
        with Connection(url, connect_timeout=1, transport_options={"socket_timeout": 1,
                                                                    "socket_connect_timeout": 1}) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"failed: {type(exc).__name__}"
