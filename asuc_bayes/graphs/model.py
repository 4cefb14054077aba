"""PyMC model of one patient: random effects, individual PK, censored concentrations.

The model is declared once per model specification with named coords/dims and every
patient-specific input bound with ``pm.Data``; swapping a patient is ``pm.set_data`` (or
nutpie's ``with_data``), never a rebuild or a recompile.

Sampling geometry. With a proportional residual error, a low prediction f makes the
likelihood a wall: −(y/f)² grows like exp(exp(·)) in ln k = η_CL − η_V, and NUTS diverges
there (up to ~15 % divergent transitions measured with the plain non-centred form). The
sampler therefore moves in coordinates (a, b) with k/k_typ = softplus(a)/ln 2 and
V/V_typ = softplus(b)/ln 2 (see :func:`sampler_to_log_relative`), in which the wall is only
exponential, and these are *whitened*: (a, b) = m + L z, where ``m`` and ``L``
(``pm.Data``) are the mode and the Cholesky factor of the Laplace covariance of the
patient's posterior in (a, b). Every Jacobian is included, so the posterior of η is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import Patient
from asuc_bayes.graphs.numerics import reproducible_numba
from asuc_bayes.pk.kernels import NO_END_DAY, concentration, individual_pk_parameters
from asuc_bayes.spec.config import ModelSpec
from asuc_bayes.spec.legacy import legacy_residual
from asuc_bayes.spec.residual import observation_log_likelihood

__all__ = ["RANDOM_EFFECTS", "PatientData", "build_patient_model"]

# Imported when a model is built, not by the NumPy helpers the cached-density path uses.
pm = lazy_module("pymc")
pt = lazy_module("pytensor.tensor")

RANDOM_EFFECTS = ("cl", "v")


#: The per-dose arrays of the doses at steady state or cut by a reset (``special_*``).
SPECIAL_DOSE_NAMES = (
    "special_dose_time_day",
    "special_dose_amount_mg",
    "special_dose_duration_day",
    "special_dose_end_day",
    "special_dose_ss_interval_day",
)


@dataclass(frozen=True)
class PatientData:
    """Arrays bound to the model's ``pm.Data`` containers for one patient.

    The plain infusions are ``dose_*``; the doses at steady state (``SS``) or cut by a reset
    (``EVID`` 3/4) are bound apart, as ``special_dose_*`` with their end and interval
    (:func:`asuc_bayes.pk.kernels.concentration`). The graph superposes both, so a plain
    regimen (no special dose: empty arrays, which add exactly 0) costs nothing extra and its
    log density is unchanged bit for bit (measured; PyTensor's rewrites of the joint
    gradient graph change some gradient components by one ulp).

    Examples
    --------
    >>> from asuc_bayes.data.dataset import Dose, Patient
    >>> p = Patient("p", 70.0, 30.0, (Dose(0.0, 700.0, 1 / 12, end_time_day=20.0),
    ...                               Dose(20.0, 700.0, 1 / 12)))
    >>> data = PatientData.from_patient(p)
    >>> data.dose_time_day.tolist(), data.special_dose_time_day.tolist()
    ([20.0], [0.0])
    >>> data.special_dose_end_day.tolist(), data.special_dose_ss_interval_day.tolist()
    ([20.0], [0.0])
    """

    weight_kg: float
    crp_mg_l: float
    dose_time_day: np.ndarray
    dose_amount_mg: np.ndarray
    dose_duration_day: np.ndarray
    obs_time_day: np.ndarray
    obs_value_mg_l: np.ndarray
    #: censoring codes of :mod:`asuc_bayes.data.dataset` as floats (0 measured, 1 BLQ, −1 ALQ)
    obs_censoring: np.ndarray
    #: doses at steady state or cut by a reset: start, amount, duration, end of the effect
    #: (:data:`~asuc_bayes.pk.kernels.NO_END_DAY` if none) and interval II (0 if none)
    special_dose_time_day: np.ndarray = field(default_factory=lambda: np.zeros(0))
    special_dose_amount_mg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    special_dose_duration_day: np.ndarray = field(default_factory=lambda: np.zeros(0))
    special_dose_end_day: np.ndarray = field(default_factory=lambda: np.zeros(0))
    special_dose_ss_interval_day: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def from_patient(cls, patient: Patient) -> PatientData:
        """A BLQ record's value is its LLOQ, an ALQ one's its ULOQ (M3 censoring)."""
        end, interval = patient.dose_end_day, patient.dose_ss_interval_day
        special = (end < NO_END_DAY) | (interval > 0)
        plain = ~special
        return cls(
            weight_kg=float(patient.weight_kg),
            crp_mg_l=float(patient.crp_mg_l),
            dose_time_day=patient.dose_time_day[plain],
            dose_amount_mg=patient.dose_amount_mg[plain],
            dose_duration_day=patient.dose_duration_day[plain],
            obs_time_day=patient.obs_time_day,
            obs_value_mg_l=patient.obs_value_mg_l,
            obs_censoring=np.asarray(patient.obs_censoring, dtype=float),
            special_dose_time_day=patient.dose_time_day[special],
            special_dose_amount_mg=patient.dose_amount_mg[special],
            special_dose_duration_day=patient.dose_duration_day[special],
            special_dose_end_day=end[special],
            special_dose_ss_interval_day=interval[special],
        )

    @staticmethod
    def data_names() -> tuple[str, ...]:
        return (
            "weight_kg",
            "crp_mg_l",
            "dose_time_day",
            "dose_amount_mg",
            "dose_duration_day",
            "obs_time_day",
            "obs_value_mg_l",
            "obs_censoring",
            *SPECIAL_DOSE_NAMES,
        )

    def as_data(self) -> dict[str, np.ndarray]:
        """The values for ``pm.set_data`` / nutpie ``with_data``."""
        return {
            "weight_kg": np.asarray(self.weight_kg, dtype=float),
            "crp_mg_l": np.asarray(self.crp_mg_l, dtype=float),
            "dose_time_day": self.dose_time_day,
            "dose_amount_mg": self.dose_amount_mg,
            "dose_duration_day": self.dose_duration_day,
            "obs_time_day": self.obs_time_day,
            "obs_value_mg_l": self.obs_value_mg_l,
            "obs_censoring": self.obs_censoring,
            **{name: np.asarray(getattr(self, name), dtype=float) for name in SPECIAL_DOSE_NAMES},
        }

    @property
    def coords(self) -> dict[str, list[int]]:
        return {
            "dose": list(range(len(self.dose_time_day))),
            "obs": list(range(len(self.obs_time_day))),
        }


def sampler_to_log_relative(coordinates, xp=np):
    """Map sampler coordinates (a, b) to (ln k/k_typ, ln V/V_typ) and the log-Jacobian.

    k/k_typ = softplus(a)/ln 2 and V/V_typ = softplus(b)/ln 2: linear in the coordinate for
    large values (where a low prediction makes the proportional-error likelihood a steep
    wall) and logarithmic for small ones (where the log-normal prior rules). η_CL = ln k/k_typ
    + ln V/V_typ and η_V = ln V/V_typ; that last map has unit Jacobian.
    """
    softplus = xp.logaddexp(coordinates, 0.0) if xp is np else xp.softplus(coordinates)
    log_relative = xp.log(softplus) - np.log(np.log(2.0))
    # d/da ln softplus(a) = sigmoid(a) / softplus(a);  ln sigmoid(a) = -softplus(-a)
    minus = xp.logaddexp(-coordinates, 0.0) if xp is np else xp.softplus(-coordinates)
    log_jacobian = -minus - xp.log(softplus)
    return log_relative, log_jacobian


def log_relative_to_sampler(log_relative):
    """Inverse of :func:`sampler_to_log_relative` (NumPy): a = ln(expm1(ln2 · e^x))."""
    scaled = np.log(2.0) * np.exp(np.asarray(log_relative, dtype=float))
    return np.where(scaled > 30.0, scaled, np.log(np.expm1(np.minimum(scaled, 30.0))))


def omega_vector(spec: ModelSpec) -> np.ndarray:
    """SDs of (η_CL, η_V)."""
    return np.array([spec.pk.omega_cl, spec.pk.omega_v])


def build_patient_model(spec: ModelSpec, data: PatientData) -> pm.Model:
    """Declare the individual model for ``spec`` with ``data`` bound as ``pm.Data``.

    Named variables: the sampler's ``eta_whitened``, deterministic ``eta`` (dims
    ``random_effect``), ``cl`` and ``v``, the observed ``concentration`` (dims ``obs``) and
    the whitening data ``eta_shift`` and ``eta_chol``.
    """
    reproducible_numba()
    omega = omega_vector(spec)
    coords = {"random_effect": list(RANDOM_EFFECTS), **data.coords}
    with pm.Model(coords=coords) as model:
        bound = {
            name: pm.Data(name, value, dims=data_dims(name))
            for name, value in data.as_data().items()
        }
        shift = pm.Data("eta_shift", np.zeros(2), dims="random_effect")
        chol = pm.Data("eta_chol", np.diag(omega))
        # The sampler moves z; η = m + L z has the prior N(0, diag(ω²)) as a potential. The
        # Jacobian of the affine map is constant, so the posterior of η is exact.
        whitened = pm.Flat("eta_whitened", dims="random_effect")
        coordinates = shift + pt.dot(chol, whitened)
        log_relative, log_jacobian = sampler_to_log_relative(coordinates, xp=pt)
        eta = pm.Deterministic(
            "eta",
            pt.stack([log_relative[..., 0] + log_relative[..., 1], log_relative[..., 1]]),
            dims="random_effect",
        )
        pm.Potential("eta_prior", pm.logp(pm.Normal.dist(0.0, omega), eta).sum())
        pm.Potential("sampler_jacobian", log_jacobian.sum())
        cl, v = individual_parameters(spec, bound, eta)
        pm.Deterministic("cl", cl)
        pm.Deterministic("v", v)
        censored_concentrations(spec, bound, cl, v)
    return model


def censored_concentrations(spec: ModelSpec, bound, cl, v):
    """The observed ``concentration`` (dims ``obs``): the residual density of measured
    records and the M3 terms of censored ones (:func:`concentration_log_likelihood`)."""

    def logp(value, predicted, censoring):
        return concentration_log_likelihood(spec, value, censoring, predicted)

    return pm.CustomDist(
        "concentration",
        predicted_concentration(bound, cl, v),
        bound["obs_censoring"],
        logp=logp,
        observed=bound["obs_value_mg_l"],
        dims="obs",
    )


def individual_parameters(spec: ModelSpec, bound, eta):
    """(CL, V) graphs from the bound covariates and η = (η_CL, η_V)."""
    return individual_pk_parameters(
        spec.pk, bound["weight_kg"], bound["crp_mg_l"], eta[0], eta[1], xp=pt
    )


def predicted_concentration(bound, cl, v):
    """The predicted concentrations at the bound observation times (kernels' superposition):
    the plain infusions plus the doses at steady state or cut by a reset (:class:`PatientData`;
    none adds exactly 0)."""
    plain = concentration(
        bound["obs_time_day"],
        bound["dose_time_day"],
        bound["dose_amount_mg"],
        bound["dose_duration_day"],
        cl,
        v,
        xp=pt,
    )
    special = concentration(
        bound["obs_time_day"],
        *(bound[name] for name in SPECIAL_DOSE_NAMES[:3]),
        cl,
        v,
        xp=pt,
        dose_end_day=bound["special_dose_end_day"],
        dose_ss_interval_day=bound["special_dose_ss_interval_day"],
    )
    return plain + special


def concentration_log_likelihood(spec: ModelSpec, values, censoring, predicted):
    """Per-record log-likelihood (model card, section 1) as a graph: the registered residual
    form of ``spec`` (:func:`asuc_bayes.spec.residual.observation_log_likelihood`, which
    floors the predictions at ``PREDICTION_FLOOR_MG_L``)."""
    form, sigma = legacy_residual(spec.pk.residual_form, spec.pk.residual_sd.estimate)
    return observation_log_likelihood(form, values, censoring, predicted, sigma, xp=pt)


def eta_log_density(model: pm.Model, spec: ModelSpec, eta):
    """Unnormalised log posterior density of η (prior + censored likelihood) as a graph.

    Uses the model's bound data, so it follows ``pm.set_data``; it is the density whose
    mode is the MAP (NONMEM POSTHOC) estimate.
    """
    bound = {name: model[name] for name in PatientData.data_names()}
    cl, v = individual_parameters(spec, bound, eta)
    likelihood = concentration_log_likelihood(
        spec, bound["obs_value_mg_l"], bound["obs_censoring"], predicted_concentration(bound, cl, v)
    ).sum()
    prior = pm.logp(pm.Normal.dist(0.0, omega_vector(spec)), eta).sum()
    return likelihood + prior


def data_dims(name: str) -> str | None:
    if name.startswith("dose_"):
        return "dose"
    if name.startswith("obs_"):
        return "obs"
    return None
