"""Validation messages as an answer can carry them: at most MAX_ERRORS, with how many there were,
so that a body full of bad items or unknown keys cannot make a large answer."""

from __future__ import annotations

MAX_ERRORS = 20


def count(messages) -> int:
    """How many messages `messages` holds (by field, nested by field or list position)."""
    if isinstance(messages, dict):
        return sum(count(v) for v in messages.values())
    if isinstance(messages, (list, tuple)):
        return sum(count(v) for v in messages)
    return 1


def capped(messages, limit: int = MAX_ERRORS) -> tuple[dict, int]:
    """(the first `limit` messages, keeping their fields; how many there were in all), with plain
    JSON keys (marshmallow names list positions by integers)."""
    room = [limit]

    def keep(value):
        if isinstance(value, dict):
            kept = {}
            for key, inner in value.items():
                if room[0] <= 0:
                    break
                inner_kept = keep(inner)
                if inner_kept not in ({}, []):
                    kept[str(key)] = inner_kept
            return kept
        if isinstance(value, (list, tuple)):
            kept = []
            for inner in value:
                if room[0] <= 0:
                    break
                inner_kept = keep(inner)
                if inner_kept not in ({}, []):
                    kept.append(inner_kept)
            return kept
        room[0] -= 1
        return value

    as_dict = messages if isinstance(messages, dict) else {"_schema": messages}
    return keep(as_dict), count(as_dict)


def summary(messages: dict, total: int | None = None) -> str:
    """'field: first message; projects.0.title: ...' for the messages given, then '… and N more'
    when `total` says there were more than those."""
    parts: list[str] = []

    def walk(prefix: str, value):
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(not isinstance(v, (dict, list)) for v in value):
            parts.append(f"{prefix}: {value[0]}")
        elif isinstance(value, list):
            for inner in value:
                walk(prefix, inner)
        else:
            parts.append(f"{prefix}: {value}")

    walk("", messages)
    text = "; ".join(parts)
    shown = count(messages)
    if total is not None and total > shown:
        text += f" … and {total - shown} more"
    return text
