"""Studies as text: MAP against the posterior, scenario studies, sensitivity analyses, the
simulated cohort, population fits, their evaluation, SBC and external validation."""

from __future__ import annotations

from asuc_bayes.interfaces.report.number_format import diagnostic_text, number_text, percent_text
from asuc_bayes.spec.config import ModelSpec


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


def format_library_comparison(declaration, comparisons) -> str:
    """Text blocks of :class:`~asuc_bayes.studies.library_compare.LibraryComparison` entries
    (``compare-patient --model NAME``), as :func:`format_comparison` shows the ASUC model."""
    lines = [f"model: {declaration.label}  ({declaration.structure}; {declaration.source})"]
    for c in comparisons:
        e = c.to_json()
        lines += ["", f"patient {e['id']}: {e['status'].upper()}  (posterior by {e['method']})"]
        lines += [
            f"  imputed {i['covariate']} = {i['value']:g} {i['unit']} ({i['reason']})"
            for i in e["imputed"]
        ]
        risk = e["risk_90d"]
        if risk is not None:
            low, high = (percent_text(x) for x in risk["posterior_95"])
            lines.append(
                f"  90-day risk   MAP plug-in {percent_text(risk['map_plug_in'])}   posterior "
                f"mean {percent_text(risk['posterior_mean'])} [95% CrI {low}, {high}]   "
                f"Laplace mean {percent_text(risk['laplace_mean'])}"
            )
        for key, label in (
            ("cl", "CL (L/day)"),
            ("v", "V/V1 (L)"),
            ("auc_w2_4", "AUC w2-4"),
            ("ln_auc_cl", "ln(AUC/CL)"),
        ):
            i = e["intervals"][key]
            laplace = ", ".join(number_text(x) for x in i["laplace_95"])
            posterior = ", ".join(number_text(x) for x in i["posterior_95"])
            lines.append(
                f"  {label:<13} MAP {number_text(i['map'])} Laplace 95% [{laplace}]   "
                f"posterior mean {number_text(i['posterior_mean'])} 95% [{posterior}]"
            )
        if e["p_high_risk"] is not None:
            laplace_p = number_text(e["p_high_risk_laplace"], "{:.2f}")
            lines.append(
                f"  P(high risk) {e['p_high_risk']:.2f} posterior ({e['posterior_class']}), "
                f"{laplace_p} Laplace   MAP class {e['map_class']}"
            )
        lines.append("  FLAGS: " + ", ".join(e["flags"]) if e["flags"] else "  no flags")
    return "\n".join(lines)


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


def _structural_lines(rows: list[dict], baseline: dict) -> list[str]:
    """The structural rows of a sensitivity table: each other library model, or why not run."""
    if not rows:
        return []
    lines = [
        "  structural: the patient under the other library models (posterior sampling; "
        f"baseline ln(AUC/CL) {baseline['ln_auc_cl_q50']:.2f} [{baseline['ln_auc_cl_q2.5']:.2f}, "
        f"{baseline['ln_auc_cl_q97.5']:.2f}])",
        f"  {'model':<20}{'structure':<36}{POSTERIOR_COLUMNS}",
    ]
    for row in rows:
        if row["ln_auc_cl_q50"] != row["ln_auc_cl_q50"]:  # not run
            lines.append(f"  {row['name']:<20}{row['description']}")
            continue
        lines.append(f"  {row['name']:<20}{row['structure']:<36}{posterior_cells(row)}")
    return lines


#: Header of the posterior columns of :func:`posterior_cells`.
POSTERIOR_COLUMNS = (
    f"{'ln(AUC/CL) [95% CrI]':<24}{'mean risk':>10}  {'95% CrI':<16}{'P(high)':>8}  status / flags"
)


def posterior_cells(row: dict) -> str:
    """A sensitivity row's posterior columns (:data:`POSTERIOR_COLUMNS`): ln(AUC/CL) median
    [95 % CrI], mean risk [95 % CrI], P(high risk), status and flags (blank when missing)."""
    ln_auc = (
        f"{row['ln_auc_cl_q50']:.2f} [{row['ln_auc_cl_q2.5']:.2f}, {row['ln_auc_cl_q97.5']:.2f}]"
    )
    risk = row["risk_mean"]
    interval = "" if risk != risk else f"[{row['risk_q2.5']:.1%}, {row['risk_q97.5']:.1%}]"
    p_high = row["p_high_risk"]
    return (
        f"{ln_auc:<24}{'' if risk != risk else f'{risk:.1%}':>10}  {interval:<16}"
        f"{'' if p_high != p_high else f'{p_high:.2f}':>8}  {row['status']}; {row['flags']}"
    )


def format_library_sensitivity(declaration, results) -> str:
    """One table per patient under a library model: each alternative's ln(AUC/CL), risk and
    P(high risk) (:func:`asuc_bayes.studies.library_sensitivity.run_library_sensitivity`)."""
    lines = [f"model: {declaration.label}  ({declaration.structure}; {declaration.source})"]
    for result in results:
        lines += [
            "",
            f"patient {result.patient_id}: posterior of each alternative (MAP + IMH, gated)",
            f"  {'group':<12}{'alternative':<28}{POSTERIOR_COLUMNS}",
        ]
        for row in result.table.to_dict(orient="records"):
            if row["ln_auc_cl_q50"] != row["ln_auc_cl_q50"]:  # a structural row not run
                lines.append(f"  {row['group']:<12}{row['name']:<28}{row['description']}")
                continue
            lines.append(f"  {row['group']:<12}{row['name']:<28}{posterior_cells(row)}")
        thresholds = ", ".join(
            f"{t:g}: {p:.2f}"
            for t, p in zip(
                result.thresholds["threshold"], result.thresholds["p_high_risk"], strict=True
            )
        )
        lines.append(f"  P(high risk) by threshold: {thresholds}")
        lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


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


def _fit_sampler_text(d: dict) -> str:
    """The sampler that produced a fit's draws, and why NUTS if the independence sampler was
    asked for and refused."""
    used = d.get("sampler_used", d["sampler"])
    if used == "imh":
        khat, acceptance = d.get("imh_khat"), d.get("imh_acceptance_min")
        moved = d.get("imh_adaptations", 0)
        source = "Laplace proposal" + (
            f" moved {moved}x to a run's weighted moments" if moved else ""
        )
        return (
            f"independence Metropolis-Hastings ({source}, Pareto k-hat "
            f"{'n/a' if khat is None else format(khat, '.2f')}, acceptance >= "
            f"{'n/a' if acceptance is None else format(acceptance, '.2f')})"
        )
    refused = d.get("imh_refused") or ""
    return f"NUTS ({used})" + (f" [imh refused: {refused}]" if refused else "")


def format_fit(summary: dict, published: dict) -> str:
    """A population fit's posterior (mean, 95 % CrI) beside Table 2 (estimate, bootstrap CI)."""
    d = summary["diagnostics"]
    lines = [
        f"population fit: {summary['n_subjects']} subjects, {summary['n_concentrations']} "
        f"concentrations, {summary['n_events']} colectomies; prior '{summary['prior']}', "
        f"{summary['method']} fit",
        f"{_fit_sampler_text(d)} {d['chains']} chains x {d['draws']} draws: "
        f"{d['divergences']} divergences, R-hat max "
        f"{diagnostic_text(d['rhat_max'], '.3f')} ({d['rhat_max_at']}), "
        f"bulk ESS min {diagnostic_text(d['ess_bulk_min'], '.0f')} ({d['ess_bulk_min_at']}) over "
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
                f"  {name:<22}{mode.replace('_', ' '):<11}{percent_text(metrics.get('mpe')):>8}"
                f"{percent_text(metrics.get('rmse')):>8}{percent_text(metrics.get('within_20')):>7}"
                f"{percent_text(metrics.get('within_30')):>7}{percent_text(metrics.get('coverage_90')):>7}"
                f"{percent_text(metrics.get('map_coverage_90')):>10}"
            )
    lines += [
        "",
        f"  {'model':<22}{'NPDE mean':>10}{'var':>7}{'p':>8}{'AUROC':>7}{'Brier':>7}"
        f"{'cal. slope':>11}{'weight':>8}",
    ]
    for name, entry in [*rows, ("model average", average)]:
        npde, outcome = entry.get("npde") or {}, entry.get("outcome") or {}
        lines.append(
            f"  {name:<22}{number_text(npde.get('mean'), '{:+.3f}'):>10}"
            f"{number_text(npde.get('variance'), '{:.3f}'):>7}"
            f"{number_text(npde.get('p_value'), '{:.3f}'):>8}"
            f"{number_text(outcome.get('auroc'), '{:.2f}'):>7}"
            f"{number_text(outcome.get('brier'), '{:.3f}'):>7}"
            f"{number_text(outcome.get('calibration_slope'), '{:.2f}'):>11}"
            f"{number_text(entry.get('mean_weight'), '{:.2f}'):>8}"
        )
    lines.append("  (MPE, RMSE relative; weight: mean posterior model probability per patient)")
    for skipped in document.get("skipped", []):
        lines.append(f"  skipped {skipped['id']}: {skipped['reason']}")
    return "\n".join(lines)
