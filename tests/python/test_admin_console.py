"""The web console in a real headless Chromium (Debian's chromium and
chromium-driver, driven by selenium): log in, see a queue declared over AMQP with
its depth, publish from the page and receive over MQTT, close a connection.

SWITCHBOARD_SCREENSHOTS=DIR also saves the pages the README shows."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid

import pika
import pytest

import support

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(support.is_external(), reason="the console is Switchboard's"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver"),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sb-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # Headless as root in a container, and quiet: no background calls to Google's
    # hosts (this machine's network refuses them).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # the page is still changing under us
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def shot(driver, name):
    d = os.environ.get("SWITCHBOARD_SCREENSHOTS")
    if d:
        os.makedirs(d, exist_ok=True)
        driver.save_screenshot(os.path.join(d, name))


def login(driver, base):
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    wait_for(lambda: driver.find_element(By.ID, "login-user").is_displayed(), what="login form")
    driver.find_element(By.ID, "login-user").send_keys("guest")
    driver.find_element(By.ID, "login-password").send_keys("guest")
    driver.find_element(By.ID, "login-submit").click()
    wait_for(lambda: "guest" in driver.find_element(By.ID, "who").text, what="logged in")


def test_wrong_password_stays_on_the_login_form(browser, broker):
    from selenium.webdriver.common.by import By

    host, port = broker.ports["admin"]
    browser.get(f"http://{host}:{port}/")
    browser.find_element(By.ID, "login-user").send_keys("guest")
    browser.find_element(By.ID, "login-password").send_keys("nope")
    browser.find_element(By.ID, "login-submit").click()
    wait_for(lambda: browser.find_element(By.ID, "login-error").text == "Login failed",
             what="the refusal")
    assert not browser.find_element(By.ID, "nav").is_displayed()


def test_console_shows_amqp_queue_publishes_to_mqtt_and_closes_a_connection(
        browser, broker, ch, mqtt_clients):
    from selenium.webdriver.common.by import By

    host, port = broker.ports["admin"]
    base = f"http://{host}:{port}"
    q = f"pytest.console.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q, durable=True)
    try:
        for i in range(3):
            ch.basic_publish("", q, f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
        login(browser, base)
        # Overview: totals and the protocols of the connections.
        wait_for(lambda: "AMQP 0-9-1" in browser.find_element(By.ID, "protocols").text,
                 what="AMQP in the protocol table")
        shot(browser, "console-overview.png")

        # The queue declared over AMQP, with its depth.
        browser.get(base + "/#queues")
        row = f'#queues-table tr[data-name="{q}"] td.ready'
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, row).text == "3",
                 what="the queue's depth")
        browser.find_element(By.CSS_SELECTOR, f'#queues-table tr[data-name="{q}"] button').click()
        wait_for(lambda: browser.find_element(By.ID, "qd-name").text == q, what="queue detail")
        shot(browser, "console-queues.png")

        # Publish from the page; an MQTT subscriber receives it.
        topic = f"pytest/{uuid.uuid4().hex[:8]}/console"
        sub = mqtt_clients.connected(version=5)
        sub.subscribe(topic, qos=1)
        browser.get(base + "/#exchanges")
        browser.find_element(By.ID, "pub-exchange").clear()
        browser.find_element(By.ID, "pub-exchange").send_keys("amq.topic")
        browser.find_element(By.ID, "pub-key").send_keys(topic.replace("/", "."))
        browser.find_element(By.ID, "pub-payload").send_keys("from the console")
        browser.find_element(By.ID, "pub-submit").click()
        wait_for(lambda: "routed" in browser.find_element(By.ID, "pub-result").text,
                 what="the publish answer")
        assert browser.find_element(By.ID, "pub-result").text == "published, routed"
        [m] = sub.wait_for(1, topic=topic, timeout=5)
        assert m.payload == b"from the console"

        # Close an AMQP connection from the connections page.
        victim = broker.connect(client_properties={"connection_name": "console-victim"})
        name = f"127.0.0.1:{victim._impl._transport._sock.getsockname()[1]}"
        browser.get(base + "/#connections")
        sel = f'#connections-table tr[data-name="{name}"] button'
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, sel), what="the connection row")
        browser.find_element(By.CSS_SELECTOR, sel).click()
        browser.switch_to.alert.accept()
        with pytest.raises(pika.exceptions.ConnectionClosed) as e:
            for _ in range(100):
                victim.process_data_events(time_limit=0.1)
        assert e.value.reply_code == 320
        wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, sel),
                 what="the row to go")
    finally:
        ch.queue_delete(q)


def test_overview_charts_message_rates_live(browser, broker, ch):
    """Traffic shows on the overview as rates (cards and a chart), refreshed
    while the page stays open."""
    from selenium.webdriver.common.by import By

    host, port = broker.ports["admin"]
    q = f"pytest.console.rates.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q)
    try:
        login(browser, f"http://{host}:{port}")
        card = "#total-publish-rate b"
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, card), what="the rate cards")
        rate = lambda: float(browser.find_element(By.CSS_SELECTOR, card).text)
        chart = """const c = document.getElementById('rates-chart');
                   const blank = document.createElement('canvas');
                   blank.width = c.width; blank.height = c.height;
                   return c.toDataURL() !== blank.toDataURL();"""
        # Publish for a little over two sampling intervals (5 s each), so the
        # page sees a rate computed from two samples that both saw traffic.
        deadline = time.monotonic() + 30
        while rate() == 0 and time.monotonic() < deadline:
            for _ in range(20):
                ch.basic_publish("", q, b"r")
            ch.connection.process_data_events(time_limit=0.2)
        assert rate() > 0
        assert browser.execute_script(chart)
        shot(browser, "console-rates.png")
    finally:
        ch.queue_delete(q)


def test_users_page_sets_and_clears_permissions(browser, broker):
    """A user added on the page can log in over AMQP once given permissions there."""
    from selenium.webdriver.common.by import By

    host, port = broker.ports["admin"]
    name = f"console-{uuid.uuid4().hex[:8]}"
    login(browser, f"http://{host}:{port}")
    browser.get(f"http://{host}:{port}/#users")
    wait_for(lambda: browser.find_element(By.ID, "user-name").is_displayed(), what="users page")
    browser.find_element(By.ID, "user-name").send_keys(name)
    browser.find_element(By.ID, "user-password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    amqp_host, amqp_port = broker.ports["amqp"]
    params = pika.ConnectionParameters(amqp_host, amqp_port,
                                       credentials=pika.PlainCredentials(name, "pw"))
    wait_for(lambda: any(name in r.text for r in
                         browser.find_elements(By.CSS_SELECTOR, "#users-table tr")),
             what="the new user")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(params)
    browser.find_element(By.ID, "perm-user").send_keys(name)
    browser.find_element(By.ID, "perm-submit").click()
    row = f'#permissions-table tr[data-name="{name}@/"]'
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, row), what="the permission row")
    pika.BlockingConnection(params).close()
    shot(browser, "console-users.png")
    browser.find_element(By.CSS_SELECTOR, row + " button").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, row), what="the row to go")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(params)


def test_topics_page_lists_sns_sqs_and_mqtt(browser, broker, sqs, sns, mqtt_clients):
    """The console's topics page: an SNS topic, an SQS queue and an MQTT persistent
    session made by their own protocols' clients."""
    from selenium.webdriver.common.by import By

    host, port = broker.ports["admin"]
    arn = sns.topic()
    url = sqs.queue()
    cid = f"console-{uuid.uuid4().hex[:8]}"
    m = mqtt_clients(4, cid=cid, clean=False)
    m.connect()
    m.subscribe(f"pytest/{cid}/#", qos=1)
    login(browser, f"http://{host}:{port}")
    browser.get(f"http://{host}:{port}/#topics")
    for sel in (f'#sns-topics tr[data-name="{arn.rsplit(":", 1)[1]}"]',
                f'#sqs-queues tr[data-name="{url.rsplit("/", 1)[1]}"]',
                f'#mqtt-sessions tr[data-name="{cid}"]'):
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, sel), what=sel)
    row = browser.find_element(By.CSS_SELECTOR, f'#mqtt-sessions tr[data-name="{cid}"]')
    assert f"pytest/{cid}/# (QoS 1)" in row.text
    m.close()
