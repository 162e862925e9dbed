"""The built-in web page (``/ui/``) in a real browser: headless Chromium from Debian's packages, driven by
Selenium, against a real ``pollama serve`` with SmolLM2.

No browser is downloaded: Chromium and its driver come from Debian (``chromium``, ``chromium-driver``;
``.ci/run`` installs them best effort) and are named explicitly, with Selenium Manager kept offline.
The module skips where either is missing.

The tests run in file order on one browser and one server, each building on the last: a chat streams
an answer, a long answer is stopped, the chat outlives a reload, stored Markdown with HTML in it does not
turn into elements, the models view lists, shows loaded, deletes and pulls; then a second server with
API keys, and a page from another origin. A failing test leaves a screenshot (its path is printed) and
the browser's console log in its output.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import ollama
import pytest

from tests.integration.test_inference import create_smol
from tests.registries import MODEL_MEDIA_TYPE, FakeOllamaRegistry, ollama_model, write_ollama_key
from tests.servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        f"needs Debian's Chromium and its driver ({CHROMIUM}, {CHROMEDRIVER}): "
        "apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the 'test' extra)")

from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(120)

MODEL = "smol:latest"  # no limit on its answers: the one to stop
SHORT = "smol-short:latest"  # answers of at most 48 tokens, so that a chat ends in seconds even on a busy CPU
COPY = "smol-copy:latest"
API_KEY = "web-ui-test-key"
T = TypeVar("T")


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[FakeOllamaRegistry]:
    """A TLS imitation of registry.ollama.ai holding a model of a few KB, for the page's pull."""
    with FakeOllamaRegistry(tls=True) as fake:
        fake.put_model(
            "library",
            "tiny",
            "latest",
            ollama_model(
                [
                    (MODEL_MEDIA_TYPE, os.urandom(6000)),
                    ("application/vnd.ollama.image.template", b"{{ .Prompt }}"),
                ]
            ),
        )
        yield fake


@pytest.fixture(scope="module")
def ui_server(
    tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path, registry: FakeOllamaRegistry
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ui-server")
    registry.allow_key(write_ollama_key(root / "home"))
    assert registry.ca_path is not None
    process = ServerProcess(root, extra_env={"OLLAMA_REGISTRY_CA": str(registry.ca_path)}).start()
    try:
        create_smol(process, smollm2_path)
        short = ollama.Client(host=process.url).create(SHORT, from_=MODEL, parameters={"num_predict": 48})
        assert short.status == "success"
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path_factory.mktemp("chromedriver") / "log"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # Selenium Manager must never reach for the network
        driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """On a failed test, save what the browser showed and print its console log.

    The call's report is logged (and ``session.testsfailed`` counted) before teardown runs, so a rise in
    that count here means this test failed; no hook in a conftest is needed.
    """
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed == failed_before or "browser" not in request.fixturenames:
        return
    driver = request.getfixturevalue("browser")
    path = tmp_path / f"{request.node.name}.png"
    try:
        driver.save_screenshot(str(path))
        print(f"\nscreenshot of the failure: {path}")
        for entry in driver.get_log("browser"):
            print(f"browser console: {entry.get('level')} {entry.get('message')}")
    except WebDriverException as error:
        print(f"\nno screenshot: {error}")


# --- helpers --------------------------------------------------------------------------------------


def wait(driver: Any, condition: Callable[[Any], T], timeout: float = 15, message: str = "") -> T:
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message)


def element(driver: Any, css: str, timeout: float = 15) -> WebElement:
    """The first element matching ``css`` once it is displayed."""

    def shown(d: Any) -> WebElement | bool:
        found = [e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
        return found[0] if found else False

    return wait(driver, shown, timeout, f"no visible {css}")


def state(driver: Any) -> str | None:
    return driver.find_element(By.ID, "messages").get_attribute("data-state")


def last_answer(driver: Any) -> str:
    texts = driver.execute_script(
        "return [...document.querySelectorAll('#messages .message.assistant .content')].map(e => e.textContent)"
    )
    return texts[-1] if texts else ""


def open_page(driver: Any, server: ServerProcess) -> None:
    driver.get(server.url + "/ui/")
    element(driver, "#prompt")


def choose_model(driver: Any, name: str = MODEL) -> None:
    def option(d: Any) -> str | bool:
        for o in Select(d.find_element(By.ID, "model-select")).options:
            value = o.get_attribute("value") or ""
            if value in (name, name.removesuffix(":latest")):
                return value
        return False

    value = wait(driver, option, 15, f"{name} never appeared in #model-select")
    Select(driver.find_element(By.ID, "model-select")).select_by_value(value)


def show_view(driver: Any, nav: str) -> None:
    element(driver, nav).click()


def set_temperature(driver: Any, value: str) -> None:
    """Set this chat's temperature in the settings panel (opened if need be)."""
    if not driver.find_element(By.ID, "settings").get_attribute("open"):
        element(driver, "#settings summary").click()
    field = element(driver, "#temperature")
    field.clear()
    field.send_keys(value)


def send(driver: Any, text: str) -> None:
    prompt = element(driver, "#prompt")
    prompt.clear()
    prompt.send_keys(text)
    element(driver, "#send").click()


def row_text(driver: Any, table: str, model: str, cell: str = "") -> str | None:
    """The text of a table row (or of one of its cells), read in one go: the view re-renders its rows."""
    return driver.execute_script(
        "const r = [...document.querySelectorAll(arguments[0] + ' tr')].find(r => r.dataset.model === arguments[1]);"
        "if (!r) return null; const c = arguments[2] ? r.querySelector(arguments[2]) : r;"
        "return c ? c.innerText : null;",
        table,
        model,
        cell,
    )


def click(driver: Any, css: str, timeout: float = 10) -> None:
    """Click the first visible ``css``, finding it again if the page re-rendered it meanwhile."""

    def clicked(d: Any) -> bool:
        try:
            element(d, css, timeout).click()
            return True
        except StaleElementReferenceException:
            return False

    wait(driver, clicked, timeout, f"could not click {css}")


def open_chat(driver: Any, shown: Callable[[Any], bool]) -> bool:
    """Open the listed chats one by one until ``shown`` holds."""
    count = len(driver.find_elements(By.CSS_SELECTOR, "#chat-list .chat-item"))
    for index in range(count):
        if shown(driver):
            return True
        click(driver, f"#chat-list .chat-item:nth-child({index + 1}) .chat-open")
        try:
            wait(driver, shown, 2)
        except TimeoutException:
            continue
    return shown(driver)


def fetch_from_page(driver: Any, url: str) -> str:
    """``fetch(url)`` in the current page: "status N" or "error Name: message"."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => done('status ' + r.status), e => done('error ' + e.name + ': ' + e.message));",
        url,
    )


# --- the chat -------------------------------------------------------------------------------------


def test_page_streams_an_answer(browser: Any, ui_server: ServerProcess) -> None:
    open_page(browser, ui_server)
    choose_model(browser, SHORT)
    set_temperature(browser, "0")  # the same answer every run (and the settings panel used as a user would)
    send(browser, "Why is the sky blue? Answer in one sentence.")

    element(browser, "#messages .message.user .content")
    lengths: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current, text = browser.execute_script(
            "const m = document.getElementById('messages');"
            "const a = [...m.querySelectorAll('.message.assistant .content')].pop();"
            "return [m.dataset.state, a ? a.textContent : ''];"
        )
        if current != "streaming":
            break
        if not lengths or len(text) != lengths[-1]:
            lengths.append(len(text))
        time.sleep(0.03)
    wait(browser, lambda d: state(d) == "idle", 5, "the page never went back to idle")
    answer = last_answer(browser)
    assert answer.strip(), "no answer shown"
    growing = [n for n in lengths if n > 0]
    assert len(growing) >= 2, f"the answer did not grow while streaming (lengths seen: {lengths})"
    user = browser.find_elements(By.CSS_SELECTOR, "#messages .message.user .content")
    assert "sky blue" in user[-1].text


def test_stop_ends_a_long_answer(browser: Any, ui_server: ServerProcess) -> None:
    element(browser, "#new-chat").click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#messages .message"), 5, "new chat not empty")
    choose_model(browser, MODEL)
    # Greedy, SmolLM2 writes this story for hundreds of tokens (a sampled answer may end at once).
    set_temperature(browser, "0")
    send(browser, "Write a very long story about a dragon who learns to cook.")
    wait(browser, lambda d: len(last_answer(d)) >= 20, 60, "no text arrived to stop")
    assert state(browser) == "streaming", "the answer ended before it could be stopped"

    element(browser, "#stop").click()
    stopped_at = time.monotonic()
    wait(browser, lambda d: state(d) == "idle", 3, "#stop did not return the page to idle within 3 s")
    assert time.monotonic() - stopped_at < 3
    text = last_answer(browser)
    time.sleep(1.0)
    assert last_answer(browser) == text, "the text kept growing after #stop"
    # The next message works: the stopped request did not wedge the page or the server.
    element(browser, "#prompt")
    assert browser.find_element(By.ID, "send").is_enabled()


def test_chats_outlive_a_reload(browser: Any, ui_server: ServerProcess) -> None:
    before = browser.execute_script(
        "return [...document.querySelectorAll('#messages .message .content')].map(e => e.textContent)"
    )
    assert before, "no messages to keep"
    browser.refresh()
    element(browser, "#prompt")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-list .chat-item"), 10, "no chat kept")
    items = browser.find_elements(By.CSS_SELECTOR, "#chat-list .chat-item")
    assert len(items) >= 2, f"two chats were held, the list shows {len(items)}"

    def first_chat_shown(d: Any) -> bool:
        users = d.execute_script(
            "return [...document.querySelectorAll('#messages .message.user .content')].map(e => e.textContent)"
        )
        return any("sky blue" in u for u in users)

    open_chat(browser, first_chat_shown)
    assert first_chat_shown(browser), "the first chat's messages are gone after the reload"
    assert last_answer(browser).strip(), "the first chat's answer is gone after the reload"


XSS = (
    'Before <img src=x onerror="window.__xss=1"> and <script>window.__xss=2</script> after.\n\n'
    "```python\n"
    'print("<b>not bold</b>")\n'
    "```\n"
)


def test_stored_html_is_text_not_elements(browser: Any, ui_server: ServerProcess) -> None:
    # Whatever the page's storage layout, rewrite every stored assistant message to the hostile text.
    rewritten = browser.execute_script(
        """
        const payload = arguments[0];
        let count = 0;
        const walk = (v) => {
          if (Array.isArray(v)) { v.forEach(walk); return; }
          if (v && typeof v === 'object') {
            if (v.role === 'assistant' && typeof v.content === 'string') { v.content = payload; count++; }
            Object.values(v).forEach(walk);
          }
        };
        for (let i = 0; i < localStorage.length; i++) {
          const key = localStorage.key(i);
          let value;
          try { value = JSON.parse(localStorage.getItem(key)); } catch { continue; }
          const before = count;
          walk(value);
          if (count > before) localStorage.setItem(key, JSON.stringify(value));
        }
        return count;
        """,
        XSS,
    )
    assert rewritten, "found no stored assistant message (role 'assistant', string content) in localStorage"
    browser.refresh()
    element(browser, "#prompt")
    open_chat(browser, lambda d: bool(d.find_elements(By.CSS_SELECTOR, "#messages .message.assistant pre code")))
    code = element(browser, "#messages .message.assistant .content pre code")
    assert 'print("<b>not bold</b>")' in code.text
    messages = browser.find_element(By.ID, "messages")
    assert not messages.find_elements(By.TAG_NAME, "img"), "an <img> from the model's text became an element"
    assert not messages.find_elements(By.TAG_NAME, "script")
    assert not messages.find_elements(By.TAG_NAME, "b"), "HTML inside a code block became an element"
    time.sleep(0.3)  # an image's error handler would have fired by now
    assert browser.execute_script("return window.__xss") is None
    shown = last_answer(browser)
    assert "Before" in shown and "after." in shown, shown
    assert '<img src=x onerror="window.__xss=1">' in shown, f"the HTML was dropped, not shown as text: {shown!r}"


# --- the models view ------------------------------------------------------------------------------


def test_models_view_lists_installed_and_loaded(browser: Any, ui_server: ServerProcess) -> None:
    tags = httpx.get(ui_server.url + "/api/tags", timeout=10).json()["models"]
    details = next(m for m in tags if m["name"] == MODEL)["details"]
    show_view(browser, "#nav-models")
    cells = wait(browser, lambda d: row_text(d, "#models-table", MODEL), 10, f"{MODEL} not in #models-table")
    assert re.search(r"\b\d+(\.\d)? MB\b", cells), cells
    assert details["family"] in cells and details["quantization_level"] in cells, (cells, details)
    wait(
        browser,
        lambda d: "completion" in (row_text(d, "#models-table", MODEL, ".capabilities") or ""),
        10,
        "capabilities from /api/show never shown",
    )
    # Loaded by the chats above (both names share one file, so the server may list either); "until" relative.
    loaded = [m["name"] for m in httpx.get(ui_server.url + "/api/ps", timeout=10).json()["models"]]
    assert loaded, "the chats above left no model loaded"
    for name in loaded:
        wait(browser, lambda d, name=name: row_text(d, "#loaded-table", name), 10, f"{name} not in #loaded-table")
        assert row_text(browser, "#loaded-table", name, ".processor") == "100% CPU"
        assert re.search(r"\b\d+ MB\b", row_text(browser, "#loaded-table", name, ".size"))
        until = row_text(browser, "#loaded-table", name, ".until")
        assert re.search(r"\bin \d+ (minutes?|seconds?)\b", until), until


def test_models_view_deletes_after_confirmation(browser: Any, ui_server: ServerProcess) -> None:
    ollama.Client(host=ui_server.url).copy("smol", "smol-copy")
    click(browser, "#models-refresh")
    wait(browser, lambda d: row_text(d, "#models-table", COPY), 10, f"{COPY} not listed")
    delete_copy = f'#models-table tr[data-model="{COPY}"] .delete-model'

    click(browser, delete_copy)
    click(browser, "#cancel-delete")
    time.sleep(0.5)
    assert row_text(browser, "#models-table", COPY) is not None, "cancel deleted the model"
    assert any(m["name"] == COPY for m in httpx.get(ui_server.url + "/api/tags").json()["models"])

    click(browser, delete_copy)
    click(browser, "#confirm-delete")
    wait(browser, lambda d: row_text(d, "#models-table", COPY) is None, 10, f"{COPY} still listed after delete")
    names = [m["name"] for m in httpx.get(ui_server.url + "/api/tags").json()["models"]]
    assert COPY not in names and MODEL in names


def test_models_view_pulls_with_progress(browser: Any, ui_server: ServerProcess, registry: FakeOllamaRegistry) -> None:
    name = f"{registry.host}/library/tiny:latest"
    pull_name = element(browser, "#pull-name")
    pull_name.clear()
    pull_name.send_keys(name)
    element(browser, "#pull-button").click()
    wait(browser, lambda d: row_text(d, "#models-table", name), 20, f"{name} not listed after the pull")
    status = browser.find_element(By.ID, "pull-status").text
    assert "success" in status, status
    progress = browser.find_element(By.ID, "pull-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max")

    missing = f"{registry.host}/library/missing:latest"
    pull_name = element(browser, "#pull-name")
    pull_name.clear()
    pull_name.send_keys(missing)
    element(browser, "#pull-button").click()
    wait(
        browser,
        lambda d: "error" in d.find_element(By.ID, "pull-status").text.lower(),
        20,
        "the pull's error line was not shown",
    )
    assert "file does not exist" in browser.find_element(By.ID, "pull-status").text
    assert row_text(browser, "#models-table", missing) is None


# --- API keys and origins -------------------------------------------------------------------------


def test_page_asks_for_the_api_key(browser: Any, ui_server: ServerProcess, tmp_path: Path) -> None:
    # Another server on the same store, with keys: another port, so another origin with its own storage.
    keyed = ServerProcess(
        tmp_path / "keyed", extra_env={"POLLAMA_API_KEYS": API_KEY, "OLLAMA_MODELS": str(ui_server.models)}
    ).start()
    try:
        assert httpx.get(keyed.url + "/api/tags").status_code == 401
        browser.get(keyed.url + "/ui/")
        key_input = element(browser, "#api-key-input", 15)
        key_input.clear()
        key_input.send_keys(API_KEY)
        element(browser, "#api-key-save").click()
        choose_model(browser)  # the page listed the models once it had the key
        assert browser.execute_script("return Object.values(localStorage).includes(arguments[0])", API_KEY)
    finally:
        keyed.stop()


def test_other_origins_are_refused(browser: Any, ui_server: ServerProcess) -> None:
    open_page(browser, ui_server)
    assert fetch_from_page(browser, ui_server.url + "/api/version") == "status 200"

    # A page of another origin (a data: URL's origin is opaque: the browser sends "Origin: null").
    browser.get("data:text/html,<title>elsewhere</title><p>elsewhere</p>")
    outcome = fetch_from_page(browser, ui_server.url + "/api/version")
    assert outcome.startswith("error TypeError"), outcome
    # What the browser met: the server's origin guard, not only the missing CORS headers.
    for origin in ("null", "https://evil.example"):
        response = httpx.get(ui_server.url + "/api/version", headers={"Origin": origin})
        assert response.status_code == 403, (origin, response.status_code)
    # A page on the same host under another name is refused by the host check (DNS rebinding).
    response = httpx.get(ui_server.url + "/ui/", headers={"Host": f"attacker.example:{ui_server.port}"})
    assert response.status_code == 403
