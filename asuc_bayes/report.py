"""Readable text tables of forecasts."""

from __future__ import annotations

from asuc_bayes.config import ModelSpec

ROWS = (
    ("cl", "CL", "L/day", "{:.3g}"),
    ("v", "V", "L", "{:.3g}"),
    ("auc_w2_4", "AUC day 14-28", "mg·day/L", "{:.4g}"),
    ("ln_auc_cl", "ln(AUC/CL)", "", "{:.2f}"),
    ("risk_90d", "90-day colectomy risk", "", "{:.1%}"),
)


def format_table(results, spec: ModelSpec) -> str:
    """One block per patient: posterior mean, SD, 95 % CrI, MAP and a-priori values."""
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
        else:
            how = (
                f"NUTS {d['chains']} chains x {d['draws']} draws, {d['divergences']} divergences, "
                f"R-hat max {d['rhat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}"
            )
        lines = [
            "",
            f"patient {s['id']}: {s['status'].upper()}  ({how})",
            f"  {'quantity':<22}{'unit':<10}{'mean':>9}{'sd':>9}  {'95% CrI':<19}"
            f"{'MAP':>9}{'a priori':>10}",
        ]
        for key, label, unit, fmt in ROWS:
            p = s["posterior"][key]
            interval = f"[{fmt.format(p['q2.5'])}, {fmt.format(p['q97.5'])}]"
            lines.append(
                f"  {label:<22}{unit:<10}{fmt.format(p['mean']):>9}{fmt.format(p['sd']):>9}  "
                f"{interval:<19}{fmt.format(s['map'][key]):>9}{fmt.format(s['a_priori'][key]):>10}"
            )
        threshold = spec.tte.high_risk_threshold
        lines.append(
            f"  P(high risk: ln(AUC/CL) < {threshold}) = {s['p_high_risk']:.2f}   "
            f"risk class (posterior median): {s['risk_class'].upper()}"
        )
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


def format_fit(summary: dict, published: dict) -> str:
    """A population fit's posterior (mean, 95 % CrI) beside Table 2 (estimate, bootstrap CI)."""
    d = summary["diagnostics"]
    lines = [
        f"population fit: {summary['n_subjects']} subjects, {summary['n_concentrations']} "
        f"concentrations, {summary['n_events']} colectomies; prior '{summary['prior']}', "
        f"{summary['method']} fit",
        f"NUTS ({d['sampler']}) {d['chains']} chains x {d['draws']} draws: {d['divergences']} "
        f"divergences, R-hat max {d['rhat_max']:.3f} ({d['rhat_max_at']}), bulk ESS min "
        f"{d['ess_bulk_min']:.0f} ({d['ess_bulk_min_at']}) over the population parameters and "
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
        f"  risk groups (posterior median ln ratio vs {groups['threshold']}): high "
        f"{groups['high']} ({groups['colectomies_high']} colectomies), low {groups['low']} "
        f"({groups['colectomies_low']} colectomies)"
    )
    return "\n".join(lines)
