"""Python values as JSON values, for reports that hold datetimes (`ops status --json`, the API's
/ops/status)."""

from datetime import datetime


def jsonable(value):
    """`value` with every datetime inside its dicts and lists as an ISO 8601 string."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value
