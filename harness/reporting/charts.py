"""Small SVG charts of a soak, made here (no plotting library): people would rather look.

`latency_svg`: every request of every scenario over the soak's time, its latency on the y
axis, one colour per scenario, bad replies drawn as crosses. `signatures_svg`: the running
count of log signature matches per class over the same time. Both read plain dicts (a
request's or a match's `as_dict()`), so they work from a live soak or from recorded data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 760, 340
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 40, 42
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#d62728")
CLASS_COLOURS = {"timeout": "#d62728", "failover": "#ff7f0e", "fallback": "#9467bd",
                 "error": "#8c564b", "warning": "#bcbd22"}


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1 or value == 0 else f"{value:.2g}"


class _Frame:
    def __init__(self, title: str, x_max: float, y_max: float, x_label: str, y_label: str,
                 markers: Sequence[tuple[float, str]] = (), grid: bool = True) -> None:
        self.x_max = max(x_max, 1e-9)
        self.y_step = _nice_step(max(y_max, 1e-9))
        self.y_max = max(self.y_step, math.ceil(max(y_max, 1e-9) / self.y_step) * self.y_step)
        self.x_step = _nice_step(self.x_max, 6)
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
            f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        ]
        plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.plot_w, self.plot_h = plot_w, plot_h
        y = 0.0
        while grid and y <= self.y_max + 1e-9:
            py = self.y(y)
            self.parts.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + plot_w}" '
                              f'y2="{py:.1f}" stroke="#e6e6e6"/>')
            self.parts.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">'
                              f'{_fmt(y)}</text>')
            y += self.y_step
        x = 0.0
        while x <= self.x_max + 1e-9:
            px = self.x(x)
            self.parts.append(f'<line x1="{px:.1f}" y1="{TOP + plot_h}" x2="{px:.1f}" '
                              f'y2="{TOP + plot_h + 4}" stroke="#333"/>')
            self.parts.append(f'<text x="{px:.1f}" y="{TOP + plot_h + 16}" '
                              f'text-anchor="middle">{_fmt(x)}</text>')
            x += self.x_step
        self.parts += [
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#333"/>',
            f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
            'stroke="#333"/>',
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f'{escape(x_label)}</text>',
            f'<text transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>',
        ]
        for at, label in markers:
            if 0 <= at <= self.x_max:
                px = self.x(at)
                self.parts.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" '
                                  f'y2="{TOP + plot_h}" stroke="#d62728" '
                                  'stroke-dasharray="4 3"/>')
                anchor, dx = ("end", -3) if at > self.x_max * 0.6 else ("start", 3)
                self.parts.append(f'<text x="{px + dx:.1f}" y="{TOP - 4}" fill="#d62728" '
                                  f'text-anchor="{anchor}">{escape(label)}</text>')
        self.legend_y = TOP + 4

    def x(self, value: float) -> float:
        return LEFT + value / self.x_max * self.plot_w

    def y(self, value: float) -> float:
        return TOP + self.plot_h - value / self.y_max * self.plot_h

    def legend(self, colour: str, text: str, cross: bool = False) -> None:
        lx = WIDTH - RIGHT + 14
        if cross:
            self.parts.append(_cross(lx + 5, self.legend_y + 5, colour))
        else:
            self.parts.append(f'<rect x="{lx}" y="{self.legend_y}" width="10" height="10" '
                              f'fill="{colour}"/>')
        self.parts.append(f'<text x="{lx + 16}" y="{self.legend_y + 9}">{escape(text)}</text>')
        self.legend_y += 16

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"]) + "\n"


def _cross(x: float, y: float, colour: str, r: float = 4.0) -> str:
    return (f'<path d="M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}M{x - r:.1f} '
            f'{y + r:.1f}L{x + r:.1f} {y - r:.1f}" stroke="{colour}" stroke-width="2"/>')


def latency_svg(requests: Sequence[dict[str, Any]], started: float, title: str,
                markers: Sequence[tuple[float, str]] = (), scenarios: Sequence[str] = ()) -> str:
    """Latency of every request by when its reply ended (seconds into the run), per scenario:
    a reply shows up when its outcome was known, so failures line up with the triggers."""
    scenarios = [*scenarios, *sorted({r["scenario"] for r in requests} - set(scenarios))]
    colours = {sid: PALETTE[i % len(PALETTE)] for i, sid in enumerate(scenarios)}
    x_max = max([r["ended"] - started for r in requests] + [m[0] for m in markers] + [1.0])
    y_max = max([r["seconds"] for r in requests] + [1.0])
    frame = _Frame(title, x_max, y_max, "seconds into the run (reply end)",
                   "latency (s)", markers)
    for r in sorted(requests, key=lambda r: r["ended"]):
        px, py = frame.x(r["ended"] - started), frame.y(r["seconds"])
        colour = colours[r["scenario"]]
        tip = (f"{r['scenario']} {r.get('step', '')}: {r['seconds']:.1f} s, "
               f"{r.get('verdict', '')}")
        if r.get("verdict") == "bad":
            frame.parts.append(f"<g><title>{escape(tip)}</title>{_cross(px, py, colour)}</g>")
        else:
            frame.parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.2" fill="{colour}" '
                               f'fill-opacity="0.8"><title>{escape(tip)}</title></circle>')
    for sid in scenarios:
        own = [r for r in requests if r["scenario"] == sid]
        bad = sum(r.get("verdict") == "bad" for r in own)
        frame.legend(colours[sid], f"{sid} ({len(own)}{f', {bad} bad' if bad else ''})")
    if any(r.get("verdict") == "bad" for r in requests):
        frame.legend("#333", "bad reply", cross=True)
    if not requests:
        frame.parts.append(f'<text x="{LEFT + 20}" y="{TOP + 30}">no requests</text>')
    return frame.svg()


def signatures_svg(matches: Sequence[dict[str, Any]], started: float, ended: float,
                   title: str, markers: Sequence[tuple[float, str]] = (),
                   classes: Sequence[str] = tuple(CLASS_COLOURS)) -> str:
    """Signature matches per class over time: one lane per class (every class is shown, so a
    class that never matched reads 0), bars of matches per time bucket, each lane scaled to its
    own peak so three failovers beside a hundred warnings still show."""
    classes = [*classes, *sorted({m["class"] for m in matches} - set(classes))]
    x_max = max([ended - started] + [m["seen"] - started for m in matches] + [1.0])
    buckets = 40
    width = x_max / buckets
    lane_h = (HEIGHT - TOP - BOTTOM) / max(len(classes), 1)
    frame = _Frame(title, x_max, 1.0, "seconds into the run (line read)", "", markers,
                   grid=False)
    for i, klass in enumerate(classes):
        colour = CLASS_COLOURS.get(klass, "#7f7f7f")
        top = TOP + i * lane_h
        counts = [0] * buckets
        for m in matches:
            if m["class"] == klass:
                counts[min(buckets - 1, max(0, int((m["seen"] - started) / width)))] += 1
        total, peak = sum(counts), max(counts)
        frame.parts.append(f'<line x1="{LEFT}" y1="{top + lane_h:.1f}" x2="{WIDTH - RIGHT}" '
                           f'y2="{top + lane_h:.1f}" stroke="#e6e6e6"/>')
        frame.parts.append(f'<text x="{LEFT - 6}" y="{top + lane_h / 2 + 4:.1f}" '
                           f'text-anchor="end">{escape(klass)}</text>')
        for b, count in enumerate(counts):
            if not count:
                continue
            h = (lane_h - 8) * count / peak
            frame.parts.append(
                f'<rect x="{frame.x(b * width) + 0.5:.1f}" y="{top + lane_h - h:.1f}" '
                f'width="{max(1.0, frame.x(width) - LEFT - 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(klass)}: {count} between '
                f'{b * width:.0f} and {(b + 1) * width:.0f} s</title></rect>')
        frame.parts.append(f'<text x="{WIDTH - RIGHT + 8}" y="{top + lane_h / 2 + 4:.1f}">'
                           f'{total} in all{f", peak {peak} per {width:.2g} s" if total else ""}'
                           '</text>')
    return frame.svg()


def soak_charts(run: Any) -> dict[str, str]:
    """Both charts of a live soak run, named for the report."""
    markers = []
    stopped = next((d for d in run.decisions if d.decides and d.fired_at), None)
    if stopped is not None and run.stopped_by:
        markers.append((stopped.fired_at - run.started, f"stopped: {run.stopped_by}"))
    elif run.window.window_s:
        markers.append((run.window.window_s, "window end"))
    requests = list(run.requests())  # every request (from the run's record file if any)
    matches = [m.as_dict() for m in run.matches]
    ended = run.ended or max([r["ended"] for r in requests] + [run.started])
    return {
        f"{run.label} latency over time": latency_svg(
            requests, run.started, f"{run.label}: latency per request, by scenario", markers,
            run.scenario_ids),
        f"{run.label} signatures over time": signatures_svg(
            matches, run.started, ended, f"{run.label}: gateway log signatures per class",
            markers),
    }
