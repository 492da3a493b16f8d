"""The dashboard knows every run state of runner/runs.py: a badge colour for each (white
text on it at a contrast of 4.5:1 or more, WCAG AA), the active ones as runs.ACTIVE says,
each in the state filter."""

import re
from pathlib import Path

from runner.runs import ACTIVE, RunState

DASHBOARD = Path(__file__).parents[2] / "runner" / "dashboard"


def contrast_with_white(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def test_every_state_has_a_badge_colour_readable_in_white() -> None:
    css = (DASHBOARD / "style.css").read_text()
    colours = {name: colour for names, colour in
               re.findall(r"((?:\.[A-Z]+, )*\.[A-Z]+) \{ background: (#[0-9a-f]{6}); \}", css)
               for name in re.findall(r"\.([A-Z]+)", names)}
    assert set(RunState) <= set(colours)
    assert {s: c for s, c in colours.items() if contrast_with_white(c) < 4.5} == {}


def test_the_dashboard_lists_the_states_of_runs_py() -> None:
    runs = (DASHBOARD / "runs.js").read_text()
    active = re.search(r"const ACTIVE = new Set\(\[(.*?)\]\)", runs)
    assert active and re.findall(r'"([A-Z]+)"', active[1]) == list(ACTIVE)
    page = (DASHBOARD / "index.html").read_text()
    select = re.search(r'<select name="state">(.*?)</select>', page)
    assert select and re.findall(r"<option>([A-Z]+)</option>", select[1]) == list(RunState)
    colours = re.search(r"const COLORS = \{(.*?)\};", (DASHBOARD / "charts.js").read_text(),
                        re.DOTALL)
    assert colours and set(re.findall(r"([A-Z]+):", colours[1])) == set(RunState)
