"""The HTML report in a real browser: headless Chromium loads the file, with
JavaScript as it comes (the page has none), and the rendered DOM is checked.

A screenshot in a 480 px wide window is left at reports/report.png (git-ignored)
for a person to look at.  Skipped, saying why, when Chromium is not installed
(Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from greenpatch.reports.html import render_html
from greenpatch.reports.merge import Entry, merge
from tests.reports import samples
from tests.reports.dom import Node, parse

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "reports" / "report.png"

BROWSER = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",  # running as root in CI containers
        "--disable-gpu",
        # Nothing may leave the machine: no QUIC, no first-run pings, no updates, no sync.
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 60 s: {' '.join(command)}")
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    matrix = merge(
        [
            Entry(r, f"reports/{r.suite}.json")
            for r in [*samples.matrix_results(), samples.hostile_result()]
        ]
    )
    path = tmp_path_factory.mktemp("html") / "index.html"
    path.write_text(render_html(matrix), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rendered(report_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Node:
    profile = tmp_path_factory.mktemp("chromium-profile")
    done = _chromium(profile, "--dump-dom", report_file.as_uri())
    return parse(done.stdout)


def test_browser_renders_the_matrix_cells(rendered: Node) -> None:
    cells = {
        (row.find_all("th")[0].text, cell.attrs["data-python"]): cell
        for row in rendered.find_all("table", "matrix")[0].find_all("tr")[1:]
        for cell in row.find_all("td", "cell")
    }
    assert len(cells) == 3 * 3  # evil, redis, requests x 3.11, 3.12, 3.13
    assert cells[("redis", "3.11")].text == "2 regressions"
    assert "verdict-regression" in cells[("redis", "3.11")].classes
    assert "verdict-blocking" in cells[("redis", "3.12")].classes
    assert cells[("redis", "3.13")].text == "not run"
    assert "incomplete" in cells[("requests", "3.12")].classes
    assert "empty" in cells[("requests", "3.13")].classes


def test_browser_renders_the_regressions_section(rendered: Node) -> None:
    sections = rendered.find_all("section", "regressions")
    ids = [code.text for section in sections for code in section.find_all("code")]
    assert "tests/test_connection.py::test_read_timeout[hiredis]" in ids
    assert samples.HOSTILE_ID in ids  # shown as text, in full


def test_browser_runs_no_injected_markup(rendered: Node) -> None:
    # Had anything been unescaped, the parser would have made these elements.
    assert not rendered.find_all("script")
    assert not rendered.find_all("img")
    assert not rendered.find_all("b")
    [title] = rendered.find_all("title")[:1]
    assert title.text == "greenpatch compat report"


def test_browser_screenshot_in_a_narrow_window(report_file: Path, tmp_path: Path) -> None:
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    _chromium(tmp_path, f"--screenshot={SCREENSHOT}", "--window-size=480,900", report_file.as_uri())
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
