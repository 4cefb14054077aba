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
