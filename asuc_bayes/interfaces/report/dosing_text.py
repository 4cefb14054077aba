"""Dose recommendations and plans as text: risk mode (recommendation, dose–risk curve,
timing, regimens, one more sample), trough mode, and the library models' dosing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asuc_bayes.interfaces.report.tables import imputation_lines
from asuc_bayes.spec.config import ModelSpec

if TYPE_CHECKING:  # annotations only
    from asuc_bayes.decisions.dosing import DoseRecommendation
    from asuc_bayes.spec import ModelDeclaration


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


def format_library_dosing(declaration: ModelDeclaration, plans) -> str:
    """One block per patient: the answer, then the dose–risk (or dose–trough) table."""
    lines = [f"model: {declaration.label}  ({declaration.structure}; {declaration.source})"]
    for plan in plans:
        entry = plan.to_json()
        lines += ["", f"patient {entry['id']}: {entry['status'].upper()}"]
        lines += imputation_lines(entry["imputed"])
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
