"""The autoscale run as an SVG chart, written by hand (no plotting library): three
panels over the same time axis — backlog (visible messages) against the capacity
the running workers are allowed (target × workers), workers (running and desired),
and the age of the oldest message not yet processed against the acceptable latency.
Bursts are shaded."""

from html import escape

W, PANEL_H, LEFT, RIGHT, TOP, GAP = 900, 170, 60, 20, 40, 40


def _axis_max(v):
    for m in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if v <= m:
            return m
    return v


def write(path, rows, bursts, target, latency, max_workers, title=""):
    t_max = max(r["t"] for r in rows) or 1
    plot_w = W - LEFT - RIGHT
    x = lambda t: LEFT + plot_w * t / t_max  # noqa: E731
    panels = [
        ("backlog (visible messages)", [("visible", "#1f77b4", False),
                                        ("capacity", "#999999", True)],
         _axis_max(max(max(r["visible"] for r in rows), target * max(r["workers"] for r in rows)))),
        ("workers", [("workers", "#2ca02c", False), ("desired", "#ff7f0e", True)],
         max_workers),
        ("oldest message age (s)", [("oldest_age_s", "#d62728", False), ("latency", "#999999", True)],
         _axis_max(max(max(r["oldest_age_s"] for r in rows), latency) * 1.1)),
    ]
    h = TOP + len(panels) * (PANEL_H + GAP) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{h}" fill="white"/>',
           f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>']
    for i, (name, series, y_max) in enumerate(panels):
        top = TOP + i * (PANEL_H + GAP)
        y = lambda v: top + PANEL_H - PANEL_H * min(v, y_max) / y_max  # noqa: E731
        for s, n, d in bursts:
            out.append(f'<rect x="{x(s):.1f}" y="{top}" width="{max(2, x(s + d) - x(s)):.1f}" '
                       f'height="{PANEL_H}" fill="#fdf0d5"/>')
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" '
                   f'fill="none" stroke="#333"/>')
        for k in range(5):
            v = y_max * k / 4
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                       f'{v:g}</text>')
        out.append(f'<text x="{LEFT}" y="{top - 6}" font-weight="bold">{escape(name)}</text>')
        lx = LEFT + 220
        for key, colour, dashed in series:
            if key == "capacity":
                vals = [(r["t"], target * r["workers"]) for r in rows]
                label = f"target {target:g} × workers"
            elif key == "latency":
                vals = [(0, latency), (t_max, latency)]
                label = f"acceptable latency {latency:g}s"
            else:
                vals = [(r["t"], r[key]) for r in rows]
                label = key
            if key in ("workers", "desired", "capacity"):   # steps
                pts, prev = [], None
                for t, v in vals:
                    if prev is not None:
                        pts.append(f"{x(t):.1f},{y(prev):.1f}")
                    pts.append(f"{x(t):.1f},{y(v):.1f}")
                    prev = v
            else:
                pts = [f"{x(t):.1f},{y(v):.1f}" for t, v in vals]
            dash = ' stroke-dasharray="5,3"' if dashed else ""
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} '
                       f'points="{" ".join(pts)}"/>')
            out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{top - 10}" y2="{top - 10}" '
                       f'stroke="{colour}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{lx + 22}" y="{top - 6}">{escape(label)}</text>')
            lx += 40 + 7 * len(label)
        step = 5 if t_max <= 80 else 20
        for k in range(0, int(t_max) + 1, step):
            out.append(f'<text x="{x(k):.1f}" y="{top + PANEL_H + 13}" text-anchor="middle">'
                       f'{k}s</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
