"""Settings and data of a population fit: the sampler settings, and a cohort as the padded
arrays the population model binds.

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> from asuc_bayes.studies.simulate import simulate_cohort
>>> cohort = simulate_cohort(load_model(), n=4, random_seed=1)
>>> data = CohortData.from_patients(cohort.patients)
>>> data.n_subjects, data.dose_time_day.shape[0]
(4, 4)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from asuc_bayes.data.dataset import (
    BELOW_LLOQ,
    DEFAULT_INFUSION_DURATION_DAY,
    MEASURED,
    Dose,
    EventRecord,
    Observation,
    Patient,
)
from asuc_bayes.pk.kernels import NO_END_DAY, auc_window_phases, dose_phase_times
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "METHODS",
    "OBSERVATION_COLUMNS",
    "SUBJECT_COLUMNS",
    "CohortData",
    "PopulationSettings",
    "default_settings",
    "or_zeros",
    "placeholder_cohort",
]

#: Fit methods: ``marginal`` (default), ``joint`` (full NUTS), ``two_stage``.
METHODS = ("marginal", "joint", "two_stage")
#: The method of a fit that names none: every η integrated out, so that NUTS samples only the
#: population parameters (the full model fails its gates narrowly on many cohorts; README).
DEFAULT_METHOD = "marginal"
#: Columns of the model's ``subject_data`` and ``obs_data`` containers.
SUBJECT_COLUMNS = ("weight_kg", "crp_mg_l", "centring_cl", "centring_v", "event_time_day", "event")
OBSERVATION_COLUMNS = ("value_mg_l", "measured")


@dataclass(frozen=True)
class PopulationSettings:
    """Sampler settings of a population fit (NUTS by nutpie or PyMC; for a marginal fit also
    independence Metropolis–Hastings, ``sampler="imh"``, the default)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    #: 0.995: no divergence in 18 fits of 13 simulated 72-subject cohorts, sampling 46–106 s;
    #: 0.99 left one in the same 18, 0.98 one in six, 0.95 3, 0, 2, 33, 1, 0 on six (README,
    #: "Population model", Measured)
    target_accept: float = 0.995
    cores: int | None = None
    #: "imh" (marginal fits only): independence Metropolis–Hastings from the Laplace
    #: approximation, NUTS (nutpie, these settings) when it is refused
    #: (:mod:`asuc_bayes.inference.population_marginal_imh`)
    sampler: Literal["nutpie", "pymc", "imh"] = "nutpie"
    #: nutpie's mass matrix: "diag" or "low_rank" (diagonal plus the leading directions of
    #: the draws' and gradients' covariance; nutpie only)
    adaptation: Literal["diag", "low_rank"] = "diag"

    def __post_init__(self):
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "tune" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.chains < 2:
            raise ValueError("chains must be at least 2 (R-hat needs them)")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")
        if self.sampler not in ("nutpie", "pymc", "imh"):
            raise ValueError(f"sampler must be 'nutpie', 'pymc' or 'imh', got {self.sampler!r}")
        if self.adaptation not in ("diag", "low_rank"):
            raise ValueError(f"adaptation must be 'diag' or 'low_rank', got {self.adaptation!r}")
        if self.adaptation != "diag" and self.sampler == "pymc":
            raise ValueError(
                "adaptation 'low_rank' needs the nutpie sampler: use sampler 'nutpie' or "
                "adaptation 'diag'"
            )


@dataclass(frozen=True, eq=False)
class CohortData:
    """A cohort as padded arrays: doses (subject, dose) padded with amount 0 (their times 0
    and durations the default infusion, so every duration stays > 0), observations flat
    with their subject index, one colectomy record per subject."""

    ids: tuple[str, ...]
    weight_kg: np.ndarray
    crp_mg_l: np.ndarray
    dose_time_day: np.ndarray
    dose_amount_mg: np.ndarray
    dose_duration_day: np.ndarray
    obs_subject: np.ndarray
    obs_time_day: np.ndarray
    obs_value_mg_l: np.ndarray
    obs_censoring: np.ndarray
    event_time_day: np.ndarray
    event: np.ndarray
    #: Centring weights w of the random effects (0 non-centred, 1 centred), per subject.
    centring_cl: np.ndarray | None = None
    centring_v: np.ndarray | None = None
    #: End of each dose's effect at a reset (EVID 3/4), (subject, dose); ``None``: no resets
    #: (:data:`~asuc_bayes.pk.kernels.NO_END_DAY` everywhere).
    dose_end_day: np.ndarray | None = None

    @property
    def dose_end(self) -> np.ndarray:
        """:attr:`dose_end_day`, with :data:`~asuc_bayes.pk.kernels.NO_END_DAY` where none."""
        if self.dose_end_day is None:
            return np.full(self.dose_time_day.shape, NO_END_DAY)
        return self.dose_end_day

    @property
    def n_subjects(self) -> int:
        return len(self.ids)

    @classmethod
    def from_patients(
        cls, patients, default_duration_day: float = DEFAULT_INFUSION_DURATION_DAY
    ) -> CohortData:
        """Arrays of validated patients, each with exactly one event record
        (:func:`asuc_bayes.data.dataset.validate_cohort`)."""
        patients = list(patients)
        if not patients:
            raise ValueError("a cohort needs at least one patient")
        for p in patients:
            if len(p.events) != 1:
                raise ValueError(
                    f"patient {p.id!r}: a population fit needs exactly one colectomy record "
                    "(read the data with asuc_bayes.data.dataset.read_cohort)"
                )
        _refuse_steady_state(patients)
        n_dose = max(len(p.doses) for p in patients)
        shape = (len(patients), n_dose)
        dose_time = np.zeros(shape)
        dose_amount = np.zeros(shape)
        dose_duration = np.full(shape, default_duration_day)
        dose_end = np.full(shape, NO_END_DAY)
        for i, p in enumerate(patients):
            k = len(p.doses)
            dose_time[i, :k] = p.dose_time_day
            dose_amount[i, :k] = p.dose_amount_mg
            dose_duration[i, :k] = p.dose_duration_day
            dose_end[i, :k] = p.dose_end_day
        obs_subject = np.concatenate(
            [np.full(len(p.observations), i, dtype=np.int64) for i, p in enumerate(patients)]
        )
        return cls(
            ids=tuple(p.id for p in patients),
            weight_kg=np.array([p.weight_kg for p in patients]),
            crp_mg_l=np.array([p.crp_mg_l for p in patients]),
            dose_time_day=dose_time,
            dose_amount_mg=dose_amount,
            dose_duration_day=dose_duration,
            obs_subject=obs_subject,
            obs_time_day=np.concatenate([p.obs_time_day for p in patients]),
            obs_value_mg_l=np.concatenate([p.obs_value_mg_l for p in patients]),
            obs_censoring=np.concatenate([p.obs_censoring for p in patients]).astype(float),
            event_time_day=np.array([p.events[0].time_day for p in patients]),
            event=np.array([float(p.events[0].event) for p in patients]),
            dose_end_day=dose_end if np.any(dose_end < NO_END_DAY) else None,
        )

    def model_data(self, auc_window_day: tuple[float, float]) -> dict[str, np.ndarray]:
        """Values of the population model's ``pm.Data`` containers.

        ``subject_data`` (subject, :data:`SUBJECT_COLUMNS`) and ``obs_data`` (observation,
        :data:`OBSERVATION_COLUMNS`) hold the per-subject and per-observation values; the
        concentrations and AUCs are sums over sparse (observation, dose) and (subject, dose)
        pairs. Only pairs that can contribute are kept: a real dose (amount > 0) started
        before the sample and not ended by a reset by then (``pair_index``: observation,
        subject; ``pair_phase``: time inside the infusion, after its end, rate), or before the
        end of the AUC window (``auc_subject``; ``auc_phase``: a0, a1, b0, b1, duration, rate,
        with the window cut at the dose's end, as :func:`asuc_bayes.pk.kernels.auc_interval`
        does). Every other pair
        contributes exactly 0 to :func:`asuc_bayes.pk.kernels.concentration` and
        :func:`asuc_bayes.pk.kernels.auc_interval`, so the sums are the same; the padded form
        spent ~2/3 of the gradient's time on those zeros (measured). The phases depend on
        the data only, so they are computed here once. Censored observations are listed
        (``obs_censored``) with the sign s of their M3 term log Φ(s·z) (+1 below the LLOQ,
        −1 above the ULOQ), so that the normal log-CDF is evaluated only for them. Few,
        packed containers: each one costs nutpie's compiled callback time per call and
        compile time (measured: 24 → 8 containers, gradient 81 → 62–68 µs, compile 37 → 18–26 s).
        """
        subject = self.obs_subject
        real = self.dose_amount_mg > 0
        dose_rate = self.dose_amount_mg / self.dose_duration_day
        started = real[subject] & (self.dose_time_day[subject] < self.obs_time_day[:, None])
        started &= self.obs_time_day[:, None] < self.dose_end[subject]
        pair_obs, pair_dose = np.nonzero(started)
        pair_subject = subject[pair_obs]
        during, after = dose_phase_times(
            self.obs_time_day[pair_obs, None],
            self.dose_time_day[pair_subject, pair_dose][:, None],
            self.dose_duration_day[pair_subject, pair_dose][:, None],
        )
        start_day, end_day = auc_window_day
        auc_subject, auc_dose = np.nonzero(real & (self.dose_time_day < end_day))
        duration = self.dose_duration_day[auc_subject, auc_dose]
        dose_end = np.minimum(end_day, self.dose_end[auc_subject, auc_dose])  # end_day if none
        a0, a1, b0, b1 = auc_window_phases(
            np.minimum(start_day, dose_end),
            dose_end,
            self.dose_time_day[auc_subject, auc_dose],
            duration,
        )
        censored = np.flatnonzero(self.obs_censoring != MEASURED)
        subject_columns = {
            "weight_kg": self.weight_kg,
            "crp_mg_l": self.crp_mg_l,
            "centring_cl": or_zeros(self.centring_cl, self.n_subjects),
            "centring_v": or_zeros(self.centring_v, self.n_subjects),
            "event_time_day": self.event_time_day,
            "event": self.event,
        }
        observation_columns = {
            "value_mg_l": self.obs_value_mg_l,
            "measured": (self.obs_censoring == MEASURED).astype(float),
        }
        return {
            "subject_data": np.stack([subject_columns[c] for c in SUBJECT_COLUMNS], axis=1),
            "obs_data": np.stack([observation_columns[c] for c in OBSERVATION_COLUMNS], axis=1),
            "obs_censored": censored,
            "obs_censored_sign": np.where(self.obs_censoring[censored] == BELOW_LLOQ, 1.0, -1.0),
            "pair_index": np.stack([pair_obs, pair_subject], axis=1),
            "pair_phase": np.stack(
                [during[:, 0, 0], after[:, 0, 0], dose_rate[pair_subject, pair_dose]], axis=1
            ),
            "auc_subject": auc_subject,
            "auc_phase": np.stack(
                [a0, a1, b0, b1, duration, dose_rate[auc_subject, auc_dose]], axis=1
            ).reshape(-1, 6),
        }

    def with_centring(self, spec: ModelSpec, n_points: int = 61) -> CohortData:
        """Centring weights from each subject's information about its η: w = 1 − posterior
        variance / prior variance, from the exact 2-D quadrature posterior (``grid.py``) at the
        model file's point estimates. Only the sampler's coordinates depend on w."""
        from asuc_bayes.inference.grid import grid_posterior

        weights = np.zeros((self.n_subjects, 2))
        omega2 = np.array([spec.pk.omega_cl, spec.pk.omega_v]) ** 2
        for i, patient in enumerate(self.patients()):
            if not patient.observations:
                continue
            posterior = grid_posterior(spec, patient, n_points=n_points, n_coarse=61)
            covariance = posterior.summary()["eta_cov"]
            weights[i] = np.clip(1.0 - np.diag(covariance) / omega2, 0.0, 1.0)
        return replace(self, centring_cl=weights[:, 0], centring_v=weights[:, 1])

    def patients(self) -> list[Patient]:
        """The cohort back as :class:`Patient` objects (padding removed)."""
        from asuc_bayes.data.dataset import Dose, EventRecord, Observation

        out = []
        for i, pid in enumerate(self.ids):
            keep = self.dose_amount_mg[i] > 0
            doses = tuple(
                Dose(float(t), float(a), float(d), end_time_day=None if e >= NO_END_DAY else e)
                for t, a, d, e in zip(
                    self.dose_time_day[i][keep],
                    self.dose_amount_mg[i][keep],
                    self.dose_duration_day[i][keep],
                    self.dose_end[i][keep].tolist(),
                    strict=True,
                )
            )
            mine = self.obs_subject == i
            observations = tuple(
                Observation(float(t), float(v), int(c))
                for t, v, c in zip(
                    self.obs_time_day[mine],
                    self.obs_value_mg_l[mine],
                    self.obs_censoring[mine],
                    strict=True,
                )
            )
            event = EventRecord(float(self.event_time_day[i]), int(self.event[i]))
            out.append(
                Patient(
                    pid,
                    float(self.weight_kg[i]),
                    float(self.crp_mg_l[i]),
                    doses,
                    observations,
                    (event,),
                )
            )
        return out


def or_zeros(values, n: int) -> np.ndarray:
    return np.zeros(n) if values is None else np.asarray(values, dtype=float)


def _refuse_steady_state(patients) -> None:
    """The population model's sparse graph superposes plain infusions (resets are cut in the
    data, :meth:`CohortData.model_data`): a steady-state dose is an error naming the row."""
    from asuc_bayes.data.errors import _error

    for p in patients:
        dose = next((d for d in p.doses if d.steady_state), None)
        if dose is not None:
            raise _error(
                p.id,
                dose.row,
                "SS",
                f"SS={dose.steady_state} (steady state) is not supported by the population fit",
                "write the doses out explicitly (one row per infusion, or ADDL/II), or forecast "
                "the patient alone",
            )


def default_settings(method: str = DEFAULT_METHOD, **overrides) -> PopulationSettings:
    """The sampler settings of a fit ``method`` (4 chains; the marginal model's ~10
    parameters 1000 draws per chain by independence Metropolis–Hastings from the Laplace
    approximation, 300 burn-in proposals, or, when that run is refused, by NUTS after 300
    tuning steps at target acceptance 0.8 with nutpie's low-rank mass matrix; the full model
    1000 + 1000 at 0.995 with a diagonal one), with ``overrides`` (``None`` values ignored).

    Examples
    --------
    >>> default_settings("marginal").tune, default_settings("joint", draws=200).draws
    (300, 200)
    >>> default_settings("marginal").sampler, default_settings("joint").sampler
    ('imh', 'nutpie')
    """
    base = {}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if method == "marginal":
        from asuc_bayes.inference.population_marginal import (
            MARGINAL_ADAPTATION,
            MARGINAL_DRAWS,
            MARGINAL_SAMPLER,
            MARGINAL_TARGET_ACCEPT,
            MARGINAL_TUNE,
        )

        base = {"draws": MARGINAL_DRAWS, "tune": MARGINAL_TUNE, "sampler": MARGINAL_SAMPLER}
        base["target_accept"] = MARGINAL_TARGET_ACCEPT
        if overrides.get("sampler", MARGINAL_SAMPLER) != "pymc":  # PyMC's NUTS: diagonal only
            base["adaptation"] = MARGINAL_ADAPTATION
    base.update(overrides)
    return PopulationSettings(**base)


def placeholder_cohort(n_subjects: int, duration_day: float) -> list[Patient]:
    """``n_subjects`` identical one-dose, one-sample patients without colectomy: data for
    compiling a population model ahead of time (its compiled form depends on the number of
    subjects, not on their records, which are bound later)."""
    return [
        Patient(
            f"S{i}",
            70.0,
            30.0,
            (Dose(0.0, 700.0, duration_day),),
            (Observation(7.0, 20.0),),
            events=(EventRecord(90.0, 0),),
        )
        for i in range(n_subjects)
    ]
