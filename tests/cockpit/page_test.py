#!/usr/bin/python3
"""Drives xdpd's Cockpit page in headless Chromium (Selenium).

Run by tests/tests/cockpit.rs, which starts the private bus, the service,
the veth pair and cockpit-ws, and passes everything in the environment:

  XDPD_URL          the page (served by cockpit-ws)
  XDPD_ADDRESS      the private system bus (for xdpctl)
  XDPCTL            the built xdpctl
  XDPD_IFACE        the test interface (in the service's namespace)
  XDPD_SERVICE_NS   the service's network namespace (where XDPD_IFACE lives)
  XDPD_SENDER_NS    the namespace to send traffic from
  XDPD_TARGET       the address of XDPD_IFACE
  XDPD_LINK_PIN     the pinned bpf_link of XDPD_IFACE's chain (detached to play a foreign tool)
  XDPD_OBJECTS      directory holding proto_count.o, port_block.o and basic.o
  XDPD_PROFILE      a fresh, empty directory for Chromium's profile
  XDPD_SCREENSHOT   where to write the screenshot
  XDPD_IDLE_TIMEOUT the service's --idle-timeout
  XDPD_MODE         "admin" (the default) or "readonly"

Prints one line per step; exits non-zero with the reason on the first failure.
"""

import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ENV = os.environ
IFACE = ENV["XDPD_IFACE"]
LIVE = 2.0  # seconds within which a change must show, without reload


def step(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def fail(text):
    raise AssertionError(text)


def xdpctl(*args, stdin=None):
    cmd = [ENV["XDPCTL"], "--address", ENV["XDPD_ADDRESS"], "--no-ask-password", "--json", *args]
    out = subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)
    if out.returncode != 0:
        fail(f"xdpctl {' '.join(args)}: exit {out.returncode}: {out.stderr.decode()}")
    return json.loads(out.stdout.decode())


def chain():
    """The test interface's programs, as xdpctl sees them."""
    return xdpctl("status", IFACE)["interfaces"][0]["programs"]


def send_udp(count, port):
    """Datagrams to the test interface from the other namespace."""
    code = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"for i in range({count}):\n"
        f"    s.sendto(b'xdpd', ('{ENV['XDPD_TARGET']}', {port}))\n"
        "    time.sleep(0.002)\n"
    )
    subprocess.run(["ip", "netns", "exec", ENV["XDPD_SENDER_NS"], sys.executable, "-c", code], check=True, timeout=60)


def service_running():
    out = subprocess.run(["busctl", f"--address={ENV['XDPD_ADDRESS']}", "call", "org.freedesktop.DBus",
                          "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", "org.xdp.Manager1"],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip() == "b true"


def wait_service_gone():
    """The test's service exits after XDPD_IDLE_TIMEOUT seconds without calls."""
    deadline = time.monotonic() + int(ENV["XDPD_IDLE_TIMEOUT"]) + 20
    while service_running():
        if time.monotonic() > deadline:
            fail("the service did not exit when idle")
        time.sleep(0.2)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        f"--user-data-dir={ENV['XDPD_PROFILE']}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path="/usr/bin/chromedriver", log_path=os.devnull)
    return webdriver.Chrome(service=service, options=options)


class Page:
    def __init__(self, driver):
        self.d = driver

    def wait(self, what, predicate, timeout):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.05,
                                 ignored_exceptions=[StaleElementReferenceException]).until(lambda d: predicate())
        except TimeoutException:
            fail(f"{what}: not within {timeout} s\n--- page ---\n{self.text()}")

    def text(self):
        try:
            return self.d.find_element(By.TAG_NAME, "body").text
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return f"(no page text: {e})"

    def link(self, name):
        found = self.d.find_elements(By.CSS_SELECTOR, f'section.xdp-link[data-name="{name}"]')
        return found[0] if found else None

    def rows(self, name=IFACE):
        link = self.link(name)
        return link.find_elements(By.CSS_SELECTOR, "tbody tr") if link else []

    def row(self, program_name, name=IFACE):
        for row in self.rows(name):
            if row.get_attribute("data-name") == program_name:
                return row
        return None

    def count(self, program_name, verdict):
        row = self.row(program_name)
        if row is None:
            return None
        cells = row.find_elements(By.CSS_SELECTOR, f'[data-verdict="{verdict}"]')
        return int(cells[0].get_attribute("data-count")) if cells else None

    def click(self, css, within=None):
        (within or self.d).find_element(By.CSS_SELECTOR, css).click()

    def dialog_open(self):
        return not self.d.find_element(By.ID, "dialog-backdrop").get_attribute("hidden")


CONSOLE_ERRORS = []


def collect_console(driver, only_ours=False):
    """Keeps the console's errors (SEVERE) since the last call; with only_ours,
    those of other pages (Cockpit's shell, its system pages) are shown, not kept."""
    for entry in driver.get_log("browser"):
        if entry.get("level") != "SEVERE":
            continue
        if only_ours and "/xdpd/" not in entry["message"]:
            print(f"  (console, not this page: {entry['message'][:200]})", flush=True)
            continue
        CONSOLE_ERRORS.append(entry["message"])


def admin_run(page, driver):
    objects = ENV["XDPD_OBJECTS"]

    step("the page lists the test interfaces")
    page.wait("the test interface on the page", lambda: page.link(IFACE) is not None, 60)
    page.wait("lo on the page", lambda: page.link("lo") is not None, 5)
    if page.rows():
        fail(f"{IFACE} should start without programs:\n{page.text()}")
    if page.d.find_elements(By.ID, "readonly-notice"):
        fail("the administrator's page says it is read-only")

    step("the service exits when idle; the page keeps its view and follows the next instance")
    wait_service_gone()
    page.wait("the interfaces still listed", lambda: page.link(IFACE) is not None and page.link("lo") is not None, 1)

    step("interfaces appearing while the service is down show once it runs again; renamed and deleted ones at once")
    ns = ENV["XDPD_SERVICE_NS"]
    ip = lambda *args: subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, timeout=30)
    ip("link", "add", "xdpd-new0", "type", "veth", "peer", "name", "xdpd-new1")
    if service_running():
        fail("the service should still be down (idle exit)")
    xdpctl("status")  # any call starts it again; the page must read everything from the new instance
    page.wait("the new interfaces", lambda: page.link("xdpd-new0") is not None and page.link("xdpd-new1") is not None, LIVE)
    ip("link", "set", "xdpd-new0", "name", "xdpd-renamed")
    page.wait("the renamed interface", lambda: page.link("xdpd-renamed") is not None and page.link("xdpd-new0") is None, LIVE)
    ip("link", "del", "xdpd-renamed")
    page.wait("the deleted interfaces gone", lambda: page.link("xdpd-renamed") is None and page.link("xdpd-new1") is None, LIVE)

    step("a program added with xdpctl appears without reload")
    added = xdpctl("add", IFACE, f"{objects}/proto_count.o", "--tag", "demo-counter", "--priority", "90")
    start = time.monotonic()
    page.wait("the program added with xdpctl", lambda: page.row("proto_count") is not None, LIVE)
    step(f"  shown after {time.monotonic() - start:.2f} s")
    row = page.row("proto_count")
    for expected in ["demo-counter", "90", "root", "pass", "linked, inlined", str(added["id"])]:
        if expected not in row.text:
            fail(f"the row of proto_count lacks {expected!r}: {row.text}")
    mode = page.link(IFACE).find_element(By.CSS_SELECTOR, ".xdp-mode").text
    if mode not in ("native", "generic"):
        fail(f"the mode shown is {mode!r}")

    step("adding a program from the page (file upload)")
    page.click(".xdp-add", page.link(IFACE))
    page.wait("the add dialog", page.dialog_open, 5)
    driver.find_element(By.ID, "add-file").send_keys(f"{objects}/port_block.o")
    driver.find_element(By.ID, "add-priority").send_keys("20")
    driver.find_element(By.ID, "add-tag").send_keys("firewall")
    page.click("#dialog-submit")
    page.wait("port_block added from the page", lambda: page.row("port_block") is not None, 30)
    page.wait("the add dialog closed", lambda: not page.dialog_open(), 5)
    programs = chain()
    if [p["name"] for p in programs] != ["port_block", "proto_count"] or programs[0]["tag"] != "firewall":
        fail(f"the service's chain after adding from the page: {programs}")
    positions = [r.get_attribute("data-name") for r in page.rows()]
    if positions != ["port_block", "proto_count"]:
        fail(f"the page's run order is {positions}")

    step("errors show the service's message")
    bogus = os.path.join(ENV["XDPD_PROFILE"], "not-an-object.o")
    with open(bogus, "w") as f:
        f.write("this is not an ELF object\n")
    page.click(".xdp-add", page.link(IFACE))
    page.wait("the add dialog", page.dialog_open, 5)
    driver.find_element(By.ID, "add-file").send_keys(bogus)
    page.click("#dialog-submit")
    error = driver.find_element(By.ID, "dialog-error")
    page.wait("the service's error in the dialog", lambda: error.is_displayed() and "ELF" in error.text, 30)
    if not error.text.startswith("cannot add not-an-object.o to "):
        fail(f"the error does not name the file: {error.text}")
    step(f"  shown: {error.text.splitlines()[0]}")
    driver.save_screenshot(ENV["XDPD_SCREENSHOT"].replace(".png", "-error.png"))
    page.click("#dialog-cancel")
    page.wait("the dialog closed", lambda: not page.dialog_open(), 5)

    step("counting on by default; off and on again from the page; traffic makes a counter rise")
    counting = lambda: xdpctl("status", IFACE)["interfaces"][0]["counting"]
    if not counting():
        fail("counting is not on by default")
    page.click(".xdp-switch", page.link(IFACE))
    page.wait("Counting off at the service", lambda: not counting(), 10)
    page.click(".xdp-switch", page.link(IFACE))
    page.wait("Counting on at the service", counting, 10)
    # port_block drops what goes to port 9000 (its application would fill the map).
    port_block = next(p for p in chain() if p["name"] == "port_block")
    xdpctl("maps", IFACE, str(port_block["id"]), "blocked_ports", "--set", "9000=0")
    send_udp(50, port=7000)
    page.wait("a pass counter of proto_count", lambda: (page.count("proto_count", "pass") or 0) >= 50, 10)
    first = page.count("proto_count", "pass")
    send_udp(200, port=7000)
    send_udp(40, port=9000)
    page.wait("the pass counter rising", lambda: (page.count("proto_count", "pass") or 0) >= first + 200, 10)
    page.wait("port_block's drop counter", lambda: (page.count("port_block", "drop") or 0) >= 40, 10)
    step(f"  proto_count pass: {first} -> {page.count('proto_count', 'pass')}, port_block drop: {page.count('port_block', 'drop')}")
    # A rate shows next to the count while traffic flows.
    send_udp(300, port=7000)
    rate = lambda: page.row("proto_count").find_element(By.CSS_SELECTOR, '[data-verdict="pass"] .xdp-verdict-rate').text
    page.wait("a rate next to the counter", lambda: rate().endswith("/s") and rate() not in ("0/s", "0.0/s"), 10)

    # The page keeps the service up while it shows counts (they restart from zero with it).
    before = page.count("proto_count", "pass")
    time.sleep(int(ENV["XDPD_IDLE_TIMEOUT"]) + 2)
    if not service_running() or (page.count("proto_count", "pass") or 0) < before:
        fail(f"the service exited while the page showed counts: pass {before} -> {page.count('proto_count', 'pass')}")

    step("the page in Cockpit's shell: its menu entry and frame (the screenshot)")
    collect_console(driver)
    driver.get(ENV["XDPD_URL"].replace("/cockpit/@localhost/xdpd/index.html", "/xdpd"))
    frame = page.wait("the page's frame in Cockpit's shell",
                      lambda: (driver.find_elements(By.CSS_SELECTOR, 'iframe[name$="/xdpd"]') or [None])[0], 30)
    menu = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "nav a, #host-apps a")]
    if "XDP chains" not in menu:
        fail(f"no \"XDP chains\" in the shell's menu: {menu}")
    driver.switch_to.frame(frame)
    page.wait("the chain in the shell's frame", lambda: page.row("proto_count") is not None, 30)
    # Traffic while the screenshot is taken: rates next to the counts.
    send_udp(200, port=7000)
    send_udp(20, port=9000)
    page.wait("a rate for the screenshot", lambda: rate() not in ("0/s", "0.0/s") and (page.count("port_block", "drop") or 0) >= 60, 10)
    driver.switch_to.default_content()
    screenshot = ENV["XDPD_SCREENSHOT"]
    driver.save_screenshot(screenshot)
    step(f"screenshot: {screenshot}")
    collect_console(driver, only_ours=True)
    driver.get(ENV["XDPD_URL"])
    page.wait("the page again", lambda: page.row("port_block") is not None, 30)

    step("changing a program's priority from the page (an atomic replace)")
    old_id = page.row("port_block").get_attribute("data-program-id")
    page.click(".xdp-change", page.row("port_block"))
    page.wait("the change dialog", page.dialog_open, 5)
    driver.find_element(By.ID, "change-file").send_keys(f"{objects}/port_block.o")
    priority = driver.find_element(By.ID, "change-priority")
    priority.clear()
    priority.send_keys("95")
    page.click("#dialog-submit")
    page.wait("port_block now runs last", lambda: [r.get_attribute("data-name") for r in page.rows()] == ["proto_count", "port_block"], 30)
    page.wait("the change dialog closed", lambda: not page.dialog_open(), 5)
    programs = chain()
    if [(p["name"], p["priority"], p["tag"]) for p in programs] != [("proto_count", 90, "demo-counter"), ("port_block", 95, "firewall")]:
        fail(f"the service's chain after the change: {programs}")
    if str(programs[1]["id"]) == old_id:
        fail("the changed program kept its id: it was not replaced")

    step("a chain detached behind the service's back: the page warns, Reclaim takes it back")
    subprocess.run(["bpftool", "link", "detach", "pinned", ENV["XDPD_LINK_PIN"]], check=True, capture_output=True, timeout=30)
    start = time.monotonic()
    # The service notices a detached chain by itself (not at once): a generous wait.
    page.wait("the foreign-program warning", lambda: bool(page.link(IFACE).find_elements(By.CSS_SELECTOR, ".xdp-foreign")), 10)
    step(f"  warned after {time.monotonic() - start:.2f} s")
    page.click(".xdp-reclaim", page.link(IFACE))
    page.wait("the warning gone after Reclaim", lambda: not page.link(IFACE).find_elements(By.CSS_SELECTOR, ".xdp-foreign"), 30)
    status = xdpctl("status", IFACE)["interfaces"][0]
    if not status["kernel_program_id"] or status["foreign_program_id"]:
        fail(f"not reclaimed at the service: {status}")
    for close in driver.find_elements(By.CSS_SELECTOR, "#alerts .xdp-alert-close"):
        close.click()

    step("counting off from the page")
    page.click(".xdp-switch", page.link(IFACE))
    page.wait("Counting off at the service", lambda: not xdpctl("status", IFACE)["interfaces"][0]["counting"], 10)
    page.wait("the switch off", lambda: not page.link(IFACE).find_element(By.CSS_SELECTOR, ".xdp-counting").is_selected(), LIVE)

    step("removing a program from the page")
    page.click(".xdp-remove", page.row("port_block"))
    page.wait("the remove dialog", page.dialog_open, 5)
    page.click("#dialog-submit")
    page.wait("port_block gone from the page", lambda: page.row("port_block") is None, 30)
    if [p["name"] for p in chain()] != ["proto_count"]:
        fail(f"the service's chain after removing from the page: {chain()}")

    step("a program removed with xdpctl disappears without reload")
    xdpctl("remove", IFACE, str(added["id"]))
    start = time.monotonic()
    page.wait("proto_count gone", lambda: page.row("proto_count") is None, LIVE)
    step(f"  gone after {time.monotonic() - start:.2f} s")
    page.wait("the interface shown without programs", lambda: "No programs." in page.link(IFACE).text, LIVE)

    step("a program attached by someone else: the page says what to do; adding with Take over evicts it")
    subprocess.run(["ip", "-n", ENV["XDPD_SERVICE_NS"], "link", "set", "dev", "lo", "xdpgeneric",
                    "obj", f"{objects}/basic.o", "program", "xdp_pass"], check=True, capture_output=True, timeout=30)
    lo = lambda: page.link("lo")
    page.wait("the foreign program on lo", lambda: bool(lo().find_elements(By.CSS_SELECTOR, ".xdp-foreign")), 10)
    notice = lo().find_element(By.CSS_SELECTOR, ".xdp-foreign").text
    if "Take over" not in notice or "bpftool prog show id" not in notice:
        fail(f"the notice does not say what to do: {notice}")
    page.click(".xdp-add", lo())
    page.wait("the add dialog", page.dialog_open, 5)
    driver.find_element(By.ID, "add-file").send_keys(f"{objects}/proto_count.o")
    driver.find_element(By.ID, "add-force").click()
    page.click("#dialog-submit")
    page.wait("proto_count on lo, the foreign program gone",
              lambda: page.row("proto_count", "lo") is not None and not lo().find_elements(By.CSS_SELECTOR, ".xdp-foreign"), 30)
    status = xdpctl("status", "lo")["interfaces"][0]
    if status["foreign_program_id"] or [p["name"] for p in status["programs"]] != ["proto_count"]:
        fail(f"not taken over at the service: {status}")


def readonly_run(page, driver):
    objects = ENV["XDPD_OBJECTS"]
    step("read-only: the page says why actions are unavailable")
    page.wait("the test interface on the page", lambda: page.link(IFACE) is not None, 60)
    page.wait("the read-only notice", lambda: bool(driver.find_elements(By.ID, "readonly-notice")), 10)
    notice = driver.find_element(By.ID, "readonly-notice").text
    if "administrative access" not in notice:
        fail(f"the read-only notice does not say why: {notice}")
    xdpctl("add", IFACE, f"{objects}/proto_count.o", "--tag", "demo-counter")
    page.wait("the program added with xdpctl", lambda: page.row("proto_count") is not None, LIVE)
    buttons = page.link(IFACE).find_elements(By.CSS_SELECTOR, "button, input")
    enabled = [b.get_attribute("class") for b in buttons if b.is_enabled()]
    if len(buttons) < 4 or enabled:
        fail(f"actions enabled without administrative access: {enabled} (of {len(buttons)})")
    driver.find_element(By.ID, "app").screenshot(ENV["XDPD_SCREENSHOT"])
    step(f"screenshot: {ENV['XDPD_SCREENSHOT']}")


def main():
    mode = ENV.get("XDPD_MODE", "admin")
    driver = browser()
    try:
        page = Page(driver)
        driver.get(ENV["XDPD_URL"])
        (readonly_run if mode == "readonly" else admin_run)(page, driver)
        collect_console(driver)
        if CONSOLE_ERRORS:
            fail("the browser console shows errors:\n" + "\n".join(CONSOLE_ERRORS))
        step("the browser console shows no errors")
    except Exception:
        try:
            driver.save_screenshot(ENV["XDPD_SCREENSHOT"].replace(".png", "-failure.png"))
            for e in driver.get_log("browser"):
                print(f"console {e['level']}: {e['message']}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            print(f"(no diagnostics: {e})", file=sys.stderr)
        raise
    finally:
        driver.quit()
    step(f"{mode}: ok")


if __name__ == "__main__":
    main()
