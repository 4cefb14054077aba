"""The app's hand-written SVG concentration figure: well-formed, and every curve, band,
marker and tick where a hand computation of the axes puts it."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED
from asuc_bayes.interfaces.app.svg import (
    BOTTOM,
    HEIGHT_PX,
    LEFT,
    RIGHT,
    TOP,
    WIDTH_PX,
    ConcentrationData,
    LinearScale,
    LogScale,
    concentration_svg,
    concentration_svg_of,
)

NS = {"svg": "http://www.w3.org/2000/svg"}


def _data() -> ConcentrationData:
    time_day = np.linspace(0.0, 90.0, 91)
    median = 100.0 * np.exp(-time_day / 20.0) + 1.0
    return ConcentrationData(
        time_day=time_day,
        low=0.5 * median,
        median=median,
        high=2.0 * median,
        a_priori=1.2 * median,
        map=0.9 * median,
        obs_time_day=np.array([7.0, 14.0, 30.0]),
        observed=np.array([40.0, 20.0, 4.0]),
        censoring=np.array([MEASURED, BELOW_LLOQ, ABOVE_ULOQ]),
        dose_time_day=np.array([0.0, 14.0, 42.0]),
        window_day=(14.0, 28.0),
    )


def _points(element) -> np.ndarray:
    pairs = [p.split(",") for p in element.get("points").split()]
    return np.array(pairs, dtype=float)


def _plot_box() -> tuple[float, float, float, float]:
    return LEFT, TOP, WIDTH_PX - RIGHT, HEIGHT_PX - BOTTOM


@pytest.mark.parametrize("log_scale", [True, False])
def test_curves_are_where_the_axes_put_them(log_scale):
    data = _data()
    root = ET.fromstring(concentration_svg_of(data, log_scale=log_scale))
    assert root.get("width") == str(WIDTH_PX) and root.get("height") == str(HEIGHT_PX)
    left, top, right, bottom = _plot_box()
    peak = 2.0 * 101.0  # the band's top at day 0 (above every observation)
    if log_scale:
        lo, hi = 1.0, 2.0 * peak  # floor: min(max(0.05, 4 / 2), 1) = 1 mg/L

        def value_of(py):
            return 10 ** (math.log10(lo) + (bottom - py) / (bottom - top) * math.log10(hi / lo))
    else:
        hi = 1.12 * peak

        def value_of(py):
            return (bottom - py) / (bottom - top) * hi

    for name, expected in (("median", data.median), ("a-priori", data.a_priori), ("map", data.map)):
        line = root.find(f".//svg:polyline[@id='{name}']", NS)
        xy = _points(line)
        days = (xy[:, 0] - left) / (right - left) * 90.0
        np.testing.assert_allclose(days, data.time_day, atol=0.1 * 90 / (right - left) + 1e-9)
        shown = np.array([value_of(py) for py in xy[:, 1]])
        # one decimal of a pixel: < 0.2 % on the log axis, < 0.05 mg/L on the linear one
        np.testing.assert_allclose(shown, expected, rtol=2e-3, atol=0.0 if log_scale else 0.05)
    band = _points(root.find(".//svg:polygon[@id='band']", NS))
    assert band.shape == (2 * 91, 2)
    np.testing.assert_allclose(
        [value_of(py) for py in band[91:, 1]][::-1], data.high, rtol=2e-3, atol=0.05
    )


def test_markers_doses_window_and_legend():
    data = _data()
    svg = concentration_svg_of(data).decode()
    root = ET.fromstring(svg)
    left, _, right, _ = _plot_box()
    circles = root.findall(".//svg:circle", NS)
    # one measured observation (and its legend entry)
    assert len(circles) == 2
    assert float(circles[0].get("cx")) == pytest.approx(left + 7.0 / 90.0 * (right - left), 0.06)
    doses = root.findall(".//svg:polygon[@class='dose']", NS)
    apexes = [_points(d)[2, 0] for d in doses]
    np.testing.assert_allclose(apexes, left + data.dose_time_day / 90.0 * (right - left), atol=0.06)
    for label in ("below LLOQ (at LLOQ)", "above ULOQ", "AUC window (day 14–28)", "90 % credible"):
        assert label in svg


def test_ticks_are_round_numbers_inside_the_axis():
    assert LinearScale(0.0, 90.0, 0.0, 1.0).ticks() == [0.0, 20.0, 40.0, 60.0, 80.0]
    assert LinearScale(0.0, 226.24, 0.0, 1.0).ticks() == [0.0, 50.0, 100.0, 150.0, 200.0]
    assert LogScale(1.0, 404.0, 0.0, 1.0).ticks() == [1.0, 10.0, 100.0]
    assert LogScale(0.05, 3.0, 0.0, 1.0).ticks() == [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    scale = LogScale(0.1, 1000.0, 400.0, 100.0)
    np.testing.assert_allclose(scale([0.1, 1.0, 1000.0, 0.01]), [400.0, 325.0, 100.0, 400.0])


def test_a_forecast_gives_the_same_figure_as_its_data(forecaster):
    from asuc_bayes import example_path, read_patients

    patient = read_patients(example_path()).patients[0]
    result = forecaster.forecast(patient, random_seed=3)
    svg = concentration_svg(result, log_scale=True)
    assert svg == concentration_svg_of(ConcentrationData.from_forecast(result))
    data = ConcentrationData.from_forecast(result)
    curves = result.tree["predictions"]["concentration"].values.reshape(-1, data.time_day.size)
    np.testing.assert_array_equal(data.median, np.median(curves, axis=0))
    ET.fromstring(svg)  # well-formed


@pytest.mark.parametrize("log_scale", [True, False])
def test_no_samples_and_undefined_values_still_give_a_valid_figure(log_scale):
    data = _data()
    empty = np.array([])
    curve = data.median.copy()
    curve[5] = np.nan  # an undefined value is drawn on the axis, never as "nan"
    data = ConcentrationData(
        **{
            **data.__dict__,
            "median": curve,
            "obs_time_day": empty,
            "observed": empty,
            "censoring": empty.astype(int),
        }
    )
    svg = concentration_svg_of(data, log_scale=log_scale).decode()
    ET.fromstring(svg)
    assert "nan" not in svg.lower() and "inf" not in svg.replace("infliximab", "").replace(
        "infusion", ""
    )
    assert "measured" not in svg  # no legend entry for absent observations
