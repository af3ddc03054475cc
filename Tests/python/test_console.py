"""The operations console (issue 18) in a real browser: headless Chromium from Debian's packages,
driven by Selenium, against a running `dev --keep-running` stack.

An operator signs in, finds the dead letter of the dev scenario's malformed event, corrects it
and replays it (checked on the results topic and in the Duo emulator), approves a held
deprovision (checked in Duo), opens an employee's timeline and runs an audit. Every page is
saved as a screenshot under $CONSOLE_SCREENSHOTS (default: a temporary directory; not
committed). Plain HTTP checks cover 401, the CSRF 403 and the read-only 403.
"""
import http.cookiejar
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from conftest import BINARY

SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-screenshots-")
CORRECTED = '{"employee_id": "E666", "email": "e666@example.com", "first_name": "Eve", "last_name": "Sixsix", "roles": ["engineering"], "sequence": 1}'


def request(url, data=None, headers=None, opener=None):
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def csrf_of(page):
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has a CSRF field"
    return match.group(1)


def emulator_users(stack):
    with urllib.request.urlopen(stack.emulator + "/__emulator/state", timeout=30) as response:
        return json.loads(response.read())["users"]


def wait_until(stack, what, check, timeout=60, driver=None):
    """Waits for `check` to hold; if it does not in time, fails with the dev stack's last log
    lines and, given the browser, the text of the page it was on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    page = ""
    if driver is not None:
        try:
            page = f"\nthe page ({driver.current_url}):\n" + driver.find_element(By.TAG_NAME, "main").text
        except WebDriverException as error:
            page = f"\nthe page could not be read: {error}"
    raise AssertionError(f"timed out waiting for {what}; the stack's last log lines:\n" + "\n".join(stack.errors[-40:]) + page)


def wait_for_text(driver, locator, text, timeout=20):
    """Waits for `text` in the element at `locator`. While a page is replaced, Chromium can
    answer a lookup with "Node with given id does not belong to the document" (a plain
    WebDriverException, not a stale element): that is looked at again, not a failure."""
    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        EC.text_to_be_present_in_element(locator, text))


def submit(driver, button, timeout=20):
    """Clicks a form's button and waits until its page is gone. The form is sent only once the
    click's navigation starts, and a page loaded or a link clicked before that cancels it."""
    button.click()
    WebDriverWait(driver, timeout).until(EC.staleness_of(button))


def results(stack):
    out = subprocess.run(["kcat", "-C", "-b", stack.bootstrap, "-t", "duo.provisioning.results.v1", "-e", "-q"],
                         capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def console(dev_stack):
    assert dev_stack.console and dev_stack.operator_token and dev_stack.readonly_token, "dev --keep-running prints the console and its tokens"
    return dev_stack


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shot(driver, name):
    path = os.path.join(SCREENSHOTS, f"{name}.png")
    driver.save_screenshot(path)
    print(f"screenshot: {path}")


def test_unauthenticated_requests_get_401(console):
    for path in ("/console/", "/console/dead-letters", "/console/holds", "/console/employees/E100"):
        status, body = request(console.console.rstrip("/") + path.removeprefix("/console"))
        assert status == 401, path
        assert 'name="token"' in body, "the login form comes with the 401"
    status, _ = request(console.console + "holds/approve", data={"all": "1"})
    assert status == 401
    status, _ = request(console.console, headers={"Authorization": "Bearer not-a-console-token-at-all"})
    assert status == 401


def test_a_post_without_the_csrf_token_gets_403_and_changes_nothing(console):
    auth = {"Authorization": "Bearer " + console.operator_token}
    status, body = request(console.console + "holds/reject", data={"all": "1", "confirm": "yes", "count": "1"}, headers=auth)
    assert status == 403 and "CSRF" in body
    status, _ = request(console.console + "dead-letters/replay", data={"letters": "0/0", "confirm": "yes", "csrf": "forged"}, headers=auth)
    assert status == 403


def test_a_read_only_user_can_read_but_not_replay(console):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, page = request(console.console + "login", data={"token": console.readonly_token, "name": "auditor"}, opener=opener)
    assert status == 200 and "Signed in as" in page and "read-only" in page
    status, page = request(console.console + "dead-letters", opener=opener)
    assert status == 200 and "dev-bad" in page
    assert 'name="letters"' not in page, "no replay controls for a read-only user"
    status, body = request(console.console + "dead-letters/replay", data={"letters": "0/0", "confirm": "yes", "csrf": csrf_of(page)}, opener=opener)
    assert status == 403 and "read-only" in body
    assert console.readonly_token not in page and console.operator_token not in page, "no secret is rendered"


def test_an_operator_fixes_and_replays_the_malformed_event_and_approves_a_held_deprovision(console, browser):
    # Sign in through the login form.
    browser.get(console.console)
    shot(browser, "01-login")
    browser.find_element(By.ID, "token").send_keys(console.operator_token)
    browser.find_element(By.ID, "name").send_keys("selenium-operator")
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button[type=submit]").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Overview")
    assert "Signed in as selenium-operator (operator)" in browser.find_element(By.CLASS_NAME, "who").text
    assert "Leaver lockout, last hour" in browser.page_source
    shot(browser, "02-overview")

    # The dead letter of the malformed sample event.
    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Dead letters")
    Select(browser.find_element(By.ID, "reason")).select_by_value("validation")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    shot(browser, "03-dead-letters")
    browser.find_element(By.LINK_TEXT, "dev-bad").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Dead letter dev-bad")
    assert "not valid JSON" in browser.page_source
    shot(browser, "04-dead-letter")

    # Correct it, preview (nothing published yet), then replay.
    value = browser.find_element(By.ID, "value")
    value.clear()
    value.send_keys(CORRECTED)
    browser.find_element(By.XPATH, "//button[normalize-space()='Preview replay']").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Preview: replay 1 dead letter(s)")
    assert "valid" in browser.find_element(By.CSS_SELECTOR, "table").text
    assert not any(u.get("email") == "e666@example.com" for u in emulator_users(console)), "the preview changed nothing"
    shot(browser, "05-replay-preview")
    browser.find_element(By.XPATH, "//button[normalize-space()='Replay 1 dead letter(s)']").click()
    wait_for_text(browser, (By.CSS_SELECTOR, "[role=status]"), "Replayed 1 dead letter(s).")
    shot(browser, "06-replayed")
    # The user is created first and given its groups right after: wait for the whole command.
    user = wait_until(console, "E666's Duo user with its groups", lambda: next(
        (u for u in emulator_users(console) if u.get("email") == "e666@example.com" and len(u["groups"]) == 2), None))
    assert user["status"] == "active" and sorted(g["name"] for g in user["groups"]) == ["Engineering", "VPN"]
    outcomes = wait_until(console, "the replayed event's result",
                          lambda: [r["outcome"] for r in results(console) if r["source_event"]["id"] == "dev-bad"][1:] or None)
    assert outcomes == ["applied"]

    # Terminations beyond the guard's 2 an hour (the dev scenario's two used them) are held.
    def publish_termination(employee):
        out = subprocess.run([BINARY, "publish", "--bootstrap", console.bootstrap, "--type", "terminated", "--employee-id", employee],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr

    def held_now():
        status, page = request(console.console + "holds", headers={"Authorization": f"Bearer {console.operator_token}"})
        match = re.search(r"(\d+) held deprovision\(s\)\.", page) if status == 200 else None
        return int(match.group(1)) if match else None

    publish_termination("E104")
    wait_until(console, "E104's deprovision held", lambda: held_now() == 1)
    browser.get(console.console + "holds")
    assert "1 held deprovision(s)." in browser.page_source
    shot(browser, "07-holds")
    # Two more are held while the operator looks at the list of one.
    publish_termination("E105")
    publish_termination("E106")
    wait_until(console, "three deprovisions held", lambda: held_now() == 3)
    # "Approve all 1" approves the one the operator saw; the confirmation says two more came since.
    browser.find_element(By.XPATH, "//button[normalize-space()='Approve all 1']").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Confirm: approve 1")
    assert "Approve 1 held deprovision(s)?" in browser.page_source, "the confirmation names the count"
    assert "2 more deprovision(s) were held after the list was shown" in browser.page_source
    assert "E104" in browser.find_element(By.TAG_NAME, "main").text and "E105" not in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "08-holds-confirm")
    browser.find_element(By.XPATH, "//button[normalize-space()='Approve 1 held deprovision(s)']").click()
    wait_for_text(browser, (By.CSS_SELECTOR, "[role=status]"), "approved 1")
    shot(browser, "09-holds-approved")
    assert held_now() == 2, "the two held after the list was shown are still held"
    # Then the other two, from a fresh list.
    browser.get(console.console + "holds")
    browser.find_element(By.XPATH, "//button[normalize-space()='Approve all 2']").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Confirm: approve 2")
    assert "were held after the list was shown" not in browser.page_source
    browser.find_element(By.XPATH, "//button[normalize-space()='Approve 2 held deprovision(s)']").click()
    wait_for_text(browser, (By.CSS_SELECTOR, "[role=status]"), "approved 2")
    for username in ("katherine", "margaret", "edsger"):
        wait_until(console, f"{username} disabled in Duo",
                            lambda: any(u["username"] == username and u["status"] == "disabled" for u in emulator_users(console)))

    # The helpdesk view: search by username, open the timeline.
    browser.get(console.console + "employees")
    browser.find_element(By.ID, "q").send_keys("katherine")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]"))
    browser.find_element(By.LINK_TEXT, "E104").click()
    wait_for_text(browser, (By.TAG_NAME, "h1"), "Employee E104")
    timeline = browser.find_element(By.ID, "timeline-h").find_element(By.XPATH, "..").text
    assert "hr.employee.terminated" in timeline and "hr.employee.hired" in timeline
    assert "disabled" in browser.find_element(By.ID, "duo-h").find_element(By.XPATH, "..").text
    shot(browser, "10-employee")

    # Findings: a dry-run audit from the console.
    browser.get(console.console + "findings")
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Run a dry-run audit now']"))
    wait_until(console, "the audit's findings", lambda: (browser.get(console.console + "findings"), "Duo user(s) against" in browser.page_source)[1],
               driver=browser)
    shot(browser, "11-findings")

    # Every action is in the audit trail, and on the audit topic.
    browser.get(console.console + "audit")
    trail = browser.find_element(By.TAG_NAME, "main").text
    assert "selenium-operator" in trail and "dlq.replay" in trail and "holds.approve" in trail
    shot(browser, "12-audit")
    out = subprocess.run(["kcat", "-C", "-b", console.bootstrap, "-t", "duo.lifecycle.audit.v1", "-e", "-q"], capture_output=True, text=True, timeout=60)
    actions = [json.loads(line)["action"] for line in out.stdout.splitlines() if line.strip()]
    assert "dlq.replay" in actions and "holds.approve" in actions
    assert console.operator_token not in browser.page_source


def test_reading_works_without_javascript_and_every_control_has_a_label(console):
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(console.console + "login")
        driver.find_element(By.ID, "token").send_keys(console.readonly_token)
        driver.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button[type=submit]").click()
        wait_for_text(driver, (By.TAG_NAME, "h1"), "Overview")
        for path, heading in [("", "Overview"), ("dead-letters", "Dead letters"), ("holds", "Held deprovisions"),
                              ("employees?q=E100", "Employees"), ("employees/E100", "Employee E100"), ("findings", "Findings"), ("audit", "Audit trail")]:
            driver.get(console.console + path)
            assert driver.find_element(By.TAG_NAME, "h1").text == heading, path
            # Every visible form control is labelled (a <label for>, or an aria-label).
            for control in driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
                if not control.is_displayed():
                    continue
                control_id = control.get_attribute("id")
                labelled = control.get_attribute("aria-label") or (control_id and driver.find_elements(By.CSS_SELECTOR, f"label[for='{control_id}']"))
                assert labelled, f"{path}: an unlabelled {control.tag_name} {control.get_attribute('name')}"
            # A skip link first, and the current section marked for assistive technology.
            assert driver.find_element(By.CSS_SELECTOR, "a.skip").get_attribute("href").endswith("#main")
        assert driver.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == "Audit trail"
        shot(driver, "13-no-javascript-audit")
    finally:
        driver.quit()
