"""leaderboard.html as a browser renders it (headless Chromium): strings from configs and
plugins show as text, never as markup or script; plots are embedded."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers.records import found, record

from xbench.leaderboard.board import build_leaderboard
from xbench.leaderboard.publish import write_report

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
SCRIPT = "<script>document.title='pwned';document.body.append(Object.assign(document.createElement('div'),{id:'injected'}))</script>"  # noqa: E501
BOLD = "<b>bold</b>"
IMAGE = "<img src=x onerror=\"document.title='pwned'\">"


class _Dom(HTMLParser):
    """Tags, ids, title and text of a serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.ids += [attrs["id"]] if "id" in attrs else []
        self.images += [attrs.get("src", "")] if tag == "img" else []
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.text.append(data)


def chromium() -> str:
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path
    pytest.fail(
        "headless Chromium is needed to check leaderboard.html: install it "
        "(Debian/Ubuntu: apt-get install -y chromium)"
    )


def render(page: Path, profile: Path) -> _Dom:
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)
    return dom


@pytest.mark.browser
@pytest.mark.slow
def test_html_from_configs_and_plugins_renders_as_text(tmp_path):
    task = f"qa{BOLD}"
    records = [
        record("flash", primary=0.6, task=task),
        record(f"evil{SCRIPT}", primary=0.5, task=task),
        record("broken", status="failed", error=f"ValueError: {IMAGE}\nmore", task=task),
    ]
    records[1].backend.description = f"{BOLD} {SCRIPT}"
    boards = build_leaderboard(found(*records))
    write_report(boards, tmp_path, [f"/runs/{BOLD}"])

    dom = render(tmp_path / "leaderboard.html", tmp_path / "profile")

    text = "".join(dom.text)
    assert dom.title == "xbench leaderboard", "no injected script ran"
    assert "injected" not in dom.ids
    assert {"script", "b"}.isdisjoint(dom.tags), "no element came from the payloads"
    assert f"evil{SCRIPT}" in text and task in text
    assert f"{BOLD} {SCRIPT}" in text and f"ValueError: {IMAGE}" in text
    assert f"/runs/{BOLD}" in text
    assert len(dom.images) == 1 and dom.images[0].startswith("data:image/png;base64,")
