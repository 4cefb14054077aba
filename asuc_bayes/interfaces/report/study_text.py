"""Readable text tables of forecasts, and the self-contained HTML patient report."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED
from asuc_bayes.spec.config import ModelSpec

if TYPE_CHECKING:  # annotations only
    from asuc_bayes.decisions.dosing import DoseRecommendation
    from asuc_bayes.spec import ModelDeclaration

jinja2 = lazy_module("jinja2")  # the HTML report only: not on a forecast's table or JSON path

ROWS = (
    ("cl", "CL", "L/day", "{:.3g}"),
    ("v", "V", "L", "{:.3g}"),
    ("auc_w2_4", "AUC day 14-28", "mg·day/L", "{:.4g}"),
    ("ln_auc_cl", "ln(AUC/CL)", "", "{:.2f}"),
    ("risk_90d", "90-day colectomy risk", "", "{:.1%}"),
)


#: Short names of how a posterior was computed (``diagnostics["method"]``).
METHOD_LABELS = {"exact_grid": "exact grid", "independence_mh": "IMH", "nuts": "NUTS"}


def _with_mcse(value: float, mcse: float | None, fmt: str, monte_carlo: bool) -> str:
    """``value ±MCSE`` (two significant digits; percentage points for a percentage), or the
    value alone where the statistic has no Monte Carlo error (exact quadrature)."""
    if not monte_carlo:
        return fmt.format(value)
    if mcse is None:
        return f"{fmt.format(value)} ±n/a"
    error = f"{100 * mcse:.2g}%" if "%" in fmt else f"{mcse:.2g}"
    return f"{fmt.format(value)} ±{error}"


def _precision_line(d: dict) -> str | None:
    """The run's Monte Carlo precision against its target (``diagnostics["precision"]``)."""
    p = d.get("precision")
    if not p or d.get("method") == "exact_grid":
        return None
    worst = "undefined" if p["worst"] is None else f"{p['worst']:.3f} SD"
    size = (
        f"adaptive: {d['chains']} x {p['draws']} draws, cap {p['max_draws']}"
        if p["adaptive"]
        else f"fixed: {d['chains']} x {p['draws']} draws"
    )
    return (
        f"  Monte Carlo: tail-quantile MCSE (ln(AUC/CL), risk) <= {p['target']} SD: "
        f"{'met' if p['met'] else 'NOT MET'}, worst {worst} ({size})"
    )


def _cell(stats: dict | None, fmt: str) -> str:
    """``median [q2.5, q97.5]`` of an S, each ±its MCSE when the S has one (``"mcse"``), or
    ``-`` where the quantity is undefined."""
    if not stats or stats.get("q50") is None:
        return "-"
    mcse = stats.get("mcse") or {}
    low, mid, high = (
        _with_mcse(stats[k], mcse.get(k), fmt, bool(mcse)) for k in ("q2.5", "q50", "q97.5")
    )
    return f"{mid} [{low}, {high}]"


def format_library_table(declaration, results) -> str:
    """One block per patient forecast under a library model (:class:`LibraryForecast`):
    posterior median and 95 % CrI of every individual parameter, AUC, ln(AUC/CL) and risk."""
    lines = [
        f"model: {declaration.label}  ({declaration.structure}; {declaration.source})",
        "  values: posterior median [95 % credible interval], each ± its Monte Carlo SE",
    ]
    for result in results:
        entry = result.to_json()
        d = entry["diagnostics"]
        rhat, ess = d.get("rhat_max"), d.get("ess_bulk_min")
        gates = f"R-hat max {rhat:.3f}, bulk ESS min {ess:.0f}" if rhat is not None and ess else ""
        lines += ["", f"patient {entry['id']}: {entry['status'].upper()}  ({d['method']}; {gates})"]
        for name, stats in entry["parameters"].items():
            lines.append(f"  {name:<24}{_cell(stats, '{:.3g}')}")
        for key, label, _unit, fmt in ROWS:
            if key in ("cl", "v"):
                continue
            lines.append(f"  {label:<24}{_cell(entry['posterior'][key], fmt)}")
        outcome = entry["outcome"]
        if outcome is not None:
            note = (
                f"  (outcome model of {outcome['source_model']}, EXTRAPOLATED to this model)"
                if outcome["extrapolated"]
                else ""
            )
            lines.append(
                f"  P(high risk: ln(AUC/CL) < {outcome['high_risk_threshold']}) = "
                f"{entry['p_high_risk']:.2f}   risk class: {entry['risk_class'].upper()}{note}"
            )
        for imputed in entry["imputed"]:
            lines.append(
                f"  imputed {imputed['covariate']} = {imputed['value']:g} {imputed['unit']} "
                f"({imputed['reason']})"
            )
        precision = _precision_line(d)
        if precision:
            lines.append(precision)
        lines += [f"  warning: {w}" for w in entry["warnings"]]
    return "\n".join(lines)


def format_table(results, spec: ModelSpec) -> str:
    """One block per patient: posterior mean, SD, 95 % CrI (each mean and quantile ± its
    Monte Carlo standard error), MAP and a-priori values, and the run's precision."""
    blocks = [f"model: {spec.label}  (sha256 {spec.sha256[:12]})"]
    for result in results:
        s = result.summary()
        d = s["diagnostics"]
        if d.get("method") == "population_mixture":
            how = (
                f"integrated over {d['population_draws']} population draws "
                f"({d['population_source']}), Kish ESS {d['population_ess']:.0f}; exact "
                "quadrature per draw"
            )
        elif d.get("method") == "exact_grid":
            how = (
                f"bimodal posterior ({d['modes']} modes): exact quadrature, "
                f"{d['chains'] * d['draws']} independent draws"
            )
        elif d.get("method") == "independence_mh":
            how = (
                f"independence MH {d['chains']} chains x {d['draws']} draws, acceptance "
                f"{d['imh_acceptance']:.2f}, R-hat max {d['rhat_max']:.3f}, bulk ESS min "
                f"{d['ess_bulk_min']:.0f}"
            )
        else:
            how = (
                f"NUTS {d['chains']} chains x {d['draws']} draws, {d['divergences']} divergences, "
                f"R-hat max {d['rhat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}"
            )
        monte_carlo = d.get("method") != "exact_grid"  # quadrature statistics: no MC error
        lines = [
            "",
            f"patient {s['id']}: {s['status'].upper()}  ({how})",
            f"  {'quantity':<22}{'unit':<10}{'mean':>15}{'sd':>9}  "
            f"{'95% CrI' + (' (± MCSE)' if monte_carlo else ''):<31}{'MAP':>9}{'a priori':>10}",
        ]
        for key, label, unit, fmt in ROWS:
            p = s["posterior"][key]
            mcse = p.get("mcse") or {}
            mean, low, high = (
                _with_mcse(p[k], mcse.get(k), fmt, monte_carlo and bool(mcse))
                for k in ("mean", "q2.5", "q97.5")
            )
            lines.append(
                f"  {label:<22}{unit:<10}{mean:>15}{fmt.format(p['sd']):>9}  "
                f"{f'[{low}, {high}]':<31}{fmt.format(s['map'][key]):>9}"
                f"{fmt.format(s['a_priori'][key]):>10}"
            )
        threshold = spec.tte.high_risk_threshold
        lines.append(
            f"  P(high risk: ln(AUC/CL) < {threshold}) = {s['p_high_risk']:.2f}   "
            f"risk class (high when P(high risk) >= 0.5): {s['risk_class'].upper()}"
        )
        precision = _precision_line(d)
        if precision:
            lines.append(precision)
        if s["status"] != "ok":
            lines.append(
                "  WARNING: the posterior did not pass the convergence gates; "
                "do not use these numbers as they are."
            )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def format_comparison(comparisons: list[dict], spec: ModelSpec) -> str:
    """MAP against the posterior, one block per patient (from ``compare_patient``)."""
    blocks = [f"model: {spec.label}  (sha256 {spec.sha256[:12]})"]
    for c in comparisons:
        risk = c["risk_90d"]
        lines = [
            "",
            f"patient {c['id']}: {c['status'].upper()}  (posterior by {c['method']})",
            f"  90-day risk   MAP plug-in {risk['map_plug_in']:.1%}   posterior mean "
            f"{risk['posterior_mean']:.1%} [95% CrI {risk['posterior_95'][0]:.1%}, "
            f"{risk['posterior_95'][1]:.1%}]",
        ]
        for key, label, fmt in (
            ("cl", "CL (L/day)", "{:.3g}"),
            ("ln_auc_cl", "ln(AUC/CL)", "{:.2f}"),
        ):
            i = c["intervals"][key]
            lines.append(
                f"  {label:<13} MAP {fmt.format(i['map'])} Laplace 95% "
                f"[{fmt.format(i['laplace_95'][0])}, {fmt.format(i['laplace_95'][1])}]   "
                f"posterior mean {fmt.format(i['posterior_mean'])} 95% "
                f"[{fmt.format(i['posterior_95'][0])}, {fmt.format(i['posterior_95'][1])}]"
            )
        lines.append(
            f"  P(high risk) {c['p_high_risk']:.2f} (posterior class {c['posterior_class']})   "
            f"MAP class {c['map_class']}"
        )
        for check in c["predictive_check"]:
            kind = {0: "", 1: " (below LLOQ)", -1: " (above ULOQ)"}[check["censoring"]]
            mark = "  <-- SURPRISING" if check["surprising"] else ""
            lines.append(
                f"  sample day {check['time_day']:g}: {check['value_mg_l']:.3g} mg/L{kind}, "
                f"LOO predicted median {check['loo_predicted_median_mg_l']:.3g}, "
                f"tail p {check['tail_probability']:.3f}{mark}"
            )
        lines.append(
            "  FLAGS: " + ", ".join(c["flags"]) if c["flags"] else "  no decision-relevant flags"
        )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def format_study(studies) -> str:
    """Scenario metrics, posterior beside MAP + Laplace (from ``run_study``)."""
    header = (
        f"{'scenario':<14}{'n':>5} {'method':<10}{'cov50':>7}{'cov80':>7}{'cov90':>7}{'cov95':>7}"
        f"{'cov90 CL':>9}{'RMSE ln':>9}{'bias ln':>9}{'Brier':>8}{'sens':>7}{'spec':>7}"
    )
    lines = [
        "Coverage of the true ln(AUC/CL) by central intervals (posterior vs Laplace at the MAP),",
        "error of the point estimate (posterior mean vs MAP), Brier score of the 90-day risk",
        "against simulated colectomies, and classification against the true ln ratio.",
        "",
        header,
    ]
    for study in studies:
        m = study.metrics
        for method in ("posterior", "map"):
            b = m[method]
            lines.append(
                f"{study.scenario.name:<14}{len(study.table):>5} {method:<10}"
                + "".join(f"{b[f'coverage_{lv}_ln_auc_cl']:>7.2f}" for lv in (50, 80, 90, 95))
                + f"{b['coverage_90_cl']:>9.2f}{b['rmse_ln_auc_cl']:>9.3f}"
                f"{b['bias_ln_auc_cl']:>9.3f}{b['brier']:>8.3f}"
                f"{b['classification']['sensitivity']:>7.2f}"
                f"{b['classification']['specificity']:>7.2f}"
            )
        lines.append(
            f"{'':<20}Monte Carlo SE of a 90 % coverage: {m['coverage_mc_se_90']:.3f}; "
            f"exact-grid posteriors {m['exact_grid']}, unconverged {m['unconverged']}"
        )
    return "\n".join(lines)


# -- patient report (HTML) ---------------------------------------------------------------
DOSE_ROWS_MG_KG_DIGITS = 1


def _sig(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def interpretation(summary: dict, spec: ModelSpec) -> list[str]:
    """Plain-language sentences about one patient's forecast (no advice beyond the numbers)."""
    threshold = spec.tte.high_risk_threshold
    risk = summary["posterior"]["risk_90d"]
    p_high = summary["p_high_risk"]
    side = "at least" if summary["risk_class"] == "high" else "below"
    sentences = [
        f"Given the doses, samples and covariates entered, the model puts this patient's chance "
        f"of a colectomy within 90 days at {risk['mean']:.0%} on average; values between "
        f"{risk['q2.5']:.0%} and {risk['q97.5']:.0%} are credible (95 % credible interval).",
        f"The patient is classed as {summary['risk_class'].upper()} risk: the probability that "
        f"the exposure marker ln(AUC day 14–28 / CL) is below {threshold:g} (high risk) is "
        f"{p_high:.0%}, {side} one half; its most likely value is "
        f"{summary['posterior']['ln_auc_cl']['q50']:.2f}.",
        "The published tool reports a single most likely value (MAP): a "
        f"{summary['map']['risk_90d']:.0%} risk. The posterior above shows how far the truth "
        "may be from that value.",
    ]
    if 0.2 <= p_high <= 0.8:
        sentences.append(
            "The risk class is uncertain (P(high risk) between 0.2 and 0.8): the data entered do "
            "not determine on which side of the threshold this patient lies; a further "
            "concentration sample would narrow the interval."
        )
    if summary["diagnostics"].get("method") == "exact_grid":
        sentences.append(
            "The data fit two distinct combinations of clearance and volume (a bimodal "
            "posterior, computed exactly); both remain possible, which widens the intervals. A "
            "further sample at another time would tell them apart."
        )
    if summary["status"] != "ok":
        sentences.append(
            "The posterior did not pass the convergence checks: the numbers above are not reliable."
        )
    return sentences


def summary_rows(summary: dict) -> list[dict[str, str]]:
    """Formatted rows (posterior mean, SD, median, 95 % CrI, MAP, a priori) of a summary."""
    rows = []
    for key, label, unit, fmt in ROWS:
        post = summary["posterior"][key]
        rows.append(
            {
                "label": label,
                "unit": unit,
                "mean": fmt.format(post["mean"]),
                "sd": fmt.format(post["sd"]),
                "median": fmt.format(post["q50"]),
                "interval": f"{fmt.format(post['q2.5'])} – {fmt.format(post['q97.5'])}",
                "map": fmt.format(summary["map"][key]),
                "a_priori": fmt.format(summary["a_priori"][key]),
            }
        )
    return rows


def method_text(diagnostics: dict) -> str:
    if diagnostics.get("method") == "exact_grid":
        return (
            f"exact 2-D quadrature (bimodal posterior, {diagnostics.get('modes')} modes); the "
            "draws are independent, so R-hat and ESS below are for information"
        )
    if diagnostics.get("method") == "independence_mh":
        return (
            "independence Metropolis-Hastings (Laplace t proposal mixed with the prior), "
            "whitened coordinates; MAP by multi-start L-BFGS"
        )
    return f"NUTS ({diagnostics.get('sampler')}), whitened coordinates; MAP by multi-start L-BFGS"


def _input_rows(patient) -> tuple[list[dict], list[dict]]:
    doses = [
        {
            "day": f"{d.time_day:g}",
            "mg": f"{d.amount_mg:g}",
            "mg_kg": f"{d.amount_mg / patient.weight_kg:.{DOSE_ROWS_MG_KG_DIGITS}f}",
            "hours": f"{d.duration_day * 24:.3g}",
        }
        for d in patient.doses
    ]
    status = {
        MEASURED: "measured",
        BELOW_LLOQ: "below LLOQ (value = LLOQ)",
        ABOVE_ULOQ: "above ULOQ (value = ULOQ)",
    }
    samples = [
        {"day": f"{o.time_day:g}", "value": f"{o.value_mg_l:g}", "status": status[o.censoring]}
        for o in patient.observations
    ]
    return doses, samples


def patient_report_html(
    forecast,
    *,
    dosing: dict | None = None,
    generated_at: str | None = None,
    random_seed: int | None = None,
) -> str:
    """One self-contained HTML page about one patient's forecast.

    Inputs, the concentration and ln(AUC/CL) figures (embedded PNG), the risk summary with
    intervals and the MAP beside it, the dose recommendation (or the trough plan) when
    ``dosing`` is given, diagnostics with a visible warning when the posterior is
    unconverged, provenance, and a plain-language interpretation with the paper's caveats.
    The text is for clinicians: no command-line options. Every string from the input (the
    patient ID above all) is HTML-escaped.

    Parameters
    ----------
    forecast
        A :class:`asuc_bayes.inference.forecast.PatientForecast`.
    dosing
        Optional JSON of the same patient's dosing: ``DoseRecommendation.to_json()`` or
        ``DosingPlan.to_json()`` (risk or trough mode), or ``{"error": text}`` when no
        recommendation could be made (the report says why, without command-line options).
    generated_at
        Optional time stamp printed in the header (none by default, so that the same
        forecast gives the same bytes).
    random_seed
        The seed the user gave (shown under provenance); the per-patient sampler seed derived
        from it is shown only as a technical detail. ``None``: only the sampler's seed.
    """
    from asuc_bayes.decisions.dosing import concentration_text
    from asuc_bayes.inference.forecast import ESS_BULK_MIN, RHAT_MAX
    from asuc_bayes.interfaces.plots import (
        concentration_figure,
        dose_risk_figure,
        dose_trough_figure,
        figure_png,
        ln_ratio_figure,
    )

    spec = forecast.spec
    summary = forecast.summary()

    def encoded(figure) -> str:
        return base64.b64encode(figure_png(figure)).decode("ascii")

    images = {
        "concentration": encoded(concentration_figure(forecast)),
        "ln_ratio": encoded(ln_ratio_figure(forecast)),
        "dose_risk": encoded(dose_risk_figure(dosing)) if dosing and dosing.get("curve") else None,
        "dose_trough": encoded(dose_trough_figure(dosing["trough"]))
        if dosing and dosing.get("trough")
        else None,
    }
    rows = summary_rows(summary)
    doses, samples = _input_rows(forecast.patient)
    threshold = spec.tte.high_risk_threshold
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("asuc_bayes.interfaces", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["pct"] = lambda value: f"{100 * value:.1f} %"
    environment.filters["mgl"] = concentration_text
    template = environment.get_template("patient_report.html")
    return template.render(
        s=summary,
        d=summary["diagnostics"],
        p=dict(forecast.tree.attrs),
        patient=forecast.patient,
        rows=rows,
        doses=doses,
        samples=samples,
        images=images,
        dosing=_clinical_dosing(dosing),
        seed=_seed_text(forecast, random_seed),
        threshold=f"{threshold:g}",
        map_class="high" if summary["map"]["ln_auc_cl"] < threshold else "low",
        gates={"rhat": RHAT_MAX, "ess": ESS_BULK_MIN},
        method_text=method_text(summary["diagnostics"]),
        interpretation=interpretation(summary, spec),
        generated_at=generated_at,
    )


def _clinical_dosing(dosing: dict | None) -> dict | None:
    """``dosing`` for clinicians: an error without command-line options, and the interval
    rows worth showing of a trough plan."""
    if dosing is None:
        return None
    if "error" in dosing:
        from asuc_bayes.decisions.dosing import clinical_text

        return {"error": clinical_text(str(dosing["error"]))}
    if dosing.get("trough"):
        trough = dosing["trough"]
        keep = {trough["for_interval"]["interval_day"], trough["for_dose"]["longest_interval_day"]}
        rows = [
            row
            for row in trough["for_dose"]["intervals"]
            if row["interval_day"] % 7 == 0 or row["interval_day"] in keep
        ]
        return {**dosing, "interval_rows": rows}
    return dosing


def _seed_text(forecast, random_seed: int | None) -> dict[str, str]:
    """The seed the user gave, and the sampler's per-patient seed as a technical detail."""
    sampler = str(forecast.tree.attrs.get("random_seed", "unknown"))
    if random_seed is None:
        return {"given": None, "sampler": sampler}
    return {"given": str(random_seed), "sampler": sampler}


def report_paths(path: str | Path, patient_ids) -> list[Path]:
    """Where :func:`write_patient_reports` writes: ``path`` itself for one patient; for several,
    ``<stem>-<ID><suffix>`` beside it (characters other than letters, digits, ``.``, ``_`` and
    ``-`` in the ID become ``_``; clashes get ``-2``, ``-3``...)."""
    path = Path(path)
    ids = list(patient_ids)
    if len(ids) == 1:
        return [path]
    suffix = path.suffix or ".html"
    paths, taken = [], set()
    for patient_id in ids:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).strip(".") or "patient"
        candidate, n = f"{path.stem}-{safe}", 2
        while candidate.lower() in taken:
            candidate, n = f"{path.stem}-{safe}-{n}", n + 1
        taken.add(candidate.lower())
        paths.append(path.with_name(candidate + suffix))
    return paths


def write_patient_reports(
    results, path: str | Path, *, dosing: dict | None = None, random_seed: int | None = None
) -> list[Path]:
    """Write one HTML report per patient (see :func:`report_paths`); return the paths.

    ``dosing`` maps patient IDs to dose recommendations or plans (JSON form, or ``{"error":
    text}``); ``random_seed`` is the seed the user gave (shown under provenance).
    """
    paths = report_paths(path, [r.patient.id for r in results])
    for result, target in zip(results, paths, strict=True):
        html = patient_report_html(
            result, dosing=(dosing or {}).get(result.patient.id), random_seed=random_seed
        )
        target.write_text(html, encoding="utf-8")
    return paths


def format_overview(results, spec: ModelSpec) -> str:
    """One line per patient: status, 90-day risk with its 95 % CrI, P(high risk), class, MAP."""
    return _overview_lines([result.summary() for result in results])


def format_batch(batch) -> str:
    """The overview of a batch (:class:`asuc_bayes.inference.batch.BatchResult`): a line per
    patient,
    failed patients with their error, and the counts, time and engine."""
    body = _overview_lines([row.to_json() for row in batch.rows])
    counts = batch.counts
    resumed = sum(row.resumed for row in batch.rows)
    footer = (
        f"{len(batch.rows)} patients: {counts['ok']} ok, {counts['unconverged']} unconverged, "
        f"{counts['error']} failed"
        + (f" ({resumed} taken from the checkpoint)" if resumed else "")
        + f"; {batch.seconds:.1f} s on {batch.engine}"
    )
    return f"{body}\n\n{footer}"


def _overview_lines(summaries: list[dict]) -> str:
    header = (
        f"{'patient':<14}{'status':<13}{'90-day risk (95% CrI)':<27}{'P(high)':>8}  "
        f"{'class':<6}{'MAP risk':>9}  method"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        if s["status"] == "error":
            lines.append(f"{s['id'][:13]:<14}{'ERROR':<13}{s['error']}")
            continue
        risk = s["posterior"]["risk_90d"]
        interval = f"{risk['mean']:.1%} ({risk['q2.5']:.1%}–{risk['q97.5']:.1%})"
        method = METHOD_LABELS.get(s["diagnostics"].get("method"), "NUTS")
        lines.append(
            f"{s['id'][:13]:<14}{s['status']:<13}{interval:<27}{s['p_high_risk']:>8.2f}  "
            f"{s['risk_class']:<6}{s['map']['risk_90d']:>9.1%}  {method}"
        )
    return "\n".join(lines)


def format_dosing(plans, spec: ModelSpec) -> str:
    """One block per patient: in risk mode the recommendation, dose–risk curve, timing,
    regimens (and the value of one more sample); in trough mode the trough answer and its
    dose–trough and interval–trough tables."""
    blocks = [f"model: {spec.label}  (sha256 {spec.sha256[:12]})"]
    for plan in plans:
        d = plan.forecast.diagnostics
        lines = [
            "",
            f"patient {plan.forecast.patient.id}: {plan.forecast.status.upper()}  (posterior by "
            f"{d['method']}, R-hat max {d['rhat_max']:.3f}, bulk ESS min "
            f"{d['ess_bulk_min']:.0f}, {d['divergences']} divergences)",
        ]
        if plan.trough is not None:
            lines += _trough_lines(plan.trough, plan.request)
        else:
            lines += _risk_lines(plan)
        for note in plan.to_json()["notes"]:
            lines.append(f"  note: {note}")
        if plan.forecast.status != "ok":
            lines.append(
                "  WARNING: the posterior did not pass the convergence gates; "
                "do not use these numbers as they are."
            )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _dose_range_text(request, weight_kg: float, first_mg: float, cap_mg: float) -> str:
    return (
        f"whole {request.vial_mg:g} mg vials from {first_mg:g} mg (minimum "
        f"{request.min_mg_per_kg:g} mg/kg) to {cap_mg:g} mg (cap {request.max_mg_per_kg:g} "
        f"mg/kg, {weight_kg:g} kg)"
    )


def _trough_lines(trough, request) -> list[str]:
    """The trough answer first, then the dose–trough table and a short interval table."""
    from asuc_bayes.decisions.dosing import concentration_text as _mg_l

    table = trough.dose_table
    lines = [
        f"  trough target: trough >= {trough.target_mg_l:g} mg/L with P >= "
        f"{trough.probability:.2f}, {trough.maintenance_doses} infusion(s) every "
        f"{trough.interval_day:g} days from day {trough.start_day:g} (trough just before the "
        "next); "
        + _dose_range_text(
            request, trough.weight_kg, table["dose_mg"].iloc[0], table["dose_mg"].iloc[-1]
        ),
        f"  ANSWER: {trough.answer}",
        f"  every {trough.interval_day:g} days:",
        f"  {'dose mg':>8}{'mg/kg':>7}{'median trough':>15}  {'95% CrI (mg/L)':<18}"
        f"{'P(>=target)':>12}",
    ]
    for row in table.to_dict(orient="records"):
        mark = "  <--" if row["dose_mg"] == trough.dose_mg else ""
        interval = f"[{_mg_l(row['trough_q2.5'])}, {_mg_l(row['trough_q97.5'])}]"
        lines.append(
            f"  {row['dose_mg']:>8g}{row['dose_mg_kg']:>7.1f}{_mg_l(row['trough_q50']):>15}  "
            f"{interval:<18}{row['p_trough_above_target']:>12.2f}{mark}"
        )
    lines.append(f"  with {trough.interval_dose_mg:g} mg:")
    lines.append(
        f"  {'interval d':>10}{'median trough':>15}  {'95% CrI (mg/L)':<18}{'P(>=target)':>12}"
    )
    for row in _interval_rows(trough):
        mark = "  <-- longest" if row["interval_day"] == trough.longest_interval_day else ""
        interval = f"[{_mg_l(row['trough_q2.5'])}, {_mg_l(row['trough_q97.5'])}]"
        lines.append(
            f"  {row['interval_day']:>10g}{_mg_l(row['trough_q50']):>15}  {interval:<18}"
            f"{row['p_trough_above_target']:>12.2f}{mark}"
        )
    return lines


def _interval_rows(trough) -> list[dict]:
    """Rows of the interval table worth printing: whole weeks, the asked-for interval and the
    longest one meeting the target."""
    keep = {trough.interval_day, trough.longest_interval_day}
    return [
        row
        for row in trough.interval_table.to_dict(orient="records")
        if row["interval_day"] % 7 == 0 or row["interval_day"] in keep
    ]


def _risk_lines(plan) -> list[str]:
    rec = plan.recommendation
    request = rec.request
    criterion = (
        f"posterior mean 90-day risk <= {request.target_risk:.0%}"
        if request.criterion == "mean"
        else f"P(90-day risk <= {request.target_risk:.0%}) >= {request.probability:.0%}"
    )
    risk = rec.risk_90d
    if not rec.feasible:
        verdict = "TARGET NOT REACHABLE; at the cap"
    elif rec.met_at_minimum:
        verdict = "TARGET ALREADY MET AT THE MINIMUM DOSE; RECOMMENDED"
    else:
        verdict = "RECOMMENDED"
    map_note = (
        " (target not reachable at the cap)"
        if not rec.map_feasible
        else " (the minimum dose; target already met)"
        if rec.map_met_at_minimum
        else ""
    )
    lines = [
        f"  criterion: {criterion}; dose at day {request.dose_time_day:g}, "
        + _dose_range_text(request, rec.weight_kg, rec.curve["dose_mg"].iloc[0], rec.cap_mg),
        f"  {verdict}: {rec.dose_mg:g} mg ({rec.dose_mg / rec.weight_kg:.1f} mg/kg): "
        f"risk {risk['mean']:.1%} [95% CrI {risk['q2.5']:.1%}, {risk['q97.5']:.1%}], "
        f"P(risk <= target) {rec.p_meets_target:.2f}, P(high risk) {rec.p_high_risk:.2f}",
        f"  MAP (published tool): {rec.map_dose_mg:g} mg "
        f"({rec.map_dose_mg / rec.weight_kg:.1f} mg/kg), MAP risk {rec.map_risk_90d:.1%}"
        + map_note,
        f"  {'dose mg':>8}{'mg/kg':>7}{'mean risk':>11}  {'95% CrI':<17}"
        f"{'P(high)':>8}{'P(<=target)':>12}{'MAP risk':>10}",
    ]
    for row in rec.curve.to_dict(orient="records"):
        mark = "  <--" if row["dose_mg"] == rec.dose_mg else ""
        interval = f"[{row['risk_q2.5']:.1%}, {row['risk_q97.5']:.1%}]"
        lines.append(
            f"  {row['dose_mg']:>8g}{row['dose_mg_kg']:>7.1f}{row['risk_mean']:>11.1%}  "
            f"{interval:<17}{row['p_high_risk']:>8.2f}{row['p_meets_target']:>12.2f}"
            f"{row['map_risk']:>10.1%}{mark}"
        )
    if plan.timing is not None:
        lines.append(_timing_line(plan.timing))
    lines.append(f"  {'regimen':<22}{'mean risk':>10}  {'95% CrI':<17}{'P(high)':>8}  meets")
    for row in plan.regimens.table.to_dict(orient="records"):
        interval = f"[{row['risk_q2.5']:.1%}, {row['risk_q97.5']:.1%}]"
        lines.append(
            f"  {row['name']:<22}{row['risk_mean']:>10.1%}  {interval:<17}"
            f"{row['p_high_risk']:>8.2f}  {'yes' if row['meets_target'] else 'no'}"
        )
    if plan.sampling is not None:
        lines += _sampling_lines(plan.sampling)
    return lines


def _timing_line(timing) -> str:
    if timing.latest_day is None:
        days = "no candidate day meets the target"
    elif timing.earliest_day == timing.latest_day:
        days = f"only day {timing.latest_day:g} meets the target"
    else:
        days = (
            f"days {timing.earliest_day:g} to {timing.latest_day:g} meet the target "
            f"(latest: day {timing.latest_day:g})"
        )
    return f"  the same {timing.dose_mg:g} mg infused on another day: {days}"


def _sampling_lines(sampling) -> list[str]:
    if sampling.recommended_day is None:
        verdict = "no candidate day leaves time for the result before the decision"
    else:
        verdict = f"recommended day {sampling.recommended_day:g}"
    lines = [
        f"  one more sample (now SD of ln(AUC/CL) {sampling.current_sd_ln_auc_cl:.2f}; "
        f"{sampling.n_simulations} simulated samples per day; assay turnaround "
        f"{sampling.turnaround_day:g} day(s), so the latest useful sampling day is "
        f"{sampling.latest_useful_day:g}): {verdict}",
        f"  {'day':>6}{'E[SD] after':>12}{'reduction':>10}{'P(class)':>9}"
        f"{'P(dose)':>8}{'E|dose change|':>15}",
    ]
    for row in sampling.table.to_dict(orient="records"):
        if row["time_day"] == sampling.recommended_day:
            mark = "  <-- recommended"
        elif not row["result_in_time"]:
            mark = "  (result too late)"
        else:
            mark = ""
        lines.append(
            f"  {row['time_day']:>6g}{row['expected_sd_ln_auc_cl']:>12.3f}"
            f"{row['expected_sd_reduction']:>10.0%}{row['p_class_change']:>9.2f}"
            f"{row['p_dose_change']:>8.2f}{row['expected_abs_dose_change_mg']:>12.0f} mg"
            f"{mark}"
        )
    return lines


def _structural_lines(rows: list[dict], baseline: dict) -> list[str]:
    """The structural rows of a sensitivity table: each other library model, or why not run."""
    if not rows:
        return []
    lines = [
        "  structural: the patient under the other library models (posterior sampling; "
        f"baseline ln(AUC/CL) {baseline['ln_auc_cl_q50']:.2f} [{baseline['ln_auc_cl_q2.5']:.2f}, "
        f"{baseline['ln_auc_cl_q97.5']:.2f}])",
        f"  {'model':<20}{'structure':<36}{'ln(AUC/CL) [95% CrI]':<24}{'mean risk':>10}  "
        f"{'95% CrI':<16}{'P(high)':>8}  status / flags",
    ]
    for row in rows:
        if row["ln_auc_cl_q50"] != row["ln_auc_cl_q50"]:  # not run
            lines.append(f"  {row['name']:<20}{row['description']}")
            continue
        ln_auc = (
            f"{row['ln_auc_cl_q50']:.2f} [{row['ln_auc_cl_q2.5']:.2f}, "
            f"{row['ln_auc_cl_q97.5']:.2f}]"
        )
        risk = row["risk_mean"]
        interval = "" if risk != risk else f"[{row['risk_q2.5']:.1%}, {row['risk_q97.5']:.1%}]"
        p_high = row["p_high_risk"]
        lines.append(
            f"  {row['name']:<20}{row['structure']:<36}{ln_auc:<24}"
            f"{'' if risk != risk else f'{risk:.1%}':>10}  {interval:<16}"
            f"{'' if p_high != p_high else f'{p_high:.2f}':>8}  {row['status']}; {row['flags']}"
        )
    return lines


def format_sensitivity(results, spec: ModelSpec) -> str:
    """One table per patient: each alternative's risk, P(high risk), dose and change."""
    blocks = [f"model: {spec.label}  (sha256 {spec.sha256[:12]})"]
    for result in results:
        request = result.request
        lines = [
            "",
            f"patient {result.patient_id}: exact quadrature posteriors; dose at day "
            f"{request.dose_time_day:g} to a {request.target_risk:.0%} target "
            f"({request.criterion})",
            f"  {'group':<12}{'alternative':<32}{'mean risk':>10}  {'95% CrI':<16}{'P(high)':>8}"
            f"{'dose mg':>9}{'Δ risk':>9}{'Δ P(high)':>10}{'Δ dose':>8}  changes",
        ]
        records = result.table.to_dict(orient="records")
        structural = [r for r in records if r["group"] == "structural"]
        for row in (r for r in records if r["group"] != "structural"):
            interval = f"[{row['risk_q2.5']:.1%}, {row['risk_q97.5']:.1%}]"
            dose = row["recommended_dose_mg"]
            changes = (
                "density+derived"
                if row["changes_log_density"] and row["changes_derived"]
                else "density"
                if row["changes_log_density"]
                else "derived"
                if row["changes_derived"]
                else "-"
            )
            lines.append(
                f"  {row['group']:<12}{row['name']:<32}{row['risk_mean']:>10.1%}  {interval:<16}"
                f"{row['p_high_risk']:>8.2f}{'' if dose != dose else f'{dose:g}':>9}"
                f"{row['delta_risk_mean'] * 100:>8.2f}p{row['delta_p_high_risk']:>10.3f}"
                f"{'' if dose != dose else f'{row["delta_dose_mg"]:+g}':>8}  {changes}"
            )
        lines += _structural_lines(structural, records[0])
        thresholds = ", ".join(
            f"{t:g}: {p:.2f}"
            for t, p in zip(
                result.thresholds["threshold"], result.thresholds["p_high_risk"], strict=True
            )
        )
        lines.append(f"  P(high risk) by threshold: {thresholds}")
        if len(result.targets):
            targets = ", ".join(
                f"{t:.0%}: {d:g} mg" + ("" if f else " (cap)")
                for t, d, f in zip(
                    result.targets["target_risk"],
                    result.targets["recommended_dose_mg"],
                    result.targets["feasible"],
                    strict=True,
                )
            )
            lines.append(f"  recommended dose by target: {targets}")
        if result.power_scaling is not None:
            lines.append("  power-scaling sensitivity (ArviZ psense; > 0.05 is sensitive):")
            for name, row in result.power_scaling.iterrows():
                lines.append(
                    f"    {name:<11} prior {row['prior']:.3f}  likelihood "
                    f"{row['likelihood']:.3f}  {row['diagnosis']}"
                )
        for note in result.notes:
            lines.append(f"  note: {note}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def format_cohort_summary(summary: dict, reference: dict) -> str:
    """A simulated cohort's Table-1 statistics beside the paper's (``simulate.TABLE1``)."""

    def show(value) -> str:
        if isinstance(value, tuple):
            return "[" + ", ".join(show(v) for v in value) + "]"
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    lines = [f"{'statistic':<30}{'simulated':>26}{'paper (Table 1)':>26}"]
    for key, paper in reference.items():
        lines.append(f"{key:<30}{show(summary[key]):>26}{show(paper):>26}")
    return "\n".join(lines)


FIT_ROWS = (
    ("cl", "CL (theta_CL)", "L/day", "{:.3g}"),
    ("v", "V (theta_V)", "L", "{:.3g}"),
    ("crp_cl", "CRP exponent on CL", "", "{:.2f}"),
    ("iiv_cl_cv", "IIV CL (CV)", "", "{:.0%}"),
    ("iiv_v_cv", "IIV V (CV)", "", "{:.0%}"),
    ("prop_error", "proportional error", "", "{:.0%}"),
    ("tte_lambda", "Weibull lambda", "day^-g", "{:.2e}"),
    ("tte_gamma", "Weibull gamma", "", "{:.2f}"),
    ("tte_beta", "beta (ln AUC/CL)", "", "{:.2f}"),
)


def _diagnostic(value: float | None, spec: str) -> str:
    """An R-hat or ESS for the table; ``None`` (not finite: a parameter that never moved)."""
    return "undefined (a parameter never moved)" if value is None else format(value, spec)


def format_fit(summary: dict, published: dict) -> str:
    """A population fit's posterior (mean, 95 % CrI) beside Table 2 (estimate, bootstrap CI)."""
    d = summary["diagnostics"]
    lines = [
        f"population fit: {summary['n_subjects']} subjects, {summary['n_concentrations']} "
        f"concentrations, {summary['n_events']} colectomies; prior '{summary['prior']}', "
        f"{summary['method']} fit",
        f"NUTS ({d['sampler']}) {d['chains']} chains x {d['draws']} draws: {d['divergences']} "
        f"divergences, R-hat max {_diagnostic(d['rhat_max'], '.3f')} ({d['rhat_max_at']}), "
        f"bulk ESS min {_diagnostic(d['ess_bulk_min'], '.0f')} ({d['ess_bulk_min_at']}) over "
        "the population parameters and "
        f"every eta; {d['sampling_seconds']:.0f} s sampling, "
        f"{d['compile_seconds']:.0f} s compiling",
        "",
        f"  {'parameter':<22}{'unit':<8}{'mean':>9}  {'95% CrI':<22}{'paper':>9}  "
        f"{'bootstrap 95% CI':<20}",
    ]
    for key, label, unit, fmt in FIT_ROWS:
        p = summary["parameters"][key]
        estimate, boot = published[key]
        interval = f"[{fmt.format(p['q2.5'])}, {fmt.format(p['q97.5'])}]"
        boot_text = f"[{fmt.format(boot[0])}, {fmt.format(boot[1])}]" if boot else "-"
        lines.append(
            f"  {label:<22}{unit:<8}{fmt.format(p['mean']):>9}  {interval:<22}"
            f"{fmt.format(estimate):>9}  {boot_text:<20}"
        )
    lines.append("")
    lines.append(
        f"  lambda is the hazard scale at ln(AUC/CL) = x_ref = {summary['model']['x_ref']:.3f} "
        "(fixed centring constant of the model file)"
    )
    if summary["status"] != "ok":
        lines.append(
            "  WARNING: the posterior did not pass the convergence gates (any divergence, R-hat > "
            "1.01 or bulk ESS < 400): do not use these numbers as they are."
        )
    return "\n".join(lines)


def format_evaluation(metrics: dict) -> str:
    """The ROC / Youden / classification results of ``evaluate_fit`` as text (the paper
    reports AUROC 0.79 [0.52-1.00], threshold 5.79, sensitivity 83 %, specificity 85 %,
    accuracy 85 %, Fisher p = 0.001)."""
    lines = [
        f"ROC of ln(AUC_w2-4/CL) for colectomy after day 28: {metrics['n_roc']} subjects "
        f"({metrics['excluded_early_colectomies']} early colectomies excluded), "
        f"{metrics['n_colectomies_roc']} colectomies",
        f"  ln ratios: {metrics.get('ln_ratio_source', 'joint')} ({metrics['x_source']})",
        f"  AUROC {metrics['auroc']:.2f} (bootstrap 95 % CI {metrics['auroc_bootstrap_95'][0]:.2f}"
        f"-{metrics['auroc_bootstrap_95'][1]:.2f}; posterior over ln ratio uncertainty "
        f"{metrics['auroc_posterior_median']:.2f} [{metrics['auroc_posterior_95'][0]:.2f}-"
        f"{metrics['auroc_posterior_95'][1]:.2f}])",
        f"  Youden threshold {metrics['youden_threshold']:.2f} (bootstrap 95 % "
        f"{metrics['youden_bootstrap_95'][0]:.2f}-{metrics['youden_bootstrap_95'][1]:.2f}; "
        f"posterior {metrics['youden_posterior_median']:.2f} "
        f"[{metrics['youden_posterior_95'][0]:.2f}-{metrics['youden_posterior_95'][1]:.2f}])",
        "",
        f"  {'threshold':<22}{'TP':>4}{'FN':>4}{'FP':>4}{'TN':>4}{'sens':>7}{'spec':>7}{'acc':>7}"
        f"{'Fisher p':>10}",
    ]
    for key, label in (
        ("classification_published_threshold", "published"),
        ("classification_youden_threshold", "Youden"),
    ):
        c = metrics[key]
        name = f"{label} {c['threshold']:.2f}"
        lines.append(
            f"  {name:<22}{c['true_positive']:>4}"
            f"{c['false_negative']:>4}{c['false_positive']:>4}{c['true_negative']:>4}"
            f"{c['sensitivity']:>7.2f}{c['specificity']:>7.2f}{c['accuracy']:>7.2f}"
            f"{c['fisher_p']:>10.2g}"
        )
    groups = metrics["risk_groups"]
    lines.append("")
    lines.append(
        f"  risk groups (median ln ratio vs {groups['threshold']}): high "
        f"{groups['high']} ({groups['colectomies_high']} colectomies), low {groups['low']} "
        f"({groups['colectomies_low']} colectomies)"
    )
    return "\n".join(lines)


def format_sbc(table, counts: dict, attrs: dict, rhat_max: float = 1.05) -> str:
    """The per-parameter uniformity tests of a simulation-based calibration run as text.

    ``table`` is :meth:`asuc_bayes.studies.sbc.SBCResult.table` (computed with ``rhat_max``),
    ``counts`` the replicates by status, ``attrs`` the result's provenance attributes.
    """
    total = sum(counts.values())
    fitted = counts["ok"] + counts["unconverged"]
    n_bins = int(table["n_bins"].iloc[0]) if len(table) else 0
    n_mixed = int(table["n_mixed"].iloc[0]) if len(table) else 0
    lines = [
        f"simulation-based calibration: {total} replicates of {attrs.get('n_subjects', '?')} "
        f"subjects, prior '{attrs.get('prior', '?')}', {attrs.get('chains', '?')} chains x "
        f"{attrs.get('draws', '?')} draws (tune {attrs.get('tune', '?')}), ranks among "
        f"L = {attrs['n_rank_draws']} thinned draws, seed {attrs['random_seed']}",
        f"replicates: {counts['ok']} converged, {counts['unconverged']} unconverged "
        f"(any divergence, R-hat > 1.01 or bulk ESS < 400), {counts['error']} failed; "
        f"{n_mixed} with R-hat <= {rhat_max:g} for every parameter; "
        f"{attrs.get('wall_seconds', float('nan')):.0f} s on {attrs.get('engine', '?')}",
        f"chi-square test of uniform ranks, {n_bins} bins, over the {fitted} fitted replicates, "
        f"over those with R-hat <= {rhat_max:g} and over the converged ones:",
        "",
        f"  {'parameter':<18}{'p':>8}{'p (mixed)':>11}{'p (conv.)':>11}{'mean rank/L':>13}"
        f"{'ESS < L':>9}{'R-hat > ' + format(rhat_max, 'g'):>13}",
    ]
    for name, row in table.iterrows():
        lines.append(
            f"  {name:<18}{row['p_value']:>8.3f}{row['p_value_mixed']:>11.3f}"
            f"{row['p_value_converged']:>11.3f}{row['mean_rank_fraction']:>13.2f}"
            f"{int(row['ess_below_rank_draws']):>9d}{int(row['rhat_above_mixed']):>13d}"
        )
    lines.append("")
    flagged = [str(name) for name, row in table.iterrows() if row["p_value"] < 0.01]
    lines.append(
        "  p < 0.01 over all fitted replicates (miscalibration or a simulator/likelihood "
        "mismatch): " + (", ".join(flagged) if flagged else "none")
    )
    lines.append(
        f"  with {fitted} replicates only gross miscalibration is detectable. 'ESS < L': "
        "replicates whose ranked draws are autocorrelated (ranks pile up at the ends); "
        "selecting replicates by their diagnostics can bias the ranks when failures depend "
        "on the true values"
    )
    return "\n".join(lines)


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.1%}" if value < 0 else f"{value:.1%}"


def _num(value, fmt: str = "{:.3g}") -> str:
    return "-" if value is None else fmt.format(value)


def format_validation(document: dict) -> str:
    """The ``validate`` JSON as a table: one line per model and mode, then the average."""
    lines = [
        f"external validation: {document['n_subjects']} subjects, "
        f"{document['n_concentrations']} concentrations",
        "",
        f"  {'model':<22}{'mode':<11}{'MPE':>8}{'RMSE':>8}{'±20%':>7}{'±30%':>7}{'cov90':>7}"
        f"{'MAP cov90':>10}",
    ]
    rows = [(m["name"], m) for m in document["models"]]
    average = document.get("average") or {}
    for name, entry in [*rows, ("model average", average)]:
        for mode in ("a_priori", "bayesian"):
            metrics = entry.get(mode)
            if not metrics:
                continue
            lines.append(
                f"  {name:<22}{mode.replace('_', ' '):<11}{_pct(metrics.get('mpe')):>8}"
                f"{_pct(metrics.get('rmse')):>8}{_pct(metrics.get('within_20')):>7}"
                f"{_pct(metrics.get('within_30')):>7}{_pct(metrics.get('coverage_90')):>7}"
                f"{_pct(metrics.get('map_coverage_90')):>10}"
            )
    lines += [
        "",
        f"  {'model':<22}{'NPDE mean':>10}{'var':>7}{'p':>8}{'AUROC':>7}{'Brier':>7}"
        f"{'cal. slope':>11}{'weight':>8}",
    ]
    for name, entry in [*rows, ("model average", average)]:
        npde, outcome = entry.get("npde") or {}, entry.get("outcome") or {}
        lines.append(
            f"  {name:<22}{_num(npde.get('mean'), '{:+.3f}'):>10}"
            f"{_num(npde.get('variance'), '{:.3f}'):>7}{_num(npde.get('p_value'), '{:.3f}'):>8}"
            f"{_num(outcome.get('auroc'), '{:.2f}'):>7}{_num(outcome.get('brier'), '{:.3f}'):>7}"
            f"{_num(outcome.get('calibration_slope'), '{:.2f}'):>11}"
            f"{_num(entry.get('mean_weight'), '{:.2f}'):>8}"
        )
    lines.append("  (MPE, RMSE relative; weight: mean posterior model probability per patient)")
    for skipped in document.get("skipped", []):
        lines.append(f"  skipped {skipped['id']}: {skipped['reason']}")
    return "\n".join(lines)


def format_library_dosing(declaration: ModelDeclaration, plans) -> str:
    """One block per patient: the answer, then the dose–risk (or dose–trough) table."""
    lines = [f"model: {declaration.label}  ({declaration.structure}; {declaration.source})"]
    for plan in plans:
        entry = plan.to_json()
        lines += ["", f"patient {entry['id']}: {entry['status'].upper()}"]
        if plan.trough is not None:
            lines += _trough_lines(plan.trough, plan.request)
        else:
            lines += _library_risk_lines(plan.recommendation)
        lines += [f"  note: {note}" for note in entry["notes"]]
        if entry["status"] != "ok":
            lines.append("  WARNING: the posterior did not pass the convergence gates")
    return "\n".join(lines)


def _library_risk_lines(rec: DoseRecommendation) -> list[str]:
    request, risk = rec.request, rec.risk_90d
    criterion = (
        f"posterior mean 90-day risk <= {request.target_risk:.0%}"
        if request.criterion == "mean"
        else f"P(90-day risk <= {request.target_risk:.0%}) >= {request.probability:.0%}"
    )
    verdict = "TARGET NOT REACHABLE; at the cap" if not rec.feasible else "RECOMMENDED"
    lines = [
        f"  criterion: {criterion}; dose at day {request.dose_time_day:g}",
        f"  {verdict}: {rec.dose_mg:g} mg ({rec.dose_mg / rec.weight_kg:.1f} mg/kg): risk "
        f"{risk['mean']:.1%} [95% CrI {risk['q2.5']:.1%}, {risk['q97.5']:.1%}], P(risk <= "
        f"target) {rec.p_meets_target:.2f}, P(high risk) {rec.p_high_risk:.2f}",
        f"  MAP: {rec.map_dose_mg:g} mg, MAP risk {rec.map_risk_90d:.1%}",
        f"  {'dose mg':>8}{'mg/kg':>7}{'mean risk':>11}{'P(high)':>9}{'P(<=target)':>12}",
    ]
    for row in rec.curve.to_dict(orient="records"):
        mark = "  <--" if row["dose_mg"] == rec.dose_mg else ""
        lines.append(
            f"  {row['dose_mg']:>8g}{row['dose_mg_kg']:>7.1f}{row['risk_mean']:>11.1%}"
            f"{row['p_high_risk']:>9.2f}{row['p_meets_target']:>12.2f}{mark}"
        )
    return lines
