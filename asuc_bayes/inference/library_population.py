"""Population PK fit (popPK) of a cohort under a PK-only library model (``fit --model NAME``).

The hierarchical model is built from the declaration; every subject's covariates enter through
the declaration's covariate effects, fixed at their published values
(:class:`~asuc_bayes.inference.PatientProblem` evaluates each subject's covariate-adjusted
typical values once). Estimated, for each random effect k (the model file's order) on
parameter P_k:

- the typical value, as a log shift from the published one: P_k,i = TV_k,i · e^(δ_k + η_ik),
  with δ_k ~ N(0, :data:`TYPICAL_PRIOR_LOG_SD` = 0.5), i.e. the typical value within a factor
  e^(±1) ≈ 2.7 of the publication with 95 % prior probability;
- ω_k (the SD of η_k) ~ HalfNormal(2 · the published ω_k); Ω is diagonal (a declared block Ω
  is fitted without its covariances);
- each residual error SD ~ HalfNormal(2 · its published value);
- η_ik = ω_k z_ik, z_ik ~ N(0, 1) (non-centred).

Parameters without a random effect and derived parameters (e.g. CL = KE · V) follow the
declaration. Predictions come from the PK structure's closed form in PyTensor, vectorised over
subjects (doses padded with zero-amount infusions, records gathered by index so that padding
never enters the likelihood), with the declaration's residual density and M3 terms.

Sampled with nutpie (numba); the gates are those of every posterior here
(:data:`~asuc_bayes.inference.diagnostics.RHAT_MAX`,
:data:`~asuc_bayes.inference.diagnostics.ESS_BULK_MIN`, no
divergence) over δ, ω, the residual SDs and every η. The result is a DataTree (``posterior``,
``sample_stats``, ``observed_data``, ``constant_data``; built as every population fit's,
:func:`asuc_bayes.inference.fit_tree.build_fit_tree`) whose root attributes carry the
provenance (model name and sha256 of the file, versions, settings, seed) and the
``diagnostics_*`` that :func:`asuc_bayes.inference.fit_identity.identify_fit` reads.

Examples
--------
>>> from asuc_bayes.studies.library_simulate import simulate_library_cohort
>>> from asuc_bayes.spec import load_declaration
>>> decl = load_declaration("wojciechowski2017")
>>> cohort = simulate_library_cohort(decl, 3, random_seed=1, outcome=False)
>>> covariates = [{"ALB": (float(r["ALB"]), "g/L"), "ADA": r["ADA"]}
...               for _, r in cohort.truth.iterrows()]
>>> data = LibraryCohortData.from_patients(decl, cohort.patients, covariates)
>>> data.n_subjects, data.doses.amount_mg.shape[0]
(3, 3)
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Patient
from asuc_bayes.inference import PatientProblem
from asuc_bayes.inference.fit_tree import (
    LIBRARY_FIT_KIND,
    FitResult,
    build_fit_tree,
    convergence,
    trace_result,
)
from asuc_bayes.pk import DoseArrays
from asuc_bayes.spec import ModelDeclaration
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L, residual_form

__all__ = [
    "TYPICAL_PRIOR_LOG_SD",
    "LibraryCohortData",
    "LibraryFitSettings",
    "LibraryPopulationFit",
    "build_library_population_model",
    "fit_library_population",
    "reference_log_density",
]

#: The root ``kind`` attribute of a library popPK fit (``forecast --model FIT.nc`` integrates
#: over it: :mod:`asuc_bayes.inference.library_population_forecast`).
FIT_KIND = LIBRARY_FIT_KIND
#: Prior SD of the log shift of each typical value from the published one.
TYPICAL_PRIOR_LOG_SD = 0.5
#: ω and residual SD priors: HalfNormal with this multiple of the published value as scale.
SCALE_PRIOR_FACTOR = 2.0


@dataclass(frozen=True)
class LibraryFitSettings:
    """NUTS settings of a library popPK fit (nutpie, numba backend).

    The defaults were chosen on simulated 40-subject cohorts of 5 samples each (README,
    "fit --model NAME"): with the previous 4 × 1000 draws after 1000 steps at 0.9,
    ``faelens2021`` failed narrowly (R-hat 1.017 at ω_V) and ``fasanmade2009`` diverged with
    bulk ESS 245 at ω_V1; at 0.95 with 2000 draws ``fasanmade2009`` still diverged on two of
    three cohorts. 2000 draws after 1000 steps at 0.99 passed every gate on three
    ``faelens2021`` cohorts, one ``fasanmade2011`` cohort and two of three ``fasanmade2009``
    cohorts (the third: R-hat 1.019 at ω_V1, which mixes slowly when the samples say little
    about V1).
    """

    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.99
    #: nutpie's mass-matrix adaptation: "diag" (default) or "low_rank" (learns the
    #: correlation of each typical value with its random effects)
    adaptation: str = "diag"

    def __post_init__(self) -> None:
        if self.adaptation not in ("diag", "low_rank"):
            raise ValueError("adaptation: 'diag' or 'low_rank'")
        for name in ("draws", "tune", "chains"):
            if int(getattr(self, name)) < (2 if name == "chains" else 1):
                raise ValueError(f"--{name}: must be a positive integer (chains >= 2)")
        if not 0.5 <= self.target_accept < 1.0:
            raise ValueError("--target-accept: must be in [0.5, 1)")


@dataclass(frozen=True, eq=False)
class LibraryCohortData:
    """A cohort bound to a declaration: per-subject problems, padded regimens and records."""

    declaration: ModelDeclaration
    ids: tuple[str, ...]
    problems: tuple[PatientProblem, ...]
    doses: DoseArrays
    #: the records, flattened over subjects: subject index, time, value, censoring code
    subject: np.ndarray
    time_day: np.ndarray
    value_mg_l: np.ndarray
    censoring: np.ndarray
    #: (n_subject, n_time) padded times; ``record_index`` gathers the records from them
    padded_time_day: np.ndarray
    record_index: np.ndarray
    #: covariate-adjusted typical values at the published population values, (n_subject,)
    typical: dict[str, np.ndarray]

    @property
    def n_subjects(self) -> int:
        return len(self.ids)

    @classmethod
    def from_patients(
        cls,
        declaration: ModelDeclaration,
        patients: Sequence[Patient],
        covariates: Sequence[Mapping[str, Any]] | None = None,
    ) -> LibraryCohortData:
        """Bind ``patients`` (with their covariates other than WT and CRP, one mapping each)."""
        if len(patients) < 2:
            raise ValueError(f"a population fit needs at least 2 subjects, got {len(patients)}")
        covariates = covariates or [{}] * len(patients)
        problems = tuple(
            PatientProblem.from_patient(declaration, p, c)
            for p, c in zip(patients, covariates, strict=True)
        )
        n_dose = max(pr.doses.start_day.size for pr in problems)
        n_time = max(max(pr.time_day.size for pr in problems), 1)
        fields = {name: [] for name in ("start", "amount", "duration", "interval", "end")}
        padded_time = np.ones((len(problems), n_time))
        subject, times, values, codes, index = [], [], [], [], []
        for i, pr in enumerate(problems):
            d, pad = pr.doses, n_dose - pr.doses.start_day.size
            fields["start"].append(np.pad(d.start_day, (0, pad)))
            fields["amount"].append(np.pad(d.amount_mg, (0, pad)))
            fields["duration"].append(np.pad(d.duration_day, (0, pad), constant_values=1.0))
            fields["interval"].append(np.pad(d.steady_state_interval_day, (0, pad)))
            fields["end"].append(np.pad(d.end_day, (0, pad), constant_values=np.inf))
            n = pr.time_day.size
            padded_time[i, :n] = pr.time_day
            subject += [i] * n
            times += pr.time_day.tolist()
            values += pr.value_mg_l.tolist()
            codes += pr.censoring.tolist()
            index += [i * n_time + j for j in range(n)]
        if not times:
            raise ValueError("a population fit needs concentration records; the data have none")
        doses = DoseArrays(
            start_day=np.array(fields["start"]),
            amount_mg=np.array(fields["amount"]),
            duration_day=np.array(fields["duration"]),
            steady_state_interval_day=np.array(fields["interval"]),
            end_day=np.array(fields["end"]),
        )
        typical = {
            name: np.array([dict(pr.typical)[name] for pr in problems])
            for name, _ in problems[0].typical
        }
        return cls(
            declaration=declaration,
            ids=tuple(p.id for p in patients),
            problems=problems,
            doses=doses,
            subject=np.array(subject, dtype=np.int64),
            time_day=np.array(times),
            value_mg_l=np.array(values),
            censoring=np.array(codes, dtype=np.int64),
            padded_time_day=padded_time,
            record_index=np.array(index, dtype=np.int64),
            typical=typical,
        )


def _published(declaration: ModelDeclaration) -> tuple[np.ndarray, dict[str, float]]:
    return declaration.random_effects.sd, declaration.residual.sd()


def _individual(declaration, typical: Mapping[str, Any], shift, eta, xp) -> dict[str, Any]:
    """Individual parameters: TV · e^(δ_k + η_k) on each random effect's parameter, then the
    derived ones (as :meth:`PatientProblem.parameters`)."""
    values = dict(typical)
    for k, effect in enumerate(declaration.random_effects.effects):
        values[effect.parameter] = values[effect.parameter] * xp.exp(shift[k] + eta[..., k])
    for derived in declaration.derived:
        product = 1.0
        for factor in derived.product_of:
            product = product * values[factor]
        values[derived.name] = product
    return values


def build_library_population_model(data: LibraryCohortData):
    """The PyMC model of the module docstring."""
    import pymc as pm
    import pytensor.tensor as pt

    decl = data.declaration
    omega_sd, sigma_published = _published(decl)
    problem = data.problems[0]
    coords = {"subject": list(data.ids), "eta_name": list(decl.random_effects.names)}
    with pm.Model(coords=coords) as model:
        # NumPy float64 parameters: PyTensor types a Python float such as 0.5 as float32
        shift = pm.Normal(
            "log_typical_shift",
            np.zeros(len(omega_sd)),
            np.full(len(omega_sd), TYPICAL_PRIOR_LOG_SD),
            dims="eta_name",
        )
        omega = pm.HalfNormal("omega_sd", sigma=SCALE_PRIOR_FACTOR * omega_sd, dims="eta_name")
        sigma = {
            name: pm.HalfNormal(f"sigma_{name}", sigma=np.float64(SCALE_PRIOR_FACTOR * value))
            for name, value in sigma_published.items()
        }
        z = pm.Normal("z", np.float64(0.0), np.float64(1.0), dims=("subject", "eta_name"))
        eta = pm.Deterministic("eta", z * omega, dims=("subject", "eta_name"))
        published = {p.name: p.typical.estimate for p in decl.parameters}
        for k, effect in enumerate(decl.random_effects.effects):
            pm.Deterministic(
                f"typical_{effect.parameter}", published[effect.parameter] * pt.exp(shift[k])
            )
        typical = {k: pt.as_tensor_variable(v) for k, v in data.typical.items()}
        values = _individual(decl, typical, shift, eta, pt)
        params = problem.structure_parameters(values)
        prediction = problem.structure.concentration(data.padded_time_day, data.doses, params, pt)
        f = prediction.reshape((-1,))[data.record_index]
        pm.Potential("log_likelihood", _log_likelihood(data, f, sigma, pt))
    return model


def _log_likelihood(data: LibraryCohortData, f, sigma: Mapping[str, Any], xp) -> Any:
    """Σ over records of the residual density (measured) or M3 term (censored)."""
    form = residual_form(data.declaration.residual.form)
    total = 0.0
    for code, term in (
        (MEASURED, form.log_density),
        (BELOW_LLOQ, form.log_below),
        (ABOVE_ULOQ, form.log_above),
    ):
        index = np.flatnonzero(data.censoring == code)
        if index.size:
            values = data.value_mg_l[index]
            if code != MEASURED:
                values = np.maximum(values, PREDICTION_FLOOR_MG_L)
            total = total + xp.sum(term(values, f[..., index], sigma, xp))
    return total


def reference_log_density(
    data: LibraryCohortData,
    shift: np.ndarray,
    omega_sd: np.ndarray,
    sigma: Mapping[str, float],
    z: np.ndarray,
) -> float:
    """The model's log density at one point, in NumPy, subject by subject: each subject's
    :meth:`PatientProblem.log_likelihood` (under the declaration with these residual SDs) at
    η = δ + ω z (the typical-value shift folded into η), plus the log priors (SciPy).

    The PyMC model (:func:`build_library_population_model`) must agree with it up to the
    Jacobians of the log transforms of ω and σ, which the caller adds (tested to 1e-10).
    """
    import scipy.stats

    decl = data.declaration
    residual = decl.residual
    replaced = dataclasses.replace(
        residual,
        sigma=tuple(
            (name, dataclasses.replace(value, estimate=float(sigma[name])))
            for name, value in residual.sigma
        ),
    )
    omega_published, sigma_published = _published(decl)
    total = 0.0
    for i, problem in enumerate(data.problems):
        bound = dataclasses.replace(
            problem, declaration=dataclasses.replace(decl, residual=replaced)
        )
        eta = shift + omega_sd * z[i]
        total += float(bound.log_likelihood(eta[None, :])[0])
    total += scipy.stats.norm.logpdf(shift, 0.0, TYPICAL_PRIOR_LOG_SD).sum()
    total += scipy.stats.halfnorm.logpdf(omega_sd, scale=SCALE_PRIOR_FACTOR * omega_published).sum()
    for name, value in sigma.items():
        total += scipy.stats.halfnorm.logpdf(
            value, scale=SCALE_PRIOR_FACTOR * sigma_published[name]
        )
    total += scipy.stats.norm.logpdf(z).sum()
    return float(total)


@dataclass
class LibraryPopulationFit(FitResult):
    """A library popPK fit: its DataTree and gates (``tree.attrs['diagnostics_*']``)."""

    tree: Any

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the population parameters (mean, SD, 2.5/50/97.5 %), the published
        values, the gates and timings."""
        from asuc_bayes.inference.result import finite_or_none, summary_statistics

        posterior = self.tree["posterior"].to_dataset()
        attrs = self.tree.attrs
        parameters = {}
        for name in posterior.data_vars:
            if name in ("z", "eta"):
                continue
            values = posterior[name].values
            if values.ndim == 2:
                parameters[name] = summary_statistics(values)
            else:
                labels = posterior[name][posterior[name].dims[-1]].values
                for j, label in enumerate(labels):
                    parameters[f"{name}[{label}]"] = summary_statistics(values[..., j])
        return {
            "model": {"name": attrs["model_name"], "sha256": attrs["model_sha256"]},
            "method": "popPK",
            "status": self.status,
            "n_subjects": int(attrs["n_subjects"]),
            "n_concentrations": int(attrs["n_concentrations"]),
            "parameters": parameters,
            "published": json_published(attrs),
            "diagnostics": {
                k: (finite_or_none(v) if isinstance(v, float) else v)
                for k, v in self.diagnostics.items()
            },
        }


def json_published(attrs: Mapping[str, Any]) -> dict[str, float]:
    return {
        k[len("published_") :]: float(v) for k, v in attrs.items() if k.startswith("published_")
    }


def fit_library_population(
    data: LibraryCohortData,
    *,
    settings: LibraryFitSettings | None = None,
    random_seed: int = 0,
) -> LibraryPopulationFit:
    """Sample the popPK posterior of a cohort (see the module docstring) with nutpie."""
    import nutpie
    import xarray as xr

    settings = settings or LibraryFitSettings()
    started = time.perf_counter()
    model = build_library_population_model(data)
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    compiled_at = time.perf_counter()
    trace = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        seed=random_seed,
        target_accept=settings.target_accept,
        adaptation=settings.adaptation,
        progress_bar=False,
        save_warmup=False,
    )
    posterior, stats, timing = trace_result(trace, started, compiled_at, time.perf_counter())
    gated = [n for n in posterior.data_vars if n != "z" and not n.startswith("typical_")]
    gates = convergence(posterior, int(stats["diverging"].sum()), gated)
    decl = data.declaration
    observed = xr.Dataset(
        {"concentration": ("record", data.value_mg_l)},
    )
    constant = xr.Dataset(
        {
            "subject_index": ("record", data.subject),
            "time_day": ("record", data.time_day),
            "censoring": ("record", data.censoring),
            "subject_id": ("subject", np.array(data.ids, dtype=str)),
        }
    )
    omega_sd, sigma_published = _published(decl)
    published = {
        **{
            f"published_typical_{e.parameter}": decl.parameter(e.parameter).typical.estimate
            for e in decl.random_effects.effects
        },
        **{
            f"published_omega_sd_{name}": float(sd)
            for name, sd in zip(decl.random_effects.names, omega_sd, strict=True)
        },
        **{f"published_sigma_{k}": float(v) for k, v in sigma_published.items()},
    }
    tree = build_fit_tree(
        FIT_KIND,
        model={
            "model_name": decl.name,
            "model_label": decl.label,
            "model_path": str(decl.path or ""),
            "model_sha256": hashlib.sha256(Path(decl.path).read_bytes()).hexdigest()
            if decl.path
            else "",
            "model_variants": decl.variants,
        },
        random_seed=random_seed,
        sampler={
            "sampler": "nutpie",
            "draws": settings.draws,
            "tune": settings.tune,
            "chains": settings.chains,
            "target_accept": settings.target_accept,
            "adaptation": settings.adaptation,
        },
        attrs={
            "method": "popPK",
            "prior": f"typical: lognormal(published, {TYPICAL_PRIOR_LOG_SD}); omega, sigma: "
            f"halfnormal({SCALE_PRIOR_FACTOR:g} x published)",
            "n_subjects": data.n_subjects,
            "n_concentrations": int(data.time_day.size),
            **published,
        },
        diagnostics={**timing, **gates},
        posterior=posterior,
        sample_stats=stats,
        observed_data=observed,
        constant_data=constant,
    )
    return LibraryPopulationFit(tree)


def format_library_fit(summary: Mapping[str, Any]) -> str:
    """The posterior of each population parameter beside the published value."""
    d = summary["diagnostics"]
    rhat, ess = d.get("rhat_max"), d.get("ess_bulk_min")
    lines = [
        f"popPK fit of {summary['model']['name']}: {summary['n_subjects']} subjects, "
        f"{summary['n_concentrations']} concentrations",
        f"NUTS (nutpie): {d['divergences']} divergences, R-hat max "
        f"{'n/a' if rhat is None else f'{rhat:.3f}'} ({d['rhat_max_at']}), bulk ESS min "
        f"{'n/a' if ess is None else f'{ess:.0f}'} ({d['ess_bulk_min_at']}) over the population "
        f"parameters and every eta; {d['sampling_seconds']:.0f} s sampling, "
        f"{d['compile_seconds']:.0f} s compiling: {summary['status'].upper()}",
        f"  {'parameter':<34}{'mean':>10}{'95% CrI':>24}{'published':>12}",
    ]
    published = summary["published"]
    for name, stats in summary["parameters"].items():
        pub = published.get(name.replace("[", "_").replace("]", ""))
        interval = f"[{stats['q2.5']:.3g}, {stats['q97.5']:.3g}]"
        lines.append(
            f"  {name:<34}{stats['mean']:>10.3g}{interval:>24}"
            f"{'' if pub is None else f'{pub:.3g}':>12}"
        )
    return "\n".join(lines)
