"""What the browser tests of the dashboard share: axe-core's check (from tests/.npm, where
`make test` installs it) and the no-horizontal-overflow check with a viewport screenshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).parents[1] / ".npm" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
           ".filter((v) => ['serious', 'critical'].includes(v.impact))"
           ".map((v) => `${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' '))"
           ".join(', ')}`)")


def accessible(page: Any, name: str) -> None:
    """axe-core in the page (the context bypasses the CSP) finds no serious or critical
    violation."""
    assert AXE.exists(), f"{AXE} is missing: `make test` installs it (npm install --prefix " \
                         "tests/.npm axe-core)"
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(SERIOUS)
    assert found == [], f"{name}: {found}"


def fits(page: Any, name: str, shots: Path) -> None:
    """No horizontal scroll of the page at 800 and 1400 px; the viewport at 1400 px into
    shots/NAME.png."""
    for width in (800, 1400):
        page.set_viewport_size({"width": width, "height": 900})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide at {width}"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / f"{name}.png"))
