"""The examples and exit codes that end each command's ``--help`` (argparse epilogs)."""

FORECAST_EXAMPLES = """examples:
  asuc-bayes forecast --example                    bundled example patients, table
  asuc-bayes forecast patients.csv --format json   NONMEM-style CSV, JSON on stdout
  asuc-bayes forecast patient.toml --id P01 --out p01.nc --seed 7
  asuc-bayes forecast patients.csv --variant log_crp --variant reference_weight_63kg
  asuc-bayes forecast patients.csv --report report.html   one HTML report per patient
    (with the week-2 dose to a 20 % mean risk; 'asuc-bayes optimize' for other targets)
  asuc-bayes forecast patients.csv --model fit.nc   integrate over a population fit's posterior
  asuc-bayes forecast cohort.csv --model wojciechowski2017 --report report.html --out f.nc
    a library model: one HTML report per patient, and every posterior in one netCDF file
  asuc-bayes forecast cohort.csv --model-average niyigena2025,wojciechowski2017
    per patient: posterior model probabilities, each model's risk and the averaged risk
    (--report average.html: one page per patient; --out average.nc: the draws and weights)
  asuc-bayes forecast cohort.csv --workers 2 --checkpoint runs/c1 --format json
    batch: 2 worker processes, resumable; a bad patient is an error row, not the end

exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
(in a batch: after every other patient is done)
"""

COMPARE_PATIENT_EXAMPLES = """examples:
  asuc-bayes compare-patient --example
  asuc-bayes compare-patient patients.csv --id P03 --format json

Flags: different_class (MAP class differs from the posterior's P(high risk) >= 0.5 decision),
uncertain_class (0.2 <= P(high risk) <= 0.8 while MAP reports a class), surprising_observation
(leave-one-out predictive tail probability < 0.01: antibodies? a sampling error?).
exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
"""

APP_EXAMPLES = """examples:
  asuc-bayes app                          http://127.0.0.1:8000, the default model
  asuc-bayes app --port 8050 --variant log_crp
  asuc-bayes app --draws 2000 --seed 7      more draws per chain; the seed the app starts with

The model is compiled (first run on a machine, ~1 min) or loaded before the server starts.
The app has no log-in: keep --host on this machine (127.0.0.1) unless a proxy protects it.
exit codes: 0 stopped normally; 2 bad options, model file, or the port is taken
"""

MAIN_EXAMPLES = """examples:
  asuc-bayes forecast --example                 forecast the bundled example patients
  asuc-bayes forecast patients.csv --report r.html --out results.nc
  asuc-bayes optimize --example --id P01        week-2 dose to a 20 % risk
  asuc-bayes sensitivity --example --id P01     how the answer moves under other assumptions
  asuc-bayes compare-patient patients.csv       MAP (published tool) against the posterior
  asuc-bayes compare --n 200 --out study/       simulation study
  asuc-bayes sbc --replicates 50 --subjects 36 --workers 2 --out sbc/   calibration
  asuc-bayes app                                the web app on http://127.0.0.1:8000

Run 'asuc-bayes COMMAND --help' for each command's options.
exit codes: 0 success; 1 an unconverged posterior (forecast, optimize, compare-patient;
unless --allow-unconverged); 2 bad input data, options or model file
"""

OPTIMIZE_EXAMPLES = """examples:
  asuc-bayes optimize --example --id P01                        week-2 dose to a 20 % risk
  asuc-bayes optimize patients.csv --criterion probability --probability 0.9 --format json
  asuc-bayes optimize patient.toml --target-risk 0.15 --dose-time 14 --timing-days 7:14
  asuc-bayes optimize patient.toml --next-sample --sample-days 8,10,12,13
  asuc-bayes optimize patient.toml --dose-time 42 --trough-target 5 --interval-days 56
  asuc-bayes optimize cohort.csv --model wojciechowski2017    a library model (risk extrapolated)
  asuc-bayes optimize cohort.csv --model-average niyigena2025,wojciechowski2017

The dose at --dose-time (added if the regimen has none there) is chosen in whole vials from the
patient's existing posterior; the other doses stay as given. mean: smallest dose with posterior
mean 90-day risk <= target; probability: smallest dose with P(risk <= target) >= --probability.
exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input or request
"""

SENSITIVITY_EXAMPLES = """examples:
  asuc-bayes sensitivity --example --id P01 --out sens/        tornado figure, table, JSON
  asuc-bayes sensitivity patient.toml --format json --criterion probability

Alternatives: every model-file variant; IIV and residual error x0.5 and x2; censored samples by
M3, discarded or imputed; prior and likelihood power-scaled by 0.5 and 2 (with ArviZ's psense);
threshold 5.5 and 6.1 (x_ref recalibrated); target risk 15 % and 25 %; population parameters
drawn from the published RSEs and bootstrap CIs (and from --population-fit). Each is computed
by exact quadrature (per population draw), so differences are not sampling noise.
exit codes: 0 ok; 2 bad input or options
"""

COMPARE_EXAMPLES = """examples:
  asuc-bayes compare --n 500 --seed 1 --out study/        all scenarios, figures and tables
  asuc-bayes compare --n 200 --scenario trough_week2 --format json

scenarios: day7, trough_week2, blq, two_samples, no_sample
exit codes: 0 ok; 2 bad options
"""

SIMULATE_EXAMPLES = """examples:
  asuc-bayes simulate --n 72 --seed 1 --out cohort.csv    also writes cohort.truth.csv
  asuc-bayes simulate --n 200 --seed 2 --population-uncertainty --out big.csv

exit codes: 0 ok; 2 bad options
"""

FIT_EXAMPLES = """examples:
  asuc-bayes fit cohort.csv                                 weak priors, marginal fit, table
  asuc-bayes fit cohort.csv --prior published --out fit.nc --seed 3
  asuc-bayes fit cohort.csv --two-stage --format json
  asuc-bayes fit cohort.csv --method full                   every eta sampled by NUTS

exit codes: 0 ok; 1 unconverged posterior (unless --allow-unconverged); 2 bad input
"""

EVALUATE_EXAMPLES = """examples:
  asuc-bayes evaluate fit.nc --out evaluation/
  asuc-bayes evaluate fit.nc --out evaluation/ --replicates 1000 --format json

  asuc-bayes evaluate fit.nc --out evaluation/ --ln-ratio-source joint

ROC and risk groups use ln(AUC/CL) from the PK model alone by default (as the paper did).
writes pcvpc.png, km_vpc.png, roc.png, metrics.json and CSV tables
exit codes: 0 ok; 2 bad input, or a fit that failed its convergence gates (unless
--allow-unconverged)
"""

SBC_EXAMPLES = """examples:
  asuc-bayes sbc --replicates 50 --subjects 36 --workers 2 --out sbc/ --seed 1
  asuc-bayes sbc --replicates 200 --subjects 72 --scheduler tcp://host:8786 --out sbc/
  asuc-bayes sbc --replicates 20 --subjects 24 --prior weak --draws 300 --out sbc/

Each replicate draws the population parameters from the prior the fit uses, simulates a cohort
from them, fits it and records the rank of the true values among L thinned posterior draws.
writes sbc.nc (ranks), uniformity.csv, replicates.csv and rank_histograms.png
exit codes: 0 ran (failed or unconverged replicates are reported, not fatal); 2 bad options
"""

VALIDATE_EXAMPLES = """examples:
  asuc-bayes validate cohort.csv --model niyigena2025 --model wojciechowski2017 --units ALB=g/L
  asuc-bayes validate cohort.csv --model niyigena2025 --model fasanmade2009 --format json
  asuc-bayes validate cohort.csv --model niyigena2025 --model fasanmade2009 --workers 2 --out v/

Each model predicts every concentration a priori (covariates only) and by Bayesian forecasting
leave-future-out (each concentration from the ones before it: posterior predictive and MAP +
Laplace); NPDE; the colectomy outcome from PK-only posteriors (the ASUC outcome model, flagged
extrapolated, for a model without one); per-patient posterior model probabilities from each
model's marginal likelihood, with likelihood/AIC and stacking weights beside them. Covariate
columns (ALB, ADA...) are read in --units, else in the unit the model files declare (ALB g/dL
in every library model that uses it; models that disagree need --units). --out writes
validation.json and validation.html (a self-contained report with VPC, pcVPC, NPDE, observed vs
predicted, calibration and weight figures). Each patient's seed derives from --seed and its ID:
the cohort's order and --workers/--scheduler do not change the results.
exit codes: 0 ok; 2 bad input, options or model file
"""
