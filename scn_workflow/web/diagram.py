"""The workflow diagram, drawn as SVG from the state machine's own definition (never by hand)."""

from __future__ import annotations

from collections import deque
from html import escape

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 150, 56, 70, 60, 30


def _layout(definition: dict) -> dict[str, tuple[int, int]]:
    """Column = shortest distance from the initial state; row = order within the column."""
    depth = {definition["initial"]: 0}
    queue = deque([definition["initial"]])
    edges = [(source, t["to"]) for t in definition["triggers"] for source in t["from"]]
    while queue:
        state = queue.popleft()
        for source, dest in edges:
            if source == state and dest not in depth:
                depth[dest] = depth[state] + 1
                queue.append(dest)
    for state in definition["states"]:
        depth.setdefault(state, max(depth.values()) + 1)
    rows: dict[int, int] = {}
    place = {}
    for state in definition["states"]:
        column = depth[state]
        place[state] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return place


def workflow_svg(definition: dict, counts: dict[str, int] | None = None) -> str:
    counts = counts or {}
    place = _layout(definition)
    width = MARGIN * 2 + (max(c for c, _ in place.values()) + 1) * (BOX_W + GAP_X) - GAP_X
    height = MARGIN * 2 + 40 + (max(r for _, r in place.values()) + 1) * (BOX_H + GAP_Y) - GAP_Y

    def box(state):
        column, row = place[state]
        return MARGIN + column * (BOX_W + GAP_X), MARGIN + 40 + row * (BOX_H + GAP_Y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="wf-title" class="workflow" width="100%">',
             '<title id="wf-title">Workflow of a nomination: states and the triggers between them</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>']
    for trigger in definition["triggers"]:
        for source in trigger["from"]:
            (sx, sy), (dx, dy) = box(source), box(trigger["to"])
            label = escape(trigger["trigger"])
            if place[trigger["to"]][0] > place[source][0]:  # forward: right edge to left edge
                x1, y1, x2, y2 = sx + BOX_W, sy + BOX_H / 2, dx, dy + BOX_H / 2
                path = f"M{x1},{y1} C{x1 + GAP_X / 2},{y1} {x2 - GAP_X / 2},{y2} {x2},{y2}"
                lx, ly = (x1 + x2) / 2, (y1 + y2) / 2 - 6
            else:  # back to an earlier state: an arc over the top
                x1, y1, x2, y2 = sx + BOX_W / 2, sy, dx + BOX_W / 2, dy
                lift = 32 + 8 * place[source][0]
                path = f"M{x1},{y1} C{x1},{y1 - lift} {x2},{y2 - lift} {x2},{y2}"
                lx, ly = (x1 + x2) / 2, min(y1, y2) - lift * 0.75
            parts.append(f'<path d="{path}" fill="none" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>')
            parts.append(f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="11" text-anchor="middle" fill="#222">{label}</text>')
    for state in definition["states"]:
        x, y = box(state)
        terminal = state in definition["terminal"]
        fill = "#e8f1e8" if state == "handed_over" else "#f4e4e4" if terminal else "#e6eef8"
        parts.append(f'<g><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
                     f'stroke="#345" stroke-width="{2 if state == definition["initial"] else 1}"/>'
                     f'<text x="{x + BOX_W / 2}" y="{y + 22}" font-size="14" text-anchor="middle" '
                     f'font-family="monospace">{escape(state)}</text>')
        if state in counts or counts:
            parts.append(f'<text x="{x + BOX_W / 2}" y="{y + 42}" font-size="12" text-anchor="middle" '
                         f'fill="#333">{counts.get(state, 0)} nomination(s)</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)
