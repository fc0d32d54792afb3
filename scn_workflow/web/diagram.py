"""The workflow diagram, drawn as SVG from the state machine's own definition (never by hand)."""

from __future__ import annotations

from collections import deque
from html import escape

from flask_babel import gettext, ngettext

from scn_workflow.web.labels import state_label, trigger_label

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 150, 56, 70, 60, 24
BACK_LIFT, BACK_LIFT_STEP = 34, 46  # height of a backward arc over one column, and per extra column
LABEL = 'font-size="11" fill="#222" stroke="#fff" stroke-width="4" paint-order="stroke"'  # a halo keeps it legible


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


def _lift(span: int) -> float:
    return BACK_LIFT + BACK_LIFT_STEP * (span - 1)


def workflow_svg(definition: dict, counts: dict[str, int] | None = None) -> str:
    """The states as boxes (with how many nominations each holds, when `counts` is given) and the
    triggers as labelled arrows: forward to the right, within a column downwards, backward as arcs
    (over the top from the first row, under the bottom from the others) so that no label sits on a box."""
    counts = counts or {}
    place = _layout(definition)
    moves = [(t["trigger"], source, t["to"]) for t in definition["triggers"] for source in t["from"]]
    back = [(name, s, d) for name, s, d in moves if place[d][0] < place[s][0]]
    over = [m for m in back if place[m[1]][1] == 0 and place[m[2]][1] == 0]
    under = [m for m in back if m not in over]
    room_top = max((_lift(place[s][0] - place[d][0]) * 0.75 for _, s, d in over), default=0) + 18
    room_bottom = max((_lift(place[s][0] - place[d][0]) * 0.75 for _, s, d in under), default=0) + 18
    columns = max(c for c, _ in place.values()) + 1
    rows = max(r for _, r in place.values()) + 1
    width = MARGIN * 2 + columns * (BOX_W + GAP_X) - GAP_X
    height = MARGIN * 2 + room_top + rows * (BOX_H + GAP_Y) - GAP_Y + room_bottom

    def box(state):
        column, row = place[state]
        return MARGIN + column * (BOX_W + GAP_X), MARGIN + room_top + row * (BOX_H + GAP_Y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" role="img" '
             f'aria-labelledby="wf-title" class="workflow" width="100%">',
             f'<title id="wf-title">{escape(gettext("Workflow of a nomination: states and the actions between them"))}</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>']
    arrivals: dict[str, int] = {}  # backward arcs into the same state arrive side by side
    labels = []
    for name, source, dest in moves:
        (sx, sy), (dx, dy) = box(source), box(dest)
        (scol, srow), (dcol, drow) = place[source], place[dest]
        label = escape(trigger_label(name))
        if dcol > scol:  # forward: right edge to left edge
            x1, y1, x2, y2 = sx + BOX_W, sy + BOX_H / 2, dx, dy + BOX_H / 2
            path = f"M{x1},{y1} C{x1 + GAP_X / 2},{y1} {x2 - GAP_X / 2},{y2} {x2},{y2}"
            labels.append(((x1 + x2) / 2, (y1 + y2) / 2 - (6 if y1 == y2 else -4), "middle", label))
        elif dcol == scol:  # within a column: straight down (or up), labelled beside the line
            down = drow > srow
            x = sx + BOX_W / 2
            y1, y2 = (sy + BOX_H, dy) if down else (sy, dy + BOX_H)
            path = f"M{x},{y1} L{x},{y2}"
            labels.append((x + 6, (y1 + y2) / 2 + 4, "start", label))
        else:  # backward: an arc, higher the more columns it spans
            span = scol - dcol
            lift = _lift(span)
            nth = arrivals[dest] = arrivals.get(dest, -1) + 1
            x1 = sx + BOX_W / 2
            x2 = dx + BOX_W / 2 + (16 - 32 * nth if nth < 3 else 0)
            if (name, source, dest) in over:
                y1, y2, sign = sy, dy, -1
            else:
                y1, y2, sign = sy + BOX_H, dy + BOX_H, 1
            path = f"M{x1},{y1} C{x1},{y1 + sign * lift} {x2},{y2 + sign * lift} {x2},{y2}"
            labels.append(((x1 + x2) / 2, (y1 + y2) / 2 + sign * lift * 0.75 + (-4 if sign < 0 else 12),
                           "middle", label))
        parts.append(f'<path d="{path}" fill="none" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for state in definition["states"]:
        x, y = box(state)
        terminal = state in definition["terminal"]
        fill = "#e8f1e8" if state == "handed_over" else "#f4e4e4" if terminal else "#e6eef8"
        parts.append(f'<g><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
                     f'stroke="#345" stroke-width="{2 if state == definition["initial"] else 1}"/>'
                     f'<text x="{x + BOX_W / 2}" y="{y + (24 if counts else 33)}" font-size="14" '
                     f'text-anchor="middle">{escape(state_label(state))}</text>')
        if counts:
            parts.append(f'<text x="{x + BOX_W / 2}" y="{y + 44}" font-size="12" text-anchor="middle" '
                         f'fill="#333">{escape(ngettext("%(num)s nomination", "%(num)s nominations", counts.get(state, 0)))}</text>')
        parts.append("</g>")
    # labels last, so that no line is drawn over one
    parts.extend(f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}" {LABEL}>{text}</text>'
                 for x, y, anchor, text in labels)
    parts.append("</svg>")
    return "\n".join(parts)
