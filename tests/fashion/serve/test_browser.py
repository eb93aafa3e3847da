"""The upload page in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium)
on a real uvicorn server: choose a file, wait for the overlay and the garment list, hover a garment, open the
JSON, drop a second image. On CI the server runs the fake detector (``fake_served``: the page and the API are
the same, no model start-up); the slow variant runs the real service process on the tiny preset's random
weights. A screenshot is kept in ``$FASHION_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository
root).

Skipped when Chromium or its driver is missing, except on CI (``CI=true``), where ``.ci/run`` installs them and
their absence is a failure.
"""

import json
import os
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"the browser test must run on CI: {reason} (.ci/run installs chromium and chromium-driver)"
        )
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module's tests (starting it takes seconds)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        _unavailable(f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    finally:
        if offline is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = offline
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(params=["fake-model", pytest.param("tiny-model", marks=pytest.mark.slow)])
def page_service(request):
    """(service with .url, garments per image): the fake detector's 4 in a uvicorn thread, or the real
    service process's 10 (the tiny preset's DETECTION_MAX_INSTANCES at --min-confidence 0)."""
    if request.param == "fake-model":
        return request.getfixturevalue("fake_served"), 4
    return request.getfixturevalue("served"), 10


def artifacts_dir(kit) -> Path:
    folder = Path(os.environ.get("FASHION_TEST_ARTIFACTS", kit.REPO / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_for_state(driver, state: str, timeout: float = 120.0):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-state") in (state, "error")
    )
    status = driver.find_element("id", "status").text
    assert driver.find_element("tag name", "body").get_attribute("data-state") == state, status
    return status


def test_upload_page_shows_overlay_garments_highlights_and_json(page_service, browser, kit, request):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    served, _ = page_service
    image_path = kit.SAMPLE_IMAGES[1]
    with urllib.request.urlopen(served.url + "/v1/model", timeout=30) as response:
        model = json.loads(response.read())
    with urllib.request.urlopen(
        urllib.request.Request(served.url + "/v1/parse?polygons=true", data=image_path.read_bytes()),
        timeout=120,
    ) as response:
        expected = json.loads(response.read())

    browser.get(served.url + "/")
    WebDriverWait(browser, 30).until(lambda d: "classes" in d.find_element("id", "model-line").text)
    assert model["name"] in browser.find_element("id", "model-line").text

    browser.find_element("id", "file").send_keys(str(image_path))
    status = wait_for_state(browser, "done")
    assert f"{len(expected['garments'])} garments in {image_path.name}" == status

    overlay = browser.find_element("id", "overlay")
    assert overlay.get_attribute("src").startswith("blob:")
    natural = browser.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", overlay
    )
    assert min(natural) > 0 and max(natural) >= 512  # the PNG decoded in the page
    assert overlay.size["width"] > 200

    items = browser.find_elements("css selector", "#garments li")
    assert len(items) == len(expected["garments"]) == int(browser.find_element("id", "garment-count").text)
    for item, garment in zip(items, expected["garments"]):
        assert item.find_element("class name", "name").text == garment["class_name"]
        assert item.find_element("class name", "score").text == f"{garment['score']:.2f}"
        shown = [a.text for a in item.find_elements("class name", "attributes")]
        wanted = ", ".join(f"{a['name']} {a['score']:.2f}" for a in garment.get("attributes") or [])
        assert shown == ([wanted] if wanted else [])

    ActionChains(browser).move_to_element(items[0]).perform()
    WebDriverWait(browser, 10).until(lambda d: "active" in items[0].get_attribute("class"))
    polygons = browser.find_elements("css selector", "#highlight polygon")
    assert len(polygons) == len(expected["garments"][0]["polygons"]) > 0
    box = browser.find_element("id", "highlight").size
    assert abs(box["width"] - overlay.size["width"]) <= 1 and abs(box["height"] - overlay.size["height"]) <= 1
    browser.save_screenshot(str(artifacts_dir(kit) / f"serve_upload_page_{request.node.callspec.id}.png"))

    ActionChains(browser).move_to_element(browser.find_element("id", "drop")).perform()
    WebDriverWait(browser, 10).until(lambda d: not d.find_elements("css selector", "#highlight polygon"))
    assert "active" not in items[0].get_attribute("class")

    link = browser.find_element("id", "json-link")
    assert link.get_attribute("href").startswith("blob:")
    page = browser.current_window_handle
    link.click()  # opens the JSON in a new tab
    WebDriverWait(browser, 10).until(lambda d: len(d.window_handles) == 2)
    browser.switch_to.window(next(h for h in browser.window_handles if h != page))
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element("tag name", "body").text.strip().startswith("{")
    )
    linked = json.loads(browser.find_element("tag name", "body").text)
    browser.close()
    browser.switch_to.window(page)
    assert [g["class_name"] for g in linked["garments"]] == [g["class_name"] for g in expected["garments"]]
    assert linked["image"] == expected["image"]


def test_dropping_an_image_on_the_page_parses_it(page_service, browser):
    served, garments = page_service
    browser.get(served.url + "/")
    browser.execute_script("document.body.dataset.state = 'waiting';")
    # A real drop event carrying a PNG made in the page (WebDriver cannot drag files from the desktop).
    browser.execute_script(
        """
        const canvas = document.createElement("canvas");
        canvas.width = 160; canvas.height = 200;
        const g = canvas.getContext("2d");
        g.fillStyle = "#c33"; g.fillRect(0, 0, 160, 200);
        g.fillStyle = "#33c"; g.fillRect(40, 60, 80, 120);
        canvas.toBlob((blob) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([blob], "dropped.png", { type: "image/png" }));
          const drop = document.getElementById("drop");
          drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
          drop.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }, "image/png");
        """
    )
    status = wait_for_state(browser, "done")
    assert status.endswith("garments in dropped.png")
    assert len(browser.find_elements("css selector", "#garments li")) == garments
    assert "160×200 PNG" in browser.find_element("id", "timing").text
