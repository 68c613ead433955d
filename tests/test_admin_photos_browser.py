"""The admin page's Photos section in headless Chromium (as tests/test_admin_browser.py): a photo library scanned
from a few LFW people, then in the browser rename a person, merge two, move a face and search, each checked in
photos.db. Screenshots go to $FACEGATE_ARTIFACTS."""
from __future__ import annotations

import re
import threading

import pytest
from test_admin_browser import ARGS, CHROMIUM, _logged_in_page, _shoot
from test_admin_browser import artifacts, playwright  # noqa: F401  (fixtures)
from test_admin_photos import PEOPLE, library, person_of
from test_photos_helpers import copy_photos, recognizer, scan_and_sort

from facegate.edge_runtime.admin import create_app
from facegate.edge_runtime.photos import people as pp
from facegate.edge_runtime.photos.db import PhotoDB, photos_path


@pytest.fixture
def served(data_dir, tmp_path):
    """(base URL, app, home): the admin app over a data home with 3 LFW people x 3 photos scanned, served by
    waitress in a thread on a free localhost port."""
    import waitress

    home = tmp_path / "home"
    home.mkdir()
    copy_photos(data_dir, tmp_path / "photos", people=PEOPLE, numbers=range(1, 4))
    with PhotoDB(photos_path(home)) as db:
        scan_and_sort(db, [tmp_path / "photos"])
    app = create_app({"HOME": home, "BUNDLE": recognizer().bundle})
    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="facegate-test")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", app, home
    srv.close()
    thread.join(timeout=5)


def _flash(page) -> str:
    return page.locator(".flash").first.inner_text()


def _search(page, text: str, person_id: int, count: str) -> None:
    """Search the Photos page by name: one card, that person's, showing `count`."""
    page.click("nav >> text=Photos")
    page.fill("input[name=q]", text)
    page.click("form.search button[type=submit]")
    page.wait_for_url(re.compile(rf".*/photos\?q={text}$"))
    cards = page.locator("li.photo-person")
    assert cards.count() == 1 and cards.get_attribute("data-person") == str(person_id)
    assert count in cards.inner_text()


def test_rename_merge_move_and_search_in_a_browser(playwright, served, artifacts):  # noqa: F811
    """Rename Powell, merge Serena into Chavez, move one of Serena's faces to Powell, search for Powell."""
    base, app, home = served
    powell, chavez = person_of(home, "Colin_Powell_0001.jpg"), person_of(home, "Hugo_Chavez_0001.jpg")
    serena = person_of(home, "Serena_Williams_0001.jpg")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    try:
        page, problems = _logged_in_page(browser, base, app)
        page.click("nav >> text=Photos")
        page.wait_for_url(re.compile(r".*/photos$"))
        assert page.locator("li.photo-person").count() == len(PEOPLE)
        first = page.locator(f"li.photo-person[data-person='{powell}'] img").first
        first.scroll_into_view_if_needed()
        assert first.evaluate("img => img.complete && img.naturalWidth > 0")
        _shoot(page, artifacts, "admin-photos")

        page.click(f"li.photo-person[data-person='{powell}'] a.name")        # rename
        page.fill("#rename input[name=name]", "Colin Powell")
        page.click("#rename button[type=submit]")
        page.locator("#person-name", has_text="Colin Powell").wait_for()
        assert "Renamed" in _flash(page)
        shown = page.locator("figure.photo img").first
        shown.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
        assert page.locator("figure.photo rect.this").count() == 3
        _shoot(page, artifacts, "admin-photos-person")

        page.goto(f"{base}/photos/people/{chavez}")                           # merge Serena into Chavez
        page.fill("#merge input[name=other]", str(serena))
        page.click("#merge button[type=submit]")
        page.locator(".flash", has_text="Merged").wait_for()
        assert page.locator("li.face").count() == 6

        with library(home) as db:                                              # move one of Serena's faces
            face = db.read("SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path LIKE ? "
                           "AND f.person_id = ?", ("%/Serena_Williams_0002.jpg", chavez))[0][0]
        card = page.locator(f"li.face[data-face='{face}']")
        card.locator("input[name=to]").fill("Colin Powell")
        card.locator("button[type=submit]").click()
        page.locator(".flash", has_text="Moved the face to Colin Powell").wait_for()
        assert page.locator(f"li.face[data-face='{face}']").count() == 0 and page.locator("li.face").count() == 5

        _search(page, "colin", powell, "4 faces")
        _shoot(page, artifacts, "admin-photos-search")
        assert problems == []
    finally:
        browser.close()
    with library(home) as db:
        assert pp.person_summary(db, powell).name == "Colin Powell"
        assert pp.person_summary(db, serena) is None and pp.person_summary(db, chavez).faces == 5
        assert db.read("SELECT person_id, pinned FROM faces WHERE id = ?", (face,)) == [(powell, 1)]
        assert db.read("SELECT user_touched FROM people WHERE id IN (?, ?)", (powell, chavez)) == [(1,), (1,)]
