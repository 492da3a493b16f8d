"""The dashboard is safe by construction: its scripts build DOM nodes (dom.js's h() and s(),
text as text nodes) and never hand a string to the HTML parser, so no value from the API can
become markup or script, whatever it holds."""

import re
from pathlib import Path

DASHBOARD = Path(__file__).parents[2] / "runner" / "dashboard"
PARSES_HTML = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|"
                         r"createContextualFragment|DOMParser|srcdoc")


def test_no_dashboard_script_parses_a_string_as_html() -> None:
    scripts = sorted(DASHBOARD.glob("*.js"))
    assert len(scripts) >= 5
    found = [f"{p.name}:{n}: {line.strip()}" for p in scripts
             for n, line in enumerate(p.read_text().splitlines(), 1) if PARSES_HTML.search(line)]
    assert found == []


def test_the_dashboard_page_has_no_inline_script_or_style() -> None:
    page = (DASHBOARD / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert re.findall(r"\sstyle=|<style|\son[a-z]+=", page) == []
