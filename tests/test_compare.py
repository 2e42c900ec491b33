"""`hfc compare`: the pages it writes, and the page working in a real headless browser."""

import base64
import io
import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import EXAMPLE, TINY, random_image
from hificodec.cli import main

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def pages(tmp_path_factory, tiny_weights_dir):
    """Pages for two images with the tiny model (fast), and AVIF, WebP and JPEG beside it."""
    src = tmp_path_factory.mktemp("src")
    Image.fromarray(random_image(96, 128, seed=1)).save(src / "first.png")
    Image.fromarray(random_image(64, 80, seed=2)).save(src / "second.png")
    out = tmp_path_factory.mktemp("pages")
    r = CliRunner(env={"HFC_WEIGHTS_DIR": str(tiny_weights_dir)}).invoke(
        main, ["compare", str(src), "-o", str(out), "--model", TINY], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return src, out


def _json_of(page: str, name: str):
    return json.loads(re.search(rf"const {name} = (.*?);\n", page).group(1))


def test_pages_embed_every_frame_and_the_matched_codecs(pages):
    src, out = pages
    assert sorted(p.name for p in out.iterdir()) == ["first.hfc", "first.html", "index.html", "second.hfc", "second.html"]
    page = (out / "first.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched
    frames = _json_of(page, "frames")
    assert len(frames) == 9 and _json_of(page, "betas")[0] == 0 and _json_of(page, "betas")[-1] == 2.56
    first = Image.open(io.BytesIO(base64.b64decode(frames[0].split(",", 1)[1])))
    assert first.size == (128, 96)
    hfc_bytes = (out / "first.hfc").stat().st_size
    for codec in ("AVIF", "WEBP", "JPEG"):
        size = int(re.search(rf"{codec} \(([\d,]+) bytes\)", page).group(1).replace(",", ""))
        assert 0 < size < 4 * hfc_bytes + 1000  # the setting nearest the .hfc size (small images have a floor)
    original = _json_of(page, "sources")["original"]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(original.split(",", 1)[1]))).convert("RGB"))
    assert np.array_equal(pixels, np.asarray(Image.open(src / "first.png")))  # embedded losslessly
    index = (out / "index.html").read_text()
    assert 'href="first.html"' in index and 'href="second.html"' in index


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver")
def test_page_in_headless_chromium(tmp_path):
    """A real browser: the index links the pages, a page loads with no console errors, the
    slider changes the shown image (keyboard, as a user would), a click moves the zoom, and a
    screenshot is taken. Uses the shipped model on the bundled photo, whose frames differ with
    beta."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    crop = tmp_path / "crop.png"  # a second image, for the index page
    Image.open(EXAMPLE).crop((200, 100, 392, 228)).save(crop)
    r = CliRunner(env={"HFC_WEIGHTS_DIR": ""}).invoke(main, ["compare", str(EXAMPLE), str(crop), "-o", str(tmp_path / "out")],
                                                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get((tmp_path / "out" / "index.html").as_uri())
        driver.find_element(By.LINK_TEXT, "kodim23").click()
        assert driver.title.startswith("kodim23")
        image = driver.find_element(By.ID, "img-hfc")
        slider = driver.find_element(By.ID, "beta")
        assert driver.find_element(By.ID, "beta-value").text == "2.56"
        before = image.get_attribute("src")
        slider.send_keys(Keys.HOME)  # all the way to beta 0
        assert driver.find_element(By.ID, "beta-value").text == "0.00"
        assert image.get_attribute("src") != before and "PSNR" in driver.find_element(By.ID, "beta-scores").text
        slider.send_keys(Keys.ARROW_RIGHT)
        assert driver.find_element(By.ID, "beta-value").text == "0.32"
        zoom = driver.find_element(By.CSS_SELECTOR, '.zoom[data-key="original"]')
        position = zoom.value_of_css_property("background-position")  # starts at the image's centre
        original = driver.find_element(By.ID, "img-original")
        corner = (-original.rect["width"] // 2 + 5, -original.rect["height"] // 2 + 5)  # offsets from the centre
        ActionChains(driver).move_to_element_with_offset(original, *corner).click().perform()
        assert zoom.value_of_css_property("background-position") != position
        shot = tmp_path / "page.png"
        assert driver.save_screenshot(str(shot)) and Image.open(shot).size[0] > 0
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
