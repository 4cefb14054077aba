"""Adapter: today's Niyigena-format model file (``[pk]``/``[tte]``) as a ModelDeclaration.

The file is read by :func:`asuc_bayes.spec.config.load_model` exactly as today (variants included),
and its :class:`~asuc_bayes.spec.config.ModelSpec` is translated: CL =
θ_CL·(WT/ref)^0.75·f(CRP)·e^η,
V = θ_V·(WT/ref)^1·e^η, f(CRP) in the ``power`` or ``log`` form, IIV from CV % by
ω² = ln(1 + CV²), proportional or log-normal residual error, the Weibull outcome model.

>>> from asuc_bayes.spec import load_declaration
>>> decl = load_declaration("niyigena2025", variants=["log_crp"])
>>> [e.form for e in decl.effects if e.covariate == "CRP"]
['log']
"""

from __future__ import annotations

from typing import Any

from asuc_bayes.spec.config import ModelSpec, load_model
from asuc_bayes.spec.config import Parameter as SpecParameter
from asuc_bayes.spec.declaration import (
    Covariate,
    CovariateEffect,
    ModelDeclaration,
    OutcomeModel,
    Parameter,
    RandomEffect,
    RandomEffects,
    ResidualError,
    Value,
    cv_percent_to_variance,
)
from asuc_bayes.spec.residual import ResidualForm, residual_form

__all__ = ["NIYIGENA_NAME", "declaration_from_spec", "legacy_residual", "load_legacy"]

NIYIGENA_NAME = "niyigena2025"
_CRP_FORMS = {"power": "power", "log_power": "log"}
_RESIDUAL = {"proportional": "proportional", "log_normal": "log_sd"}


def legacy_residual(form: str, sd: Any) -> tuple[ResidualForm, dict[str, Any]]:
    """The registered residual form of a legacy ``pk.residual_form`` and its SD mapping.

    ``sd`` (a number, an array or a PyTensor variable) is the proportional SD or the SD of
    ln y; the pair is what :func:`asuc_bayes.spec.residual.observation_log_likelihood` takes.

    Examples
    --------
    >>> form, sigma = legacy_residual("log_normal", 0.3)
    >>> form.name, sigma
    ('log_normal', {'log_sd': 0.3})
    """
    if form not in _RESIDUAL:
        raise ValueError(
            f"unknown residual form {form!r} (pk.residual_form: one of {', '.join(_RESIDUAL)})"
        )
    return residual_form(form), {_RESIDUAL[form]: sd}


def load_legacy(path: str, variants: tuple[str, ...], name: str) -> ModelDeclaration:
    """Load a legacy-format file with :func:`asuc_bayes.spec.config.load_model` and translate it."""
    return declaration_from_spec(load_model(path, variants=list(variants)), name=name)


def _value(p: SpecParameter, source: str) -> Value:
    return Value(
        estimate=p.estimate,
        unit=p.unit,
        source=source,
        fixed=p.fixed,
        rse_percent=p.rse_percent,
        bootstrap=p.bootstrap,
    )


#: The ASUC model's structural parameters and random effects, as its declaration names them
#: (the default engine's JSON uses the same names).
STRUCTURAL_PARAMETERS = ("CL", "V")
RANDOM_EFFECT_NAMES = tuple(f"eta_{name}" for name in STRUCTURAL_PARAMETERS)


def declaration_from_spec(spec: ModelSpec, name: str = NIYIGENA_NAME) -> ModelDeclaration:
    """The :class:`ModelDeclaration` of a legacy :class:`~asuc_bayes.spec.config.ModelSpec`."""
    pk = spec.pk
    source = spec.source
    weight_unit, crp_unit = "kg", "mg/L"
    effects = (
        CovariateEffect(
            "CL",
            "WT",
            "power",
            _value(pk.weight_exponent_cl, source),
            pk.reference_weight_kg,
            weight_unit,
        ),
        CovariateEffect(
            "CL",
            "CRP",
            _CRP_FORMS[pk.crp_form],
            _value(pk.crp_exponent_cl, source),
            pk.reference_crp_mg_l,
            crp_unit,
        ),
        CovariateEffect(
            "V",
            "WT",
            "power",
            _value(pk.weight_exponent_v, source),
            pk.reference_weight_kg,
            weight_unit,
        ),
    )
    random = []
    for parameter, iiv in zip(STRUCTURAL_PARAMETERS, (pk.iiv_cv_cl, pk.iiv_cv_v), strict=True):
        variance = cv_percent_to_variance(iiv.estimate)
        random.append(
            RandomEffect(
                f"eta_{parameter}",
                parameter,
                Value(variance, "1", source, note=f"from CV {iiv.estimate} %: ln(1 + CV^2)"),
                cv_percent=iiv.estimate,
            )
        )
    omega = ((random[0].variance.estimate, 0.0), (0.0, random[1].variance.estimate))
    residual_name = _RESIDUAL[pk.residual_form]
    tte = spec.tte
    outcome = OutcomeModel(
        form=tte.form,
        covariate="ln_auc_w2_4_over_cl",
        auc_window_day=tte.auc_window_day,
        horizon_day=tte.horizon_day,
        high_risk_threshold=tte.high_risk_threshold,
        x_ref=tte.x_ref,
        log10_lambda=_value(tte.log10_lambda, source),
        gamma=_value(tte.gamma, source),
        beta=_value(tte.beta, source),
        source=source,
        source_model=name,
    )
    return ModelDeclaration(
        name=name,
        title=spec.title,
        population="Adults with acute severe ulcerative colitis (ASUC), infliximab rescue therapy",
        source=source,
        structure="one_compartment",
        structural_parameters=STRUCTURAL_PARAMETERS,
        parameters=(
            Parameter("CL", _value(pk.theta_cl, source), "clearance"),
            Parameter("V", _value(pk.theta_v, source), "volume of distribution"),
        ),
        covariates=(
            Covariate("WT", weight_unit, "continuous", "body weight"),
            Covariate("CRP", crp_unit, "continuous", "C-reactive protein at baseline"),
        ),
        effects=effects,
        random_effects=RandomEffects(tuple(random), omega, reported_as="cv_percent"),
        residual=ResidualError(
            pk.residual_form,
            ((residual_name, _value(pk.residual_sd, source)),),
            reported_as="proportional error, SD 0.44 (Table 2); IIV as CV %",
        ),
        default_infusion_duration_day=pk.default_infusion_duration_day,
        outcome=outcome,
        path=spec.path,
        variants=spec.variants,
        available_variants=tuple(spec.available_variants.items()),
    )
