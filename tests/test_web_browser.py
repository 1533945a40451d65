"""The web chat and the agent desk in a real browser (headless Chromium through Selenium),
talking to each other through a running web gateway over an embedded engine.

Skipped where Chromium or its driver is not installed (Debian: ``apt-get install chromium
chromium-driver``); ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from runtime.gateway import Gateway
from runtime.web import WebOptions, create_app
from tests.conftest import storage_config, watchdog
from tests.web_support import KEY, token

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None, reason="headless Chromium and chromedriver not installed"
)
#: The whole test: two pages, an engine and a browser on a shared 2-core machine.
LIMIT_S = 90.0
WAIT_S = 20.0

CONNECTOR = token("connector", "webchat", "WEB")["Authorization"][7:]
ALICE = token("agent", "alice")["Authorization"][7:]
BOB = token("agent", "bob")["Authorization"][7:]
SMS_CONNECTOR = token("connector", "sms", "SMS")["Authorization"][7:]


#: Offers wait for the agent's Accept (long enough for a reload in between).
OFFERS = {"routing": {"auto_accept": False, "accept_timeout_seconds": 60}}


@contextlib.contextmanager
def serve(config: dict[str, Any]) -> Iterator[str]:
    """The web gateway on a free loopback port, over an embedded engine; its base URL."""
    app = create_app(lambda: Gateway.embedded(config), WebOptions(KEY))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    with serve(storage_config(tmp_path)) as base:
        yield base


@pytest.fixture
def offering_site(tmp_path: Path) -> Iterator[str]:
    """As ``site``, with offers that the agent accepts on its desk."""
    with serve({**storage_config(tmp_path), **OFFERS}) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def wait_for(driver: Any, element_id: str, words: str) -> None:
    WebDriverWait(driver, WAIT_S).until(lambda d: words in text_of(d, element_id))


def call(driver: Any, bearer: str, op: str, args: dict[str, Any]) -> Any:
    """An operation from the page (its ``cx.call``): the result, or the error it was refused with."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "cx.call(arguments[0], arguments[1], arguments[2]).then("
        "(result) => done({result}), (error) => done({error}));"
    )
    return driver.execute_async_script(script, bearer, op, args)


def open_desk(driver: Any, site: str, bearer: str) -> str:
    """A new tab with a desk logged in and ready; its window handle."""
    driver.switch_to.new_window("tab")
    driver.get(f"{site}/pages/desk.html#token={bearer}")
    driver.find_element(By.ID, "login").click()
    wait_for(driver, "status", "connected")
    driver.find_element(By.ID, "ready").click()
    return str(driver.current_window_handle)


def open_first_conversation(driver: Any, words: str) -> None:
    """On a desk: wait for a conversation, open it, wait for ``words`` in its transcript."""
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#list li"))
    driver.find_element(By.CSS_SELECTOR, "#list li").click()
    wait_for(driver, "transcript", words)


def chat_asking_for_alice(driver: Any, site: str) -> tuple[str, str]:
    """Alice's desk and a customer chat that asked for an agent: (desk, chat) window handles,
    the chat's in front."""
    desk = open_desk(driver, site, ALICE)
    driver.switch_to.new_window("tab")
    chat = str(driver.current_window_handle)
    driver.get(f"{site}/pages/chat.html#token={CONNECTOR}")
    driver.find_element(By.ID, "start").click()
    wait_for(driver, "transcript", "Assistant: Hello!")
    driver.find_element(By.ID, "text").send_keys("I want an agent\n")
    return desk, chat


def chat_with_alice(driver: Any, site: str) -> tuple[str, str]:
    """Alice's desk and a customer chat that asked for an agent and got Alice, the desk showing
    the conversation: (desk, chat) window handles, the desk's in front."""
    desk, chat = chat_asking_for_alice(driver, site)
    wait_for(driver, "transcript", "alice joined")
    driver.switch_to.window(desk)
    open_first_conversation(driver, "I want an agent")
    return desk, chat


def test_a_customer_page_and_an_agent_page_talk_and_a_reload_resumes_without_a_gap(
    site: str, browser: Any
) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        desk, chat = chat_with_alice(browser, site)
        browser.find_element(By.ID, "text").send_keys("Hi, Alice here\n")

        browser.switch_to.window(chat)
        wait_for(browser, "transcript", "alice: Hi, Alice here")
        browser.refresh()
        wait_for(browser, "status", "connected")
        browser.switch_to.window(desk)
        browser.find_element(By.ID, "text").send_keys("After your reload\n")
        browser.switch_to.window(chat)
        wait_for(browser, "transcript", "alice: After your reload")
        lines = text_of(browser, "transcript").splitlines()

    assert lines.count("alice: Hi, Alice here") == 1
    assert lines.count("You: I want an agent") == 1
    assert lines.index("alice: Hi, Alice here") < lines.index("alice: After your reload")


def test_the_agents_typing_is_shown_in_the_customer_page(site: str, browser: Any) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        _, chat = chat_with_alice(browser, site)
        browser.find_element(By.ID, "text").send_keys("Let me check")  # typed, not sent
        browser.switch_to.window(chat)
        wait_for(browser, "typing", "alice is typing")
        shown = text_of(browser, "transcript")
    assert "Let me check" not in shown


def test_a_transfer_from_a_desk_reaches_a_second_desk_with_its_note(site: str, browser: Any) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        alice, chat = chat_with_alice(browser, site)
        bob = open_desk(browser, site, BOB)
        browser.switch_to.window(alice)
        Select(browser.find_element(By.ID, "target-kind")).select_by_value("to_agent_id")
        browser.find_element(By.ID, "target").send_keys("bob")
        browser.find_element(By.ID, "note").send_keys("wants a refund")
        browser.find_element(By.ID, "transfer").click()
        browser.switch_to.window(bob)
        open_first_conversation(browser, "note: wants a refund")
        on_bobs_desk = text_of(browser, "transcript")
        browser.switch_to.window(chat)
        wait_for(browser, "transcript", "bob joined")
    assert "I want an agent" in on_bobs_desk
    assert "alice transferred it to bob" in on_bobs_desk


def test_the_chat_page_shows_that_the_conversation_has_ended_at_its_final_event(
    site: str, browser: Any
) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        browser.get(f"{site}/pages/chat.html#token={CONNECTOR}")
        browser.find_element(By.ID, "start").click()
        wait_for(browser, "transcript", "Assistant: Hello!")
        session = browser.execute_script("return state.session")
        call(browser, CONNECTOR, "end_session", {"channel_session_id": session})  # no END_CONVERSATION
        wait_for(browser, "transcript", "the conversation has ended")
        lines = text_of(browser, "transcript").splitlines()
        writable = browser.find_element(By.ID, "write").is_displayed()
    assert lines.count(": the conversation has ended") == 1
    assert not writable


def test_from_the_pages_an_agent_cannot_act_as_another_and_a_connector_cannot_read_another_channel(
    site: str, browser: Any
) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        browser.get(f"{site}/pages/chat.html")
        opened = call(browser, CONNECTOR, "start_session",
                      {"customer_id": "c1", "channel": "WEB", "identifier": "b1"})  # fmt: skip
        as_bob = call(browser, ALICE, "agent_login", {"agent_id": "bob"})
        read = call(browser, SMS_CONNECTOR, "events",
                    {"conversation_id": opened["result"]["conversation_id"]})  # fmt: skip
    assert as_bob["error"]["type"] == "forbidden"
    assert read["error"]["type"] == "forbidden"


def test_a_desk_reload_shows_its_conversations_and_what_came_while_away(
    site: str, browser: Any
) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        desk, chat = chat_with_alice(browser, site)
        browser.get("about:blank")  # the desk is away
        browser.switch_to.window(chat)
        browser.find_element(By.ID, "text").send_keys("Are you still there?\n")
        wait_for(browser, "transcript", "You: Are you still there?")
        browser.switch_to.window(desk)
        browser.get(f"{site}/pages/desk.html#token={ALICE}")  # back, without logging in again
        wait_for(browser, "status", "connected")
        open_first_conversation(browser, "Are you still there?")
        lines = text_of(browser, "transcript").splitlines()
        listed = browser.find_elements(By.CSS_SELECTOR, "#list li")
    assert len(listed) == 1
    assert lines.count("visitor: I want an agent") == 1
    assert lines.index("visitor: I want an agent") < lines.index("visitor: Are you still there?")


def test_a_second_desk_of_a_logged_in_agent_logs_in_and_lists_its_conversations(
    site: str, browser: Any
) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        chat_with_alice(browser, site)
        open_desk(browser, site, ALICE)  # a new tab: its own login, refused as logged in already
        open_first_conversation(browser, "I want an agent")
        shown = text_of(browser, "status")
    assert "agent_login" not in shown


def test_a_desk_reload_shows_an_offer_still_pending_and_accepting_it_joins(
    offering_site: str, browser: Any
) -> None:
    with watchdog(LIMIT_S, "the browser test"):
        desk, chat = chat_asking_for_alice(browser, offering_site)
        browser.switch_to.window(desk)
        wait_for(browser, "list", "(offered)")
        browser.refresh()
        wait_for(browser, "list", "(offered)")
        browser.find_element(By.CSS_SELECTOR, "#list li").click()
        browser.find_element(By.ID, "accept").click()
        browser.switch_to.window(chat)
        wait_for(browser, "transcript", "alice joined")
