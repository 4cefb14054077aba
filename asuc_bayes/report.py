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
        if d.get("method") == "exact_grid":
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


def format_dosing(plans, spec: ModelSpec) -> str:
    """Recommendation, dose-risk curve, timing, regimens (and troughs, sampling) per patient."""
    blocks = [f"model: {spec.label}  (sha256 {spec.sha256[:12]})"]
    for plan in plans:
        rec = plan.recommendation
        request = rec.request
        d = plan.forecast.diagnostics
        criterion = (
            f"posterior mean 90-day risk <= {request.target_risk:.0%}"
            if request.criterion == "mean"
            else f"P(90-day risk <= {request.target_risk:.0%}) >= {request.probability:.0%}"
        )
        risk = rec.risk_90d
        verdict = "RECOMMENDED" if rec.feasible else "TARGET NOT REACHABLE; at the cap"
        lines = [
            "",
            f"patient {rec.patient_id}: {plan.forecast.status.upper()}  (posterior by "
            f"{d['method']}, R-hat max {d['rhat_max']:.3f}, bulk ESS min "
            f"{d['ess_bulk_min']:.0f}, {d['divergences']} divergences)",
            f"  criterion: {criterion}; dose at day {request.dose_time_day:g}, whole "
            f"{request.vial_mg:g} mg vials, cap {request.max_mg_per_kg:g} mg/kg",
            f"  {verdict}: {rec.dose_mg:g} mg ({rec.dose_mg / rec.weight_kg:.1f} mg/kg): "
            f"risk {risk['mean']:.1%} [95% CrI {risk['q2.5']:.1%}, {risk['q97.5']:.1%}], "
            f"P(risk <= target) {rec.p_meets_target:.2f}, P(high risk) {rec.p_high_risk:.2f}",
            f"  MAP (published tool): {rec.map_dose_mg:g} mg "
            f"({rec.map_dose_mg / rec.weight_kg:.1f} mg/kg), MAP risk {rec.map_risk_90d:.1%}"
            + ("" if rec.map_feasible else " (target not reachable at the cap)"),
            f"  {'dose mg':>8}{'mg/kg':>7}{'mean risk':>11}  {'95% CrI':<17}"
            f"{'P(high)':>8}{'P(<=target)':>12}{'MAP risk':>10}",
        ]
        for row in rec.curve.itertuples(index=False):
            row = row._asdict()
            mark = "  <--" if row["dose_mg"] == rec.dose_mg else ""
            interval = f"[{row['_3']:.1%}, {row['_4']:.1%}]"
            lines.append(
                f"  {row['dose_mg']:>8g}{row['dose_mg_kg']:>7.1f}{row['risk_mean']:>11.1%}  "
                f"{interval:<17}{row['p_high_risk']:>8.2f}{row['p_meets_target']:>12.2f}"
                f"{row['map_risk']:>10.1%}{mark}"
            )
        if plan.timing is not None:
            t = plan.timing
            if t.latest_day is None:
                days = "no candidate day meets the target"
            elif t.earliest_day == t.latest_day:
                days = f"only day {t.latest_day:g} meets the target"
            else:
                days = (
                    f"days {t.earliest_day:g} to {t.latest_day:g} meet the target "
                    f"(latest: day {t.latest_day:g})"
                )
            lines.append(f"  timing of {t.dose_mg:g} mg: {days}")
        lines.append(f"  {'regimen':<22}{'mean risk':>10}  {'95% CrI':<17}{'P(high)':>8}  meets")
        for row in plan.regimens.table.to_dict(orient="records"):
            interval = f"[{row['risk_q2.5']:.1%}, {row['risk_q97.5']:.1%}]"
            lines.append(
                f"  {row['name']:<22}{row['risk_mean']:>10.1%}  {interval:<17}"
                f"{row['p_high_risk']:>8.2f}  {'yes' if row['meets_target'] else 'no'}"
            )
        if plan.trough is not None:
            tr = plan.trough
            dose_text = (
                f"the smallest dose is {tr.dose_mg:g} mg"
                if tr.dose_feasible
                else f"not reachable at the cap ({tr.dose_mg:g} mg)"
            )
            interval_text = (
                "no candidate interval meets it"
                if tr.longest_interval_day is None
                else f"the longest interval is {tr.longest_interval_day:g} days"
            )
            lines.append(
                f"  trough >= {tr.target_mg_l:g} mg/L with P >= {tr.probability:.0%} "
                f"({tr.maintenance_doses} infusion(s) from day {request.dose_time_day:g}): "
                f"every {tr.interval_day:g} days, {dose_text}; with {tr.interval_dose_mg:g} mg, "
                f"{interval_text}"
            )
        if plan.sampling is not None:
            sa = plan.sampling
            lines.append(
                f"  one more sample (now SD of ln(AUC/CL) {sa.current_sd_ln_auc_cl:.2f}; "
                f"{sa.n_simulations} simulated samples per day):"
            )
            lines.append(
                f"  {'day':>6}{'E[SD] after':>12}{'reduction':>10}{'P(class)':>9}"
                f"{'P(dose)':>8}{'E|dose change|':>15}"
            )
            for row in sa.table.to_dict(orient="records"):
                mark = "  <-- recommended" if row["time_day"] == sa.recommended_day else ""
                lines.append(
                    f"  {row['time_day']:>6g}{row['expected_sd_ln_auc_cl']:>12.3f}"
                    f"{row['expected_sd_reduction']:>10.0%}{row['p_class_change']:>9.2f}"
                    f"{row['p_dose_change']:>8.2f}{row['expected_abs_dose_change_mg']:>12.0f} mg"
                    f"{mark}"
                )
        for note in plan.to_json()["notes"]:
            lines.append(f"  note: {note}")
        if plan.forecast.status != "ok":
            lines.append(
                "  WARNING: the posterior did not pass the convergence gates; "
                "do not use these numbers as they are."
            )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


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
            f"  {'group':<12}{'alternative':<28}{'mean risk':>10}  {'95% CrI':<16}{'P(high)':>8}"
            f"{'dose mg':>9}{'Δ risk':>9}{'Δ P(high)':>10}{'Δ dose':>8}  changes",
        ]
        for row in result.table.to_dict(orient="records"):
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
                f"  {row['group']:<12}{row['name']:<28}{row['risk_mean']:>10.1%}  {interval:<16}"
                f"{row['p_high_risk']:>8.2f}{'' if dose != dose else f'{dose:g}':>9}"
                f"{row['delta_risk_mean'] * 100:>8.2f}p{row['delta_p_high_risk']:>10.3f}"
                f"{'' if dose != dose else f'{row["delta_dose_mg"]:+g}':>8}  {changes}"
            )
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
