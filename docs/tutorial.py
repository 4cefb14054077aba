"""A worked tutorial of asuc_bayes's Python API: from a patient file to a posterior, an HTML
report, a dose recommendation, a small cohort study, and the patient under other published
models and averaged over them.

Run it from the repository (after ``make example``, which also compiles and caches the model):

    .venv/bin/python docs/tutorial.py              # writes into tutorial-output/
    .venv/bin/python docs/tutorial.py --out /tmp/t --cohort 20

Everything below uses the public API only: ``asuc_bayes`` (load_model, read_patients,
Forecaster, results_json, save_results, DosingRequest, recommend_dose, plan_dosing),
``asuc_bayes.interfaces.report.write_patient_reports``,
``asuc_bayes.studies.simulate.simulate_patients`` and
``asuc_bayes.inference.forecast.derived_quantities``; for the model library
``asuc_bayes.spec`` (available_declarations, load_declaration),
``asuc_bayes.inference.forecast_library_patient``,
``asuc_bayes.inference.covariates.baseline_covariates``,
``asuc_bayes.decisions.model_average.average_patient`` and
``asuc_bayes.interfaces.report.model_average_html.write_model_average_reports``.
The test suite runs this script (tests/test_tutorial.py) with a few patients.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from asuc_bayes import (
    DosingRequest,
    Forecaster,
    load_model,
    plan_dosing,
    read_patients,
    recommend_dose,
    results_json,
    save_results,
)
from asuc_bayes.inference.forecast import derived_quantities
from asuc_bayes.interfaces.report import write_patient_reports
from asuc_bayes.studies.simulate import simulate_patients

# -- 1. A patient file ------------------------------------------------------------------
# A TOML patient file is the easiest input to write by hand (a NONMEM-style CSV works as
# well). Times are days since the first infliximab dose; a sample is a concentration in
# mg/L, or "below_lloq" / "above_uloq" with the assay's limit (censored, M3 method).
PATIENT_TOML = """
[[patient]]
id = "T01"
weight_kg = 63
crp_mg_l = 45
doses = [{day = 0, mg = 600}, {day = 14, mg_per_kg = 10}]
samples = [{day = 7, mg_l = 12.3}, {day = 10, below_lloq = 0.4}]
"""


def forecast_one_patient(out: Path):
    """Steps 1-3: read the patient, compute the posterior, write the results and a report."""
    patient_file = out / "patient.toml"
    patient_file.write_text(PATIENT_TOML)

    # The model: the published popPK + Weibull time-to-colectomy model (docs/MODEL.md),
    # its reference reading; load_model(variants=["log_crp"]) applies an alternative.
    spec = load_model()
    # read_patients validates every field and says which patient, row and field is wrong.
    patients = read_patients(patient_file).patients

    # -- 2. The posterior --------------------------------------------------------------
    # A Forecaster compiles the model's densities once per machine (cached on disk) and
    # forecasts any number of patients. The default sampler is an independence
    # Metropolis-Hastings sampler from the Laplace approximation (NUTS if it fails a gate;
    # exact quadrature for a bimodal posterior); 4 chains x 1000 draws by default.
    forecaster = Forecaster(spec)
    result = forecaster.forecast(patients[0], random_seed=1)
    summary = result.summary()  # the JSON output contract's entry of this patient
    risk = summary["posterior"]["risk_90d"]
    print(
        f"{summary['id']}: {summary['status']}, 90-day colectomy risk {risk['mean']:.1%} "
        f"(95% CrI {risk['q2.5']:.1%} to {risk['q97.5']:.1%}), "
        f"P(high risk) {summary['p_high_risk']:.2f}, MAP risk {summary['map']['risk_90d']:.1%}"
    )
    # result.tree is an ArviZ-convention xarray.DataTree: posterior draws, predictions
    # (concentration curves), point estimates (MAP, a priori), diagnostics, provenance.
    ln_ratio = result.tree["posterior"]["ln_auc_cl"].values
    print(f"posterior draws of ln(AUC/CL): {ln_ratio.size}, median {np.median(ln_ratio):.2f}")

    # -- 3. Results on disk: JSON, netCDF and the HTML report --------------------------
    (out / "forecast.json").write_text(json.dumps(results_json([result], spec), indent=2))
    save_results([result], out / "forecast.nc")  # load_results() reads it back
    recommendation = recommend_dose(result, DosingRequest())  # the report's dose section
    (report,) = write_patient_reports(
        [result], out / "report.html", dosing={result.patient.id: recommendation.to_json()}
    )
    print(f"report: {report}")
    return spec, forecaster, result


def recommend(result) -> None:
    """Step 4: the week-2 dose to a target risk, and a wider dosing plan."""
    # The smallest whole-vial dose at day 14 whose posterior mean 90-day risk is <= 20 %,
    # computed from the posterior draws the forecast already holds (no new sampling).
    request = DosingRequest(target_risk=0.20, dose_time_day=14.0)
    mean_rule = recommend_dose(result, request)
    print(
        f"dose at day 14 for mean risk <= 20 %: {mean_rule.dose_mg:g} mg "
        f"({mean_rule.dose_mg / mean_rule.weight_kg:.1f} mg/kg), mean risk then "
        f"{mean_rule.risk_90d['mean']:.1%}; the MAP alone would say {mean_rule.map_dose_mg:g} mg"
    )
    # A stricter rule: 80 % posterior probability that the risk is <= 20 %.
    strict = recommend_dose(result, criterion="probability", probability=0.8)
    print(f"dose for P(risk <= 20 %) >= 0.8: {strict.dose_mg:g} mg (feasible: {strict.feasible})")
    # plan_dosing adds the timing search (which day to give that dose) and a comparison of
    # standard regimens (5 mg/kg, 10 mg/kg, accelerated ...) for this patient.
    plan = plan_dosing(result, request, random_seed=2).to_json()
    print(f"regimens compared: {[row['name'] for row in plan['regimens']]}")


def cohort_study(spec, forecaster, n_patients: int, seed: int = 11) -> dict[str, float]:
    """Step 5: a small simulation study. Virtual patients are drawn from the model (their
    true CL and V are known), forecast, and the posterior is scored against the truth."""
    cohort = simulate_patients(spec, n_patients, seed)
    covered, correct_class, ok = 0, 0, 0
    threshold = spec.tte.high_risk_threshold  # ln(AUC_w2-4/CL) = 5.79
    for patient in cohort.patients:
        summary = forecaster.forecast(patient, random_seed=seed).summary()
        ok += summary["status"] == "ok"
        true_cl = cohort.truth.loc[patient.id, "cl"]
        cl = summary["posterior"]["cl"]
        covered += cl["q2.5"] <= true_cl <= cl["q97.5"]
        # The true ln(AUC/CL) under the patient's own regimen, from the true CL and V: the
        # same model function the forecast uses for every posterior draw.
        eta = cohort.truth.loc[patient.id, ["eta_cl", "eta_v"]].to_numpy(dtype=float)
        true_ln_ratio = float(derived_quantities(spec, patient, eta)["ln_auc_cl"])
        true_class = "high" if true_ln_ratio < threshold else "low"
        correct_class += summary["risk_class"] == true_class
    scores = {
        "patients": n_patients,
        "converged": ok,
        "cl_95_coverage": covered / n_patients,
        "risk_class_accuracy": correct_class / n_patients,
    }
    print(
        f"cohort of {n_patients}: {ok} converged, true CL inside the 95 % CrI for "
        f"{scores['cl_95_coverage']:.0%}, risk class right for "
        f"{scores['risk_class_accuracy']:.0%}"
    )
    return scores


# -- 6. Questions about models ----------------------------------------------------------
# Other published infliximab models are model files of the library (docs/LIBRARY.md). A
# NONMEM-style CSV carries the covariates they need as columns (here albumin, ALB in g/dL, and
# anti-drug antibodies, ADA 0/1), read exactly as a pharmacometrician writes them.
LIBRARY_CSV = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
T02,0,1,400,.,70,30,3.5,0
T02,7,0,0,14,70,30,3.5,0
T02,14,1,400,.,70,30,3.5,0
"""


def questions_about_models(out: Path) -> None:
    """Step 6: one patient under another published model (two compartments, albumin,
    antibodies), then averaged over two models with weights from the patient's own data."""
    from asuc_bayes.decisions.model_average import average_patient
    from asuc_bayes.inference import forecast_library_patient
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.interfaces.report.model_average_html import write_model_average_reports
    from asuc_bayes.spec import available_declarations, load_declaration

    print(f"library: {', '.join(available_declarations())}")
    data = out / "library.csv"
    data.write_text(LIBRARY_CSV)
    (patient,) = read_patients(data).patients
    # The model file declares its structure, covariates and their units; the patient's
    # covariates are bound and checked against plausibility limits in those units.
    declaration = load_declaration("wojciechowski2017")
    covariates = baseline_covariates(patient, declaration)
    # A model without its own outcome model borrows the ASUC one, and the result says so.
    forecast = forecast_library_patient(
        declaration, patient, covariates, attach_outcome=True, random_seed=3
    )
    risk = forecast.to_json()["posterior"]["risk_90d"]
    print(
        f"{patient.id} under {declaration.name}: {forecast.status}, 90-day risk "
        f"{risk['mean']:.1%} (extrapolated outcome model: {forecast.extrapolated_outcome})"
    )
    # Bayesian model averaging: each model's weight is its marginal likelihood of the
    # patient's concentrations (equal prior weights); the averaged risk is the mixture.
    average = average_patient(["niyigena2025", "wojciechowski2017"], patient, random_seed=3)
    weights = ", ".join(f"{m.evidence.name} {m.weight:.2f}" for m in average.models)
    print(f"model weights: {weights}; averaged 90-day risk {average.risk['mean']:.1%}")
    (page,) = write_model_average_reports(
        [average], {patient.id: patient}, out / "average.html", random_seed=3
    )
    print(f"model-average report: {page}")


def main(out: Path, cohort: int = 20) -> dict[str, float]:
    """Run the whole tutorial, writing into ``out``; returns the cohort study's scores."""
    out.mkdir(parents=True, exist_ok=True)
    spec, forecaster, result = forecast_one_patient(out)
    recommend(result)
    scores = cohort_study(spec, forecaster, cohort)
    questions_about_models(out)
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tutorial-output"))
    parser.add_argument("--cohort", type=int, default=20, help="virtual patients (20)")
    arguments = parser.parse_args()
    main(arguments.out, arguments.cohort)
