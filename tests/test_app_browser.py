"""End-to-end tests of the web app in a real browser (headless Debian Chromium via Playwright).

The app runs as ``asuc-bayes app`` in a subprocess on a free loopback port; the tests drive it
like a user: read the example patient's risk (checked against the API's own forecast), change
an input and see the results update, enter an implausible value and see the error next to
the field, upload a malformed file, and download the report and the results. Screenshots are
saved in ``test-artifacts/`` (git-ignored) for review.

Chromium comes from Debian (``scripts/install-browser``, run by ``make test``); Playwright's
own browser downloads are not used. Without ``/usr/bin/chromium`` these tests FAIL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser_harness import IDLE_JS, chromium, served_app
from playwright.sync_api import expect

from asuc_bayes import example_path, read_patients
from asuc_bayes.inference.forecast import patient_seed

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
RESULT_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server_url():
    with served_app() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=RESULT_TIMEOUT_MS)
    with chromium(viewport={"width": 1400, "height": 2000}, accept_downloads=True) as context:
        yield context


@pytest.fixture
def page(browser, server_url):
    page = browser.new_page()
    page.goto(server_url)
    page.wait_for_selector("#risk-mean", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_function(IDLE_JS, timeout=RESULT_TIMEOUT_MS)
    yield page
    page.close()


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _expect_plot(page, output: str) -> None:
    """The output shows a decoded image wider than 300 px."""
    page.wait_for_function(
        "(id) => { const img = document.querySelector(id + ' img');"
        " return img !== null && img.complete && img.naturalWidth > 300; }",
        arg=output,
        timeout=RESULT_TIMEOUT_MS,
    )


def _wait_changed(page, selector: str, old: str) -> str:
    page.wait_for_function(
        "([selector, old]) => { const e = document.querySelector(selector);"
        " return e !== null && e.textContent !== old; }",
        arg=[selector, old],
        timeout=RESULT_TIMEOUT_MS,
    )
    page.wait_for_function(IDLE_JS, timeout=RESULT_TIMEOUT_MS)
    return page.inner_text(selector)


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def test_example_patient_risk_matches_the_api_and_plots_render(page, forecaster):
    patient = read_patients(example_path()).patients[0]
    expected = forecaster.forecast(patient, random_seed=patient_seed(0, patient.id)).summary()
    risk = expected["posterior"]["risk_90d"]
    assert page.input_value("#patient_id") == patient.id
    assert page.inner_text("#risk-mean") == _percent(risk["mean"])
    assert _percent(risk["q2.5"]) in page.inner_text("#risk-interval")
    assert page.inner_text("#p-high-risk") == f"{expected['p_high_risk']:.2f}"
    assert page.inner_text("#risk-class") == expected["risk_class"].upper()
    assert page.inner_text("#map-risk") == _percent(expected["map"]["risk_90d"])
    assert "converged" in page.inner_text("#diagnostics-text")
    _expect_plot(page, "#concentration_plot")
    _screenshot(page, "app-example-patient")
    page.get_by_role("tab", name="Exposure marker ln(AUC/CL)").click()
    _expect_plot(page, "#ln_ratio_plot")  # drawn when its tab is shown
    _screenshot(page, "app-exposure-marker")


def test_dosing_panel_matches_the_api_for_both_criteria(page, forecaster):
    from asuc_bayes.decisions.dosing import recommend_dose

    patient = read_patients(example_path()).patients[0]
    forecast = forecaster.forecast(patient, random_seed=patient_seed(0, patient.id))
    page.get_by_role("tab", name="Week-2 dose to a target risk").click()
    summary = page.locator("#dosing_summary")
    for criterion in ("mean", "probability"):
        expected = recommend_dose(forecast, criterion=criterion, probability=0.8).to_json()
        if criterion == "probability":
            page.get_by_label("P(risk ≤ target) ≥").check()
            expect(page.locator("#criterion_probability")).to_be_visible()
        chosen, on_map = expected["recommended"], expected["map_recommended"]
        if not expected["feasible"]:
            wanted = "No dose up to the cap reaches the target"
        elif chosen["dose_mg"] > 0:
            wanted = f"Recommended: {chosen['dose_mg']:g} mg ({chosen['dose_mg_kg']:.1f} mg/kg)"
        else:
            wanted = "No infusion needed on day 14: the target is met without an infusion"
        expect(summary).to_contain_text(wanted)
        expect(summary).to_contain_text(f"{100 * chosen['risk_90d']['mean']:.1f} %")
        if on_map["feasible"] and on_map["dose_mg"] > 0:
            expect(summary).to_contain_text(f"MAP recommendation: {on_map['dose_mg']:g} mg.")
        elif on_map["feasible"]:
            expect(summary).to_contain_text("MAP: no infusion needed that day.")
        assert not re.search(r"(?<![\d.])0 mg", summary.inner_text())  # never "0 mg"
        page.wait_for_function(IDLE_JS, timeout=RESULT_TIMEOUT_MS)
        _expect_plot(page, "#dose_risk_plot")
    _screenshot(page, "app-dosing")


def test_changed_input_updates_the_results(page):
    before = page.inner_text("#risk-mean")
    page.get_by_role("tab", name="Covariates").click()
    page.fill("#weight_kg", "120")
    after = _wait_changed(page, "#risk-mean", before)
    assert after != before
    page.get_by_role("tab", name="Samples").click()
    page.click("#add_sample")
    page.wait_for_selector("#no-forecast", timeout=RESULT_TIMEOUT_MS)  # the new row is empty
    expect(page.locator(".sample-row .field-error").last).to_contain_text("missing")
    page.locator(".sample-row input[id^=sample_value_]").last.fill("0.4")
    page.locator(".sample-row select[id^=sample_kind_]").last.select_option("below_lloq")
    page.wait_for_selector("#risk-mean", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_function(IDLE_JS, timeout=RESULT_TIMEOUT_MS)
    _screenshot(page, "app-changed-inputs")


def test_implausible_input_shows_an_error_next_to_the_field(page):
    page.get_by_role("tab", name="Covariates").click()
    page.fill("#weight_kg", "5")
    page.wait_for_selector("#input-error-banner", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#weight_kg-error")).to_contain_text(
        "body weight must be between 20 and 250 kg"
    )
    expect(page.locator("#weight_kg")).to_have_class(re.compile("is-invalid"))
    assert page.is_visible("#no-forecast")  # no stale result beside the wrong input
    expect(page.locator("#download_report")).to_have_class(re.compile("no-forecast"))
    _screenshot(page, "app-input-error")
    page.fill("#weight_kg", "70")
    page.wait_for_selector("#risk-mean", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#weight_kg-error")).to_have_text("")
    page.get_by_role("tab", name="Dosing").click()
    page.locator("input[id^=dose_day_]").nth(1).fill("-3")
    page.wait_for_selector("#input-error-banner", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator(".dose-row .field-error").nth(1)).to_contain_text("day: time must be ≥ 0")
    expect(page.locator("#input-error-banner")).to_contain_text("dose 2")


def test_malformed_upload_shows_the_error_and_a_good_file_loads(page):
    bad = b"ID,TIME,EVID,AMT,DV,WT,CRP\nX1,0,1,six hundred,.,70,30\n"
    page.set_input_files(
        "#upload_file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad}]
    )
    page.wait_for_selector("#upload-error-text", timeout=RESULT_TIMEOUT_MS)
    message = page.inner_text("#upload-error-text")
    assert "bad.csv" in message and "row 2" in message and "AMT" in message
    assert "not a number" in message
    _screenshot(page, "app-upload-error")
    too_big = b"ID,TIME,EVID,AMT,DV,WT,CRP\n" + b"X1,0,1,600,.,70,30\n" * 60_000
    page.set_input_files(
        "#upload_file", files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": too_big}]
    )
    expect(page.locator("#upload_file-error")).to_contain_text("more than the 1000000 accepted")
    hostile = '<img src=x onerror="document.title=1">'
    good = (
        "[[patient]]\n"
        f"id = '{hostile}'\n"
        "weight_kg = 70\ncrp_mg_l = 20\n"
        "doses = [{day = 0, mg = 700}, {day = 14, mg_per_kg = 10}]\n"
        "samples = [{day = 7, mg_l = 6}]\n"  # a risk unlike the example's
        "[[patient]]\nid = 'B2'\nweight_kg = 55\ncrp_mg_l = 90\n"
        "doses = [{day = 0, mg = 550}]\n"
    ).encode()
    before = page.inner_text("#risk-mean")
    page.set_input_files(
        "#upload_file", files=[{"name": "two.toml", "mimeType": "text/plain", "buffer": good}]
    )
    _wait_changed(page, "#risk-mean", before)
    assert page.input_value("#patient_id") == hostile
    options = page.eval_on_selector_all("#patient_pick option", "o => o.map(x => x.value)")
    assert options == [hostile, "B2"]
    assert page.locator("img[src=x]").count() == 0  # shown as text, never as markup
    assert page.title() != "1"
    assert page.locator("#upload-error-text").count() == 0  # the earlier error is gone
    page.select_option("#patient_pick", "B2")
    page.wait_for_function(
        "() => document.querySelector('#patient_id').value === 'B2'", timeout=RESULT_TIMEOUT_MS
    )


def test_downloads_report_json_and_netcdf(page, tmp_path):
    from asuc_bayes import load_results

    shown = page.inner_text("#risk-mean")
    with page.expect_download() as report_download:
        page.click("#download_report")
    report = tmp_path / "report.html"
    report_download.value.save_as(report)
    html = report.read_text(encoding="utf-8")
    assert report_download.value.suggested_filename == "asuc-bayes-P01.html"
    assert shown in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 3  # with the dose-risk curve
    assert "Dose at day 14 to a target risk" in html
    with page.expect_download() as json_download:
        page.click("#download_json")
    path = tmp_path / "results.json"
    json_download.value.save_as(path)
    document = json.loads(path.read_text())
    (entry,) = document["patients"]
    assert entry["id"] == "P01"
    assert _percent(entry["posterior"]["risk_90d"]["mean"]) == shown
    with page.expect_download() as netcdf_download:
        page.click("#download_netcdf")
    path = tmp_path / "results.nc"
    netcdf_download.value.save_as(path)
    tree = load_results(path)
    assert float(tree["P01/posterior"]["risk_90d"].mean()) == pytest.approx(
        entry["posterior"]["risk_90d"]["mean"]
    )


def test_unconverged_posterior_shows_a_warning(browser):
    # 4 chains x 50 draws cannot reach the bulk ESS gate of 400: always unconverged
    with served_app(extra_args=("--draws", "50", "--tune", "50")) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#unconverged-banner", timeout=RESULT_TIMEOUT_MS)
        expect(page.locator("#unconverged-banner")).to_contain_text(
            "did not pass the convergence checks"
        )
        expect(page.locator("#diagnostics-text")).to_contain_text("NOT CONVERGED")
        expect(page.locator("#diagnostics-text")).to_contain_text("4 chains × 50 draws")
        _screenshot(page, "app-unconverged")
        page.close()
