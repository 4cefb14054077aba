"""The web app with several users at once (headless Debian Chromium via Playwright).

One app (``--workers 2``; ``--draws 40000`` makes each update take a second or more, so
computations overlap) and several pages, each its own Shiny session. Checked: sessions that
change their inputs at once each see the risk of their own inputs (against a direct forecast
with the same seed); a cheap interaction in one page completes while another session's
forecast is still running; a session that changes its inputs again while its computation runs
shows only the newest inputs' result, never the superseded one.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from browser_harness import IDLE_JS, chromium, served_app

from asuc_bayes import example_path, read_patients
from asuc_bayes.inference.forecast import SamplerSettings, patient_seed

pytestmark = pytest.mark.slow  # ~2 min on the shared 2-core machine (app start-up included)

DRAWS = 40000  # an update takes over a second even on a quiet machine: computations overlap
TIMEOUT_MS = 120_000
BUSY_JS = "() => document.querySelector('#risk_panel.recalculating') !== null"
#: Records every posterior mean risk the page shows, in order.
RECORD_JS = """
() => {
  window.__shown = [];
  const note = () => {
    const e = document.querySelector('#risk-mean');
    const text = e === null ? null : e.textContent;
    if (window.__shown[window.__shown.length - 1] !== text) window.__shown.push(text);
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true,
                                                      characterData: true});
  note();
}
"""


@pytest.fixture(scope="module")
def app_url():
    with served_app(extra_args=("--workers", "2", "--draws", str(DRAWS))) as url:
        yield url


@pytest.fixture(scope="module")
def context():
    with chromium(viewport={"width": 1400, "height": 1400}) as browser_context:
        yield browser_context


@pytest.fixture(scope="module")
def expected_risk(forecaster):
    """The posterior mean risk, as displayed, of the example patient at a body weight."""
    patient = read_patients(example_path()).patients[0]
    settings = SamplerSettings(draws=DRAWS)
    seed = patient_seed(0, patient.id)

    def risk(weight_kg: float) -> str:
        changed = dataclasses.replace(patient, weight_kg=weight_kg)
        summary = forecaster.forecast(changed, random_seed=seed, settings=settings).summary()
        return f"{100 * summary['posterior']['risk_90d']['mean']:.1f} %"

    return risk


def _open(context, url: str, n: int) -> list:
    pages = [context.new_page() for _ in range(n)]
    for page in pages:
        page.goto(url)
    for page in pages:
        page.wait_for_selector("#risk-mean", timeout=TIMEOUT_MS)
        page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="Covariates").click()
    return pages


def _settled(page, wanted: str) -> None:
    page.wait_for_function(
        "(w) => { const e = document.querySelector('#risk-mean'); return e && "
        "e.textContent === w; }",
        arg=wanted,
        timeout=TIMEOUT_MS,
    )
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)


def test_four_sessions_at_once_each_see_their_own_result(context, app_url, expected_risk):
    pages = _open(context, app_url, 4)
    weights = [48.0, 66.0, 91.0, 124.0]
    wanted = [expected_risk(w) for w in weights]
    assert len(set(wanted)) == 4  # distinct risks: a mixed-up result would show
    for page, weight in zip(pages, weights, strict=True):
        page.fill("#weight_kg", f"{weight:g}")
    for page, risk in zip(pages, wanted, strict=True):
        _settled(page, risk)
    for page, risk in zip(pages, wanted, strict=True):
        assert page.inner_text("#risk-mean") == risk  # still its own after all finished
        page.close()


#: Records in ``window.__busy`` when the risk panel starts and stops recalculating (epoch ms),
#: by a MutationObserver: it fires in a background page too, where polling is throttled.
BUSY_WATCH_JS = """
() => {
  window.__busy = {start: null, end: null};
  const note = () => {
    const panel = document.querySelector('#risk_panel');
    const busy = panel !== null && panel.classList.contains('recalculating');
    if (busy && window.__busy.start === null) window.__busy.start = Date.now();
    if (!busy && window.__busy.start !== null && window.__busy.end === null) {
      window.__busy.end = Date.now();
    }
  };
  new MutationObserver(note).observe(document.body, {subtree: true, attributes: true,
                                                      attributeFilter: ['class']});
}
"""


def test_a_page_stays_responsive_while_another_sessions_forecast_runs(context, app_url):
    busy, other = _open(context, app_url, 2)
    other.get_by_role("tab", name="Samples").click()  # ready before the other one starts
    rows = other.locator(".sample-row").count()
    busy.evaluate(BUSY_WATCH_JS)
    busy.fill("#weight_kg", "77")
    time.sleep(0.6)  # Shiny's 250 ms input debounce: the forecast is under way by now
    clicked = other.evaluate("() => Date.now()")
    other.click("#add_sample")
    other.wait_for_function(
        "(n) => document.querySelectorAll('.sample-row').length === n + 1",
        arg=rows,
        timeout=TIMEOUT_MS,
    )
    row_shown = other.evaluate("() => Date.now()")
    busy.wait_for_function("() => window.__busy.end !== null", timeout=TIMEOUT_MS)
    finished = busy.evaluate("() => window.__busy.end")
    # the new row came while the other session's forecast was still being computed
    started = busy.evaluate("() => window.__busy.start")
    assert started is not None and started < row_shown < finished, (
        f"the forecast (busy {started}-{finished}) finished before the row ({clicked}-{row_shown})"
    )
    busy.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)
    busy.close()
    other.close()


def test_changing_inputs_again_shows_only_the_newest_result(context, app_url, expected_risk):
    (page,) = _open(context, app_url, 1)
    page.evaluate(RECORD_JS)
    first, newest = expected_risk(57.0), expected_risk(103.0)
    assert first != newest
    page.fill("#weight_kg", "57")
    page.wait_for_function(BUSY_JS, timeout=TIMEOUT_MS)  # the first computation runs
    page.fill("#weight_kg", "103")
    _settled(page, newest)
    shown = page.evaluate("() => window.__shown")
    assert first not in shown, f"the superseded result was shown: {shown}"
    page.close()
