"""Text tables of forecasts: the per-patient blocks, the overview and batch lines, and the
rows, sentences and method text the HTML report and the app show."""

from __future__ import annotations

from asuc_bayes.spec.config import ModelSpec

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


def imputation_lines(imputed: list[dict]) -> list[str]:
    """One line per imputed covariate of a library-model entry (its ``imputed`` JSON)."""
    return [
        f"  imputed {i['covariate']} = {i['value']:g} {i['unit']} ({i['reason']})" for i in imputed
    ]


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
        lines += imputation_lines(entry["imputed"])
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


def interpretation(
    summary: dict, threshold: float, map_source: str = "The published tool"
) -> list[str]:
    """Plain-language sentences about one patient's forecast (no advice beyond the numbers);
    ``threshold``: the high-risk threshold of ln(AUC/CL); ``map_source``: who reports the MAP."""
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
        f"{map_source} reports a single most likely value (MAP): a "
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
    """How the posterior was computed, in words (``diagnostics["method"]``).

    >>> method_text({"method": "nuts", "sampler": "nutpie"})
    'NUTS (nutpie), whitened coordinates; MAP by multi-start L-BFGS'
    """
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
