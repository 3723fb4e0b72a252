"""The residents' page in Debian's headless Chromium against a real server with the sample data: pick an
address from the autocomplete by keyboard, get the comparison as a table and a chart, file an application,
follow the status link. axe-core (Deque's accessibility engine, bundled by axe-playwright-python) checks the
WCAG 2.1 A and AA rules on the empty form, on the results with the application form, on a refused
application and on the status page. Leaves a screenshot in tests/artifacts/smog-page.png."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lokalnie.ports import free_port
from tests.smog_api.conftest import PNG

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
REPO = Path(__file__).resolve().parents[2]


# The rules of WCAG 2.0 and 2.1, levels A and AA, as axe-core tags them.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def accessibility_violations(page: Any) -> list[str]:
    """What axe-core finds against WCAG 2.1 AA on the page as it is now: rule, impact and where."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}})
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"])
        for violation in results.response["violations"]
    ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SMOG_TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'page.db'}",
        "LOKALNIE_ENV": "development",
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.smog_api.serve:create", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/kalkulator/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def assert_source_names_stay_in_view(page: Any) -> None:
    """Scrolled sideways to its last column (on a phone, to reach "Złóż wniosek"), the table still shows each
    row's heat source: the name is where the row starts, on top of the figures passing under it."""
    wrap = page.locator(".table-wrap")
    wrap.scroll_into_view_if_needed()
    scrolled = wrap.evaluate("w => { w.scrollLeft = w.scrollWidth; return w.scrollLeft; }")
    assert scrolled > 0, "the table fits the screen: nothing to check at this width"
    wrap_box = wrap.bounding_box()
    name = page.locator("tbody tr").first.locator("th")
    box = name.bounding_box()
    assert wrap_box is not None and box is not None
    assert abs(box["x"] - wrap_box["x"]) < 1
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('th')?.textContent ?? ''",
        [box["x"] + 8, box["y"] + 8],
    )
    assert on_top == name.text_content()
    wrap.evaluate("w => { w.scrollLeft = 0; }")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_resident_compares_and_applies_by_keyboard(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    page_response = httpx.get(f"{server}/kalkulator/")
    assert "script-src 'self'" in page_response.headers["content-security-policy"]
    assert "<script>" not in page_response.text and "style=" not in page_response.text

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915}, locale="pl-PL")
            page.set_default_timeout(10_000)
            problems: list[str] = []
            page.on(
                "console", lambda message: problems.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{server}/kalkulator/")

            # Every visible control has a label.
            unlabelled = page.evaluate(
                "Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
                ".filter((c) => c.labels.length === 0).map((c) => c.id)"
            )
            assert unlabelled == []
            assert accessibility_violations(page) == []

            address = page.get_by_role("combobox", name="Adres domu (ulica i numer)")
            address.focus()
            address.press_sequentially("ul. laska 41", delay=20)
            expect(page.get_by_role("listbox")).to_be_visible()
            expect(page.get_by_role("option").first).to_have_text("Łaska 41, 98-220 Zduńska Wola")
            page.keyboard.press("ArrowDown")
            expect(address).to_have_attribute("aria-activedescendant", "address-option-0")
            page.keyboard.press("Enter")
            expect(address).to_have_value("Łaska 41, 98-220 Zduńska Wola")
            expect(page.get_by_role("listbox")).to_be_hidden()

            # A refused area is shown next to its field, in Polish.
            page.keyboard.press("Tab")
            area = page.get_by_label("Powierzchnia ogrzewana (m²)")
            expect(area).to_be_focused()
            page.keyboard.type("0")
            page.keyboard.press("Enter")
            expect(page.locator("#heated_area_m2-error")).to_contain_text("od 10 do 1\u00a0000\u00a0m²")
            expect(area).to_have_attribute("aria-invalid", "true")

            area.fill("120")
            page.get_by_label("Kiedy dom zbudowano, czy jest docieplony").select_option("before_1967")
            page.get_by_label("Liczba osób w gospodarstwie").fill("3")
            page.get_by_label("Ten piec lub kocioł grzeje też wodę w kranach").check()
            page.get_by_label("O ile co roku drożeje energia (% ponad inflację)").fill("2.5")
            page.get_by_role("button", name="Oblicz").press("Enter")
            table = page.get_by_role("table")
            expect(table).to_be_visible()
            assert table.locator("tbody tr").count() == 7
            assert_source_names_stay_in_view(page)
            expect(page.locator("#results-explanation")).to_contain_text("ciepła woda dla domowników")
            expect(page.locator("#results-version")).to_contain_text("rosną o 2,5\u00a0% rocznie")
            chart = page.get_by_role("img", name="Koszt 15 lat według źródła ciepła")
            expect(chart).to_be_visible()
            assert chart.locator("rect").count() >= 5
            expect(page.locator("#results-version")).to_contain_text("Dane w wersji")

            page.get_by_role("button", name=re.compile("^Złóż wniosek: ")).first.click()
            expect(page.get_by_role("heading", name="3. Wniosek do programu „Stop Smog”")).to_be_focused()
            expect(page.locator("#application-address")).to_have_text("Łaska 41, 98-220 Zduńska Wola")
            # What the calculator knows is filled in for the chosen source, for the resident to correct.
            expect(page.get_by_label("Planowane roczne zużycie energii lub paliwa")).not_to_have_value("")
            expect(page.get_by_label("Jednostka zużycia")).to_have_value("kWh")
            expect(page.get_by_label("Szacowany koszt (zł)")).to_have_value(re.compile(r"^[1-9]\d{3,5}$"))
            expect(page.locator("#app_current_heating")).to_have_value("coal_stove")
            expect(page.get_by_label("Roczne zużycie paliwa (t)")).to_have_value(re.compile(r"^\d+(\.\d+)?$"))
            assert accessibility_violations(page) == []
            page.get_by_label("Imię *").fill("Zofia")
            page.get_by_label("Nazwisko *").fill("Wróblewska")
            pesel = page.get_by_label("PESEL *")
            pesel.fill("44051401358")
            page.get_by_label("Telefon").fill("601234567")
            page.get_by_label(re.compile("^Zdjęcie lub skan")).set_input_files(
                {"name": "piec.png", "mimeType": "image/png", "buffer": PNG}
            )
            page.get_by_label(re.compile("^Zgadzam się")).check()
            page.get_by_role("button", name="Wyślij wniosek").click()
            expect(page.locator("#app-pesel-error")).to_contain_text("cyfra kontrolna")
            expect(pesel).to_be_focused()
            assert accessibility_violations(page) == []
            pesel.fill("44051401359")
            page.get_by_role("button", name="Wyślij wniosek").click()
            expect(page.locator("#case-number")).to_have_text(re.compile(r"^SS/\d{4}/000001$"))
            status_link = page.locator("#status-link").get_attribute("href") or ""
            assert re.search(r"/kalkulator/#status=[A-Za-z0-9_-]{40,}$", status_link)
            pdf_href = page.locator("#pdf-link").get_attribute("href") or ""
            assert httpx.get(f"{server}{pdf_href}").content.startswith(b"%PDF-")

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "smog-page.png"), full_page=True)

            page.goto(status_link)
            expect(page.locator("#status-body")).to_contain_text("złożony")
            assert accessibility_violations(page) == []
            # The two refused requests (422) are the only errors: no CSP violation, no script error, no 404.
            assert [problem for problem in problems if "422" not in problem] == []
            assert len(problems) == 2
        finally:
            browser.close()
