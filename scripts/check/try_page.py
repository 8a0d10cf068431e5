#!/usr/bin/python3
"""The try-a-model page in a real browser: headless Chromium (Debian's chromium and
chromium-driver) through python3-selenium, against a real `serve --foreground` with every sample
model and token authorization on. This is the browser test of the page; `swift test` checks the
page's HTTP side (Tests/ServerHTTPTests/TryPageTests.swift) and never needs a browser.

Checks, one line each, N/M at the end:
  - GET / from the browser is the page, it asks for the inference key (the models are not shown
    without it), takes it, lists the five sample models, and keeps the key in sessionStorage only
  - segmenter: a sample street scene uploaded, the overlay appears beside the input, with a legend
    of class colours; the screenshot is saved (docs/images/try-page.png by default)
  - image classifier: top labels as bars, the expected top label first
  - object detector: boxes drawn on the image
  - text classifier: bars, the expected top label first
  - question answering: the answer highlighted in its context
  - no Content-Security-Policy violation and no script error in the browser's console

Usage: /usr/bin/python3 scripts/check/try_page.py --serve .build/release/serve [--screenshot PATH] [--visible]
       /usr/bin/python3 scripts/check/try_page.py --url http://127.0.0.1:8080 [--key KEY]   (a running server)
(scripts/check/try-page builds serve and runs this.)
"""
import argparse
import os
import sys
import time
from contextlib import nullcontext
from types import SimpleNamespace

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from checkutil import short
from sampleserver import REPO, SampleServer

SAMPLES = os.path.join(REPO, "model_store", "samples")


class Results:
    def __init__(self):
        self.passed = 0
        self.total = 0

    def check(self, name, ok, detail=""):
        self.total += 1
        self.passed += bool(ok)
        print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok or not detail else f": {detail}"), flush=True)
        return ok


def browser(visible):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    if not visible:
        options.add_argument("--headless=new")
    for argument in ("--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,720", "--force-device-scale-factor=1",
                     "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_until(driver, what, seconds=60):
    """The value of `what(driver)` once truthy; None after `seconds` (the error line shows on the page)."""
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda d: what(d))
    except Exception:
        return None


def page_error(driver):
    return driver.find_element(By.ID, "error").text or "(no error shown)"


def choose(driver, model):
    Select(driver.find_element(By.ID, "model")).select_by_value(model)


def upload(driver, file):
    driver.execute_script("document.getElementById('output').replaceChildren()")
    driver.find_element(By.ID, "file").send_keys(os.path.join(SAMPLES, file))


def bar_labels(driver):
    return [row.find_element(By.CLASS_NAME, "bar-label").text for row in driver.find_elements(By.CSS_SELECTOR, "#bars .bar-row")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", help="the serve binary to start with the sample models")
    parser.add_argument("--url", help="instead, a running server's inference port with the sample models")
    parser.add_argument("--key", help="its inference key, when token authorization is on")
    parser.add_argument("--screenshot", default=os.path.join(REPO, "docs", "images", "try-page.png"))
    parser.add_argument("--visible", action="store_true", help="show the browser window")
    args = parser.parse_args()
    if not args.serve and not args.url:
        parser.error("give --serve (a server is started) or --url (of a running one)")
    results = Results()
    if args.url:
        server = SimpleNamespace(inference=args.url.rstrip("/"), key=args.key)
        context = nullcontext(server)
    else:
        context = SampleServer(args.serve, token_auth=True)
    with context as server:
        driver = browser(args.visible)
        try:
            run(driver, server, args, results)
        finally:
            problems = [entry for entry in driver.get_log("browser")
                        if entry.get("level") == "SEVERE" or "Content Security Policy" in entry.get("message", "")]
            results.check("the browser's console has no CSP violation and no error", not problems,
                          short("; ".join(entry.get("message", "") for entry in problems)))
            driver.quit()
    print(f"{results.passed}/{results.total} passed")
    return 0 if results.passed == results.total else 1


def run(driver, server, args, results):
    check = results.check
    driver.get(server.inference + "/")
    check("GET / in the browser is the page", driver.title.startswith("Try a model"), driver.title)
    if server.key:
        panel = wait_until(driver, lambda d: d.find_element(By.ID, "key-panel").is_displayed(), 10)
        options = driver.find_elements(By.CSS_SELECTOR, "#model option")
        check("with token authorization on, it asks for the inference key and lists no model before it", panel and not options,
              f"key panel shown: {bool(panel)}, models: {[o.text for o in options]}")
        driver.find_element(By.ID, "key").send_keys("not-the-key")
        driver.find_element(By.ID, "key-submit").click()
        refused = wait_until(driver, lambda d: "did not accept" in d.find_element(By.ID, "key-message").text, 10)
        check("a wrong key is refused and asked for again", refused, driver.find_element(By.ID, "key-message").text)
        driver.find_element(By.ID, "key").send_keys(server.key)
        driver.find_element(By.ID, "key-submit").click()
    wait_until(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 15)
    names = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#model option")]
    check("it lists the sample models" + (" once it has the key" if server.key else ""),
          sorted(names) == ["detector", "fortunes", "qa", "scenes", "unet"], names)
    if server.key:
        stored = driver.execute_script("return [sessionStorage.length, localStorage.length, document.cookie]")
        check("the key is kept in sessionStorage only (no localStorage, no cookie)", stored == [1, 0, ""], stored)

    # Segmenter: the overlay beside the input, a legend of class colours.
    choose(driver, "unet")
    upload(driver, "scene_0.png")
    overlay = wait_until(driver, lambda d: d.execute_script(
        "const o = document.getElementById('overlay'); return o && o.complete && o.naturalWidth > 0 ? [o.naturalWidth, o.naturalHeight] : null"))
    legend = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#legend li")]
    figures = len(driver.find_elements(By.CSS_SELECTOR, "#output figure img"))
    check("segmenter: the overlay appears beside the input", overlay == [128, 96] and figures == 2,
          f"overlay {overlay}, images {figures}; {page_error(driver)}")
    check("segmenter: a legend of class colours with the model's labels", len(legend) >= 3 and any("road" in line for line in legend),
          short(legend))
    swatch = driver.execute_script("const s = document.querySelector('#legend .swatch'); return s && getComputedStyle(s).backgroundColor")
    check("segmenter: legend swatches carry the palette colours", bool(swatch) and swatch != "rgba(0, 0, 0, 0)", swatch)
    os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
    time.sleep(0.3)  # let the last layout settle before the screenshot
    saved = driver.save_screenshot(args.screenshot)
    size = os.path.getsize(args.screenshot) if saved else 0
    check(f"screenshot saved ({os.path.relpath(args.screenshot, REPO)}, {size // 1024} KiB)", saved and 0 < size < 600_000, size)

    # Image classifier: bars, the expected label on top.
    choose(driver, "scenes")
    upload(driver, "dominant_person.png")
    labels = wait_until(driver, bar_labels)
    widths = driver.execute_script("return [...document.querySelectorAll('#bars .bar')].map(b => b.getBoundingClientRect().width)")
    check("image classifier: top labels as bars, person first", bool(labels) and labels[0] == "person" and len(labels) >= 2,
          f"{labels}; {page_error(driver)}")
    check("image classifier: bar lengths follow the scores", bool(widths) and widths == sorted(widths, reverse=True) and widths[0] > 0,
          widths)

    # Object detector: boxes drawn over the image.
    choose(driver, "detector")
    upload(driver, "street_1.png")
    boxes = wait_until(driver, lambda d: d.execute_script(
        "const c = document.getElementById('boxes'); return c ? Number(c.dataset.boxes) : null") or None)
    listed = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#output .legend li")]
    check("object detector: boxes drawn on the image", bool(boxes) and boxes >= 1 and len(listed) == boxes,
          f"boxes {boxes}, listed {listed}; {page_error(driver)}")

    # Text classifier: a textarea, bars.
    choose(driver, "fortunes")
    text = driver.find_element(By.ID, "text")
    text.clear()
    text.send_keys("The compiler crashed and the kernel panicked")
    driver.find_element(By.ID, "run-text").click()
    labels = wait_until(driver, bar_labels)
    check("text classifier: labels as bars, computers first", bool(labels) and labels[0] == "computers" and len(labels) == 6,
          f"{labels}; {page_error(driver)}")

    # Question answering: the answer highlighted in its context.
    choose(driver, "qa")
    question = driver.find_element(By.ID, "question")
    question.clear()
    question.send_keys("Where do I live?")
    context = driver.find_element(By.ID, "context")
    context.clear()
    context.send_keys("My name is Alex, I am 32 and live in Copenhagen.")
    driver.find_element(By.ID, "run-qa").click()
    mark = wait_until(driver, lambda d: d.find_elements(By.ID, "qa-answer") and d.find_element(By.ID, "qa-answer").text)
    whole = driver.find_element(By.ID, "qa-context").text if driver.find_elements(By.ID, "qa-context") else ""
    check("question answering: the answer is highlighted in its context",
          mark == "Copenhagen" and whole == "My name is Alex, I am 32 and live in Copenhagen.", f"mark {mark!r}, context {whole!r}; {page_error(driver)}")


if __name__ == "__main__":
    sys.exit(main())
