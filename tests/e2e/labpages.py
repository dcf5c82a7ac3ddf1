"""labpages: what the e2e tests in network namespaces (tests/netlab.py) share: entering a meeting from a page whose
link may be capped."""

from __future__ import annotations

from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.e2e.browser import WAIT_MS

# where the page's network check stood: whether the live script ran and started it, and each /netcheck request
# the page made (start and duration in ms, bytes; a request still open has no responseEnd)
NET_STATE = """() => {
  const L = window.TaphuanLive, check = L && L.check;
  const requests = performance.getEntriesByType("resource").filter((e) => e.name.includes("/netcheck/"))
    .map((e) => `${new URL(e.name).pathname} at ${Math.round(e.startTime)} took ${Math.round(e.duration)}`
                + ` (${e.transferSize} B)`);
  const scripts = performance.getEntriesByType("resource").filter((e) => e.initiatorType === "script")
    .map((e) => `${new URL(e.name).pathname} ${Math.round(e.responseEnd)}`
                + ` (${e.encodedBodySize}/${e.decodedBodySize} B)`);
  const nav = performance.getEntriesByType("navigation")[0];  // the page's own document: all of it arrived?
  // a stylesheet or script the document names that has not arrived (a pending stylesheet holds the scripts after it)
  const pending = Array.from(document.querySelectorAll("link[rel=stylesheet], script[src]"))
    .map((el) => el.href || el.src).filter((url) => !performance.getEntriesByName(url).length)
    .map((url) => new URL(url).pathname);
  return `document ${document.readyState}, its response ended at ${nav ? Math.round(nav.responseEnd) : "?"} ms `
    + `(${nav ? nav.encodedBodySize : "?"} B); not arrived: [${pending.join(", ")}]; `
    + `live script ran: ${!!L}; check started: ${!!check}; measuring: ${!!(check && check.netRunning)}; `
    + `page age ${Math.round(performance.now())} ms; netcheck requests: [${requests.join("; ")}]; `
    + `scripts loaded at: [${scripts.join(", ")}]`;
}"""


async def enter(page: Page, meeting_id: int) -> None:
    """enter: open the meeting, wait for the device check's network verdict, join with video and publish."""
    errors: list[str] = []  # what the page threw or logged as an error (said on a timeout)
    page.on("pageerror", lambda exc: errors.append(f"thrown: {exc}"))
    page.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text}") if msg.type in ("error", "warning")
            else None)
    await page.goto(f"/live/{meeting_id}")
    try:
        await page.wait_for_function(
            "() => window.TaphuanLive && window.TaphuanLive.check && window.TaphuanLive.check.net", timeout=WAIT_MS)
    except PlaywrightTimeout as exc:  # what the check had shown by then, and where it stood
        shown = await page.evaluate("() => { const b = document.querySelector('[data-net]'); "
                                    "return b ? b.innerText : document.body.innerText.slice(0, 400); }")
        state = await page.evaluate(NET_STATE)
        raise AssertionError(f"the device check gave no network verdict in {WAIT_MS / 1000:g} s; it "
                             f"showed: {shown!r}; {state}; the page's errors: {errors}") from exc
    # the check proposes audio-only on a weak link, never chooses it (studio pages have no such box)
    assert not await page.evaluate("!!(document.querySelector('[data-join-audio-only]') || {}).checked")
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=WAIT_MS)
    await page.wait_for_function("() => window.live && window.live.up && "
                                 "window.live.up.connectionState === 'connected'",
                                 timeout=WAIT_MS)
