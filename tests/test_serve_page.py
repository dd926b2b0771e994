"""The draw-a-digit page in a real browser: headless Chromium, driven by Selenium, draws a 7, a 0 and
a 3 with pointer events (mouse and touch) on `lenet-engine serve`'s page, which must read each one.

Needs Debian's chromium and chromium-driver (.ci/run installs them); without them the test skips,
which LENET_ENGINE_REQUIRE_ALL=1 turns into a failure.
"""

import math
import shutil

import pytest

from conftest import require
from serving import Server

require("starlette")
require("uvicorn")
webdriver = require("selenium.webdriver")
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.slow

PAD = 280  # the drawing pad's own pixels; strokes below are in these units


def _ellipse(cx, cy, rx, ry, steps=24):
    return [(cx + rx * math.sin(2 * math.pi * i / steps), cy - ry * math.cos(2 * math.pi * i / steps))
            for i in range(steps + 1)]


# Strokes as a person draws them, one list of points per stroke, and the pointer that draws them.
DIGITS = [
    (7, "mouse", [[(60, 50), (220, 50), (125, 240)]]),
    (0, "touch", [_ellipse(140, 140, 62, 95)]),
    (3, "mouse", [[(85, 65), (140, 40), (192, 68), (188, 112), (135, 138), (195, 165), (200, 215), (145, 245),
                   (82, 225)]]),
]


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server("--model", "classic", "--model", "modern", log_path=tmp_path_factory.mktemp("page") / "log")
    yield running
    assert running.stop(), running.log()


@pytest.fixture
def page(browser, server):
    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    return browser


def draw(browser, strokes, pointer):
    """Draw `strokes` (pad coordinates) on the pad with a mouse or a finger, as W3C pointer actions."""
    pad = browser.find_element(By.ID, "pad")
    scale = pad.size["width"] / PAD  # the pad is shown at its CSS size, not at 280 pixels
    kind = interaction.POINTER_TOUCH if pointer == "touch" else interaction.POINTER_MOUSE
    actions = ActionBuilder(browser, mouse=PointerInput(kind, pointer), duration=15)
    for stroke in strokes:
        # Offsets from the element's centre, in CSS pixels.
        offsets = [(round((x - PAD / 2) * scale), round((y - PAD / 2) * scale)) for x, y in stroke]
        actions.pointer_action.move_to(pad, *offsets[0]).pointer_down()
        for dx, dy in offsets[1:]:
            actions.pointer_action.move_to(pad, dx, dy)
        actions.pointer_action.pointer_up()
    actions.perform()


def shown(browser):
    """What the page shows once its last prediction is back: (label, model in the status line)."""
    body = browser.find_element(By.TAG_NAME, "body")
    WebDriverWait(browser, 30).until(lambda b: body.get_attribute("data-busy") == "false"
                                     and int(body.get_attribute("data-predictions")) > 0)
    return browser.find_element(By.ID, "label").text, browser.find_element(By.ID, "status").text


@pytest.mark.parametrize("digit, pointer, strokes", DIGITS, ids=[f"{d}-{p}" for d, p, _ in DIGITS])
def test_page_reads_a_drawn_digit(page, digit, pointer, strokes):
    draw(page, strokes, pointer)
    label, status = shown(page)
    assert label == str(digit), status
    assert status.startswith("classic:")
    # Ten bars, the tallest the label's; the 28x28 input and the four layers' maps drawn.
    bars = page.find_elements(By.CSS_SELECTOR, "#bars li")
    probabilities = [float(bar.get_attribute("data-probability")) for bar in bars]
    assert len(bars) == 10 and probabilities.index(max(probabilities)) == digit
    assert page.find_element(By.CSS_SELECTOR, "#bars li.top").text.startswith(str(digit))
    ink = page.execute_script(
        "const d = document.getElementById('input28').getContext('2d').getImageData(0, 0, 28, 28).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 128; return n;")
    assert 30 < ink < 400
    layers = page.find_elements(By.CSS_SELECTOR, "#maps .layer")
    assert [layer.find_element(By.TAG_NAME, "h3").text.split()[0] for layer in layers] == ["C1", "S2", "C3", "S4"]
    assert [len(layer.find_elements(By.TAG_NAME, "canvas")) for layer in layers] == [6, 6, 16, 16]


def test_switching_models_asks_the_other_model_and_clear_resets(page):
    digit, pointer, strokes = DIGITS[2]
    draw(page, strokes, pointer)
    assert shown(page)[0] == str(digit)
    done = int(page.find_element(By.TAG_NAME, "body").get_attribute("data-predictions"))
    page.find_element(By.CSS_SELECTOR, "#model option[value=modern]").click()
    WebDriverWait(page, 30).until(
        lambda b: int(b.find_element(By.TAG_NAME, "body").get_attribute("data-predictions")) > done)
    label, status = shown(page)
    assert label == str(digit) and status.startswith("modern:"), status
    page.find_element(By.ID, "clear").click()
    assert page.find_element(By.ID, "label").text == "?"
    assert page.find_elements(By.CSS_SELECTOR, "#maps .layer") == []


def _pad_ink(browser):
    return browser.execute_script(
        "const d = document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 128; return n;")


def test_a_tap_leaves_a_dot_and_esc_ends_a_stroke_in_progress(page):
    draw(page, [[(140, 140)]], "mouse")
    assert _pad_ink(page) > 200  # a dot of the stroke's width
    shown(page)
    # Esc while the button is still down: the stroke ends there, later moves draw nothing.
    pad = page.find_element(By.ID, "pad")
    actions = ActionBuilder(page, mouse=PointerInput(interaction.POINTER_MOUSE, "mouse"), duration=15)
    actions.pointer_action.move_to(pad, -60, -60).pointer_down().move_to(pad, 0, 0)
    actions.perform()
    page.execute_script("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
    actions = ActionBuilder(page, mouse=PointerInput(interaction.POINTER_MOUSE, "mouse"), duration=15)
    actions.pointer_action.move_to(pad, 60, 60).pointer_up()
    actions.perform()
    assert _pad_ink(page) == 0 and page.find_element(By.ID, "label").text == "?"


def test_a_failed_request_drops_the_answer_of_the_drawing_before(browser, tmp_path):
    own = Server("--model", "classic", log_path=tmp_path / "log")
    try:
        browser.get(own.url + "/")
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        digit, pointer, strokes = DIGITS[0]
        draw(browser, strokes, pointer)
        assert shown(browser)[0] == str(digit)
    finally:
        assert own.stop(), own.log()
    draw(browser, [[(40, 250), (240, 250)]], "mouse")  # a stroke the stopped server cannot read
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda b: "No prediction" in status.text)
    assert browser.find_element(By.ID, "label").text == "?"
    assert browser.find_elements(By.CSS_SELECTOR, "#maps .layer") == []
