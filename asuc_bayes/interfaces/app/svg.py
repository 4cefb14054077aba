"""The app's concentration–time figure as hand-written SVG (a few ms, against ~170 ms for the
matplotlib PNG of :func:`asuc_bayes.interfaces.plots.concentration_figure`, which the HTML report
keeps).

The same content as the report's figure: the a-priori curve (dashed), the posterior median
(solid) with its 90 % credible band, the MAP curve (dotted), the observations (censored ones
as open triangles: ▽ below the LLOQ, △ above the ULOQ), the infusions (▼ on the top edge) and
the day 14–28 AUC window shaded, on a log or linear concentration axis, with a legend below.
Only numbers and fixed labels are written into the SVG (no user text).

Examples
--------
>>> x = LinearScale(0.0, 10.0, 100.0, 200.0)
>>> float(x(5.0)), x.ticks()[:3]
(150.0, [0.0, 2.0, 4.0])
>>> y = LogScale(0.1, 100.0, 300.0, 0.0)
>>> round(float(y(1.0)), 6), y.ticks()
(200.0, [0.1, 1.0, 10.0, 100.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED
from asuc_bayes.interfaces.plots import (
    CREDIBLE_BAND,
    LOG_FLOOR_MG_L,
    MAP_COLOUR,
    POSTERIOR_COLOUR,
    PRIOR_COLOUR,
    WINDOW_COLOUR,
)

__all__ = ["LinearScale", "LogScale", "concentration_svg", "nice_step"]

DOSE_COLOUR = "#6A3D9A"
#: Figure size in pixels (the page shows it at most this wide) and the plot area's margins.
WIDTH_PX, HEIGHT_PX = 768, 490
LEFT, RIGHT, TOP, BOTTOM = 62.0, 16.0, 16.0, 128.0
LEGEND_COLUMNS = 3
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def nice_step(span: float, target_ticks: int = 7) -> float:
    """A tick step of 1, 2 or 5 × 10^k giving about ``target_ticks`` ticks over ``span``.

    >>> nice_step(90.0), nice_step(1.3), nice_step(250.0)
    (20.0, 0.5, 50.0)
    """
    raw = span / max(target_ticks - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power * 1.0001:
            return factor * power
    return 10.0 * power  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class LinearScale:
    """Data interval [lo, hi] onto pixels [start, end] (end < start for a y axis)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value):
        value = np.nan_to_num(np.asarray(value, dtype=float), nan=self.lo, posinf=self.hi)
        return self.start + (value - self.lo) * ((self.end - self.start) / (self.hi - self.lo))

    def ticks(self) -> list[float]:
        step = nice_step(self.hi - self.lo)
        first = math.ceil(self.lo / step - 1e-9)
        last = math.floor(self.hi / step + 1e-9)
        return [round(k * step, 10) for k in range(first, last + 1)]


@dataclass(frozen=True)
class LogScale:
    """Positive data interval [lo, hi] onto pixels [start, end], logarithmically (values
    below ``lo`` are drawn at ``lo``)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value):
        value = np.nan_to_num(np.asarray(value, dtype=float), nan=self.lo, posinf=self.hi)
        value = np.maximum(value, self.lo)
        fraction = (np.log10(value) - math.log10(self.lo)) / (
            math.log10(self.hi) - math.log10(self.lo)
        )
        return self.start + fraction * (self.end - self.start)

    def ticks(self) -> list[float]:
        """Powers of ten within the range; with fewer than three, also 2 and 5 × them."""
        low, high = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
        decades = [10.0**k for k in range(low, high + 1)]
        inside = [t for t in decades if self.lo * 0.9999 <= t <= self.hi * 1.0001]
        if len(inside) < 3:
            finer = [m * t for t in decades for m in (1.0, 2.0, 5.0)]
            inside = [t for t in finer if self.lo * 0.9999 <= t <= self.hi * 1.0001]
        return [float(f"{t:.6g}") for t in inside]


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def _label(value: float) -> str:
    return escape(f"{value:g}")


def _marker(kind: int, x: float, y: float) -> str:
    """An observation's marker: ● measured, ▽ below the LLOQ, △ above the ULOQ."""
    if kind == MEASURED:
        return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4' fill='black'/>"
    sign = 1.0 if kind == BELOW_LLOQ else -1.0
    top, bottom = y - 5.5 * sign, y + 5.5 * sign
    return (
        f"<polygon points='{x - 6:.1f},{top:.1f} {x + 6:.1f},{top:.1f} {x:.1f},{bottom:.1f}' "
        "fill='white' stroke='black' stroke-width='1.4'/>"
    )


@dataclass(frozen=True)
class ConcentrationData:
    """What the figure shows, in mg/L and days (from a forecast's result tree)."""

    time_day: np.ndarray
    low: np.ndarray
    median: np.ndarray
    high: np.ndarray
    a_priori: np.ndarray
    map: np.ndarray
    obs_time_day: np.ndarray
    observed: np.ndarray
    censoring: np.ndarray
    dose_time_day: np.ndarray
    window_day: tuple[float, float]

    @classmethod
    def from_forecast(cls, forecast) -> ConcentrationData:
        tree = forecast.tree
        predictions, constant = tree["predictions"], tree["constant_data"]
        time_day = predictions["time"].values
        curves = predictions["concentration"].values.reshape(-1, time_day.size)
        tail = (1.0 - CREDIBLE_BAND) / 2
        low, median, high = np.quantile(curves, [tail, 0.5, 1.0 - tail], axis=0)
        return cls(
            time_day=time_day,
            low=low,
            median=median,
            high=high,
            a_priori=predictions["concentration_a_priori"].values,
            map=predictions["concentration_map"].values,
            obs_time_day=constant["obs_time_day"].values,
            observed=tree["observed_data"]["concentration"].values,
            censoring=constant["obs_censoring"].values,
            dose_time_day=constant["dose_time_day"].values,
            window_day=tuple(forecast.spec.tte.auc_window_day),
        )


def _y_scale(data: ConcentrationData, log_scale: bool, bottom: float, top: float):
    finite = data.high[np.isfinite(data.high)]
    peak = max(float(np.max(finite, initial=0.0)), float(np.max(data.observed, initial=0.0)))
    if log_scale:
        floor = max(LOG_FLOOR_MG_L, 0.5 * float(np.min(data.observed, initial=np.inf)))
        return LogScale(min(floor, 1.0), max(peak * 2.0, 10.0), bottom, top)
    return LinearScale(0.0, max(peak * 1.12, 1.0), bottom, top)


def _axes(x, y, plot: tuple[float, float, float, float]) -> list[str]:
    left, top, right, bottom = plot
    parts = []
    for tick in x.ticks():
        px = float(x(tick))
        parts.append(
            f"<line x1='{px:.1f}' y1='{top:.1f}' x2='{px:.1f}' y2='{bottom:.1f}' "
            "stroke='black' stroke-opacity='0.12'/>"
            f"<text x='{px:.1f}' y='{bottom + 16:.1f}' text-anchor='middle'>{_label(tick)}</text>"
        )
    for tick in y.ticks():
        py = float(y(tick))
        parts.append(
            f"<line x1='{left:.1f}' y1='{py:.1f}' x2='{right:.1f}' y2='{py:.1f}' "
            "stroke='black' stroke-opacity='0.12'/>"
            f"<text x='{left - 6:.1f}' y='{py + 4:.1f}' text-anchor='end'>{_label(tick)}</text>"
        )
    parts.append(
        f"<rect x='{left:.1f}' y='{top:.1f}' width='{right - left:.1f}' "
        f"height='{bottom - top:.1f}' fill='none' stroke='black' stroke-width='0.8'/>"
        f"<text x='{(left + right) / 2:.1f}' y='{bottom + 34:.1f}' text-anchor='middle'>"
        "days since the first infliximab dose</text>"
        f"<text transform='translate(16,{(top + bottom) / 2:.1f}) rotate(-90)' "
        "text-anchor='middle'>infliximab concentration (mg/L)</text>"
    )
    return parts


def _legend(data: ConcentrationData, top: float) -> list[str]:
    percent = round(100 * CREDIBLE_BAND)
    w0, w1 = data.window_day
    entries = [
        (f"<line x1='0' y1='0' x2='22' y2='0' stroke='{POSTERIOR_COLOUR}' stroke-width='2'/>",
         "a posteriori (posterior median)"),
        (f"<rect x='0' y='-5' width='22' height='10' fill='{POSTERIOR_COLOUR}' "
         "fill-opacity='0.22'/>", f"{percent} % credible band"),
        (f"<line x1='0' y1='0' x2='22' y2='0' stroke='{PRIOR_COLOUR}' stroke-width='1.4' "
         "stroke-dasharray='5,3'/>", "a priori (typical patient)"),
        (f"<line x1='0' y1='0' x2='22' y2='0' stroke='{MAP_COLOUR}' stroke-width='1.4' "
         "stroke-dasharray='1.5,2.5'/>", "MAP (published tool)"),
        (f"<rect x='0' y='-5' width='22' height='10' fill='{WINDOW_COLOUR}' fill-opacity='0.35'/>",
         f"AUC window (day {w0:g}–{w1:g})"),
        (f"<polygon points='5,-5 17,-5 11,5' fill='{DOSE_COLOUR}'/>", "infusion"),
    ]  # fmt: skip
    labels = {MEASURED: "measured", BELOW_LLOQ: "below LLOQ (at LLOQ)", ABOVE_ULOQ: "above ULOQ"}
    entries += [
        (_marker(code, 11.0, 0.0), label)
        for code, label in labels.items()
        if np.any(data.censoring == code)
    ]
    parts = []
    column_px = (WIDTH_PX - 2 * 20) / LEGEND_COLUMNS
    for index, (symbol, label) in enumerate(entries):
        x = 20 + (index % LEGEND_COLUMNS) * column_px
        y = top + 22 * (index // LEGEND_COLUMNS)
        parts.append(
            f"<g transform='translate({x:.1f},{y:.1f})'>{symbol}"
            f"<text x='28' y='4' font-size='11'>{escape(label)}</text></g>"
        )
    return parts


def concentration_svg(forecast, *, log_scale: bool = True) -> bytes:
    """The concentration–time figure of a :class:`~asuc_bayes.inference.forecast.PatientForecast` as
    SVG bytes (UTF-8), :data:`WIDTH_PX` × :data:`HEIGHT_PX`."""
    return concentration_svg_of(ConcentrationData.from_forecast(forecast), log_scale=log_scale)


def concentration_svg_of(data: ConcentrationData, *, log_scale: bool = True) -> bytes:
    """:func:`concentration_svg` from the figure's data."""
    left, top, right, bottom = LEFT, TOP, WIDTH_PX - RIGHT, HEIGHT_PX - BOTTOM
    x = LinearScale(float(data.time_day[0]), float(data.time_day[-1]), left, right)
    y = _y_scale(data, log_scale, bottom, top)
    tx = x(data.time_day)
    w0, w1 = (float(np.clip(x(v), left, right)) for v in data.window_day)
    band = _points(
        np.concatenate([tx, tx[::-1]]), np.concatenate([y(data.low), y(data.high)[::-1]])
    )
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH_PX}' height='{HEIGHT_PX}' "
        f"viewBox='0 0 {WIDTH_PX} {HEIGHT_PX}' {FONT} font-size='12'>",
        f"<rect width='{WIDTH_PX}' height='{HEIGHT_PX}' fill='white'/>",
        f"<defs><clipPath id='plot'><rect x='{left}' y='{top}' width='{right - left}' "
        f"height='{bottom - top}'/></clipPath></defs>",
        *_axes(x, y, (left, top, right, bottom)),
        "<g clip-path='url(#plot)'>",
        f"<rect x='{w0:.1f}' y='{top}' width='{w1 - w0:.1f}' height='{bottom - top}' "
        f"fill='{WINDOW_COLOUR}' fill-opacity='0.25'/>",
        f"<polygon id='band' points='{band}' fill='{POSTERIOR_COLOUR}' fill-opacity='0.22'/>",
        f"<polyline id='a-priori' points='{_points(tx, y(data.a_priori))}' fill='none' "
        f"stroke='{PRIOR_COLOUR}' stroke-width='1.4' stroke-dasharray='5,3'/>",
        f"<polyline id='median' points='{_points(tx, y(data.median))}' fill='none' "
        f"stroke='{POSTERIOR_COLOUR}' stroke-width='2'/>",
        f"<polyline id='map' points='{_points(tx, y(data.map))}' fill='none' "
        f"stroke='{MAP_COLOUR}' stroke-width='1.4' stroke-dasharray='1.5,2.5'/>",
        "</g>",
    ]
    for t, value, code in zip(data.obs_time_day, data.observed, data.censoring, strict=True):
        parts.append(_marker(int(code), float(x(t)), float(y(value))))
    for t in data.dose_time_day:
        px = float(x(t))
        parts.append(
            f"<polygon class='dose' points='{px - 6:.1f},{top - 10:.1f} {px + 6:.1f},"
            f"{top - 10:.1f} {px:.1f},{top:.1f}' fill='{DOSE_COLOUR}'/>"
        )
    parts += _legend(data, bottom + 52)
    parts.append("</svg>")
    return "".join(parts).encode()
