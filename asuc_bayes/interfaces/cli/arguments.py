"""From parsed options to the public API's inputs: argparse types (day lists, model lists),
requests and settings built from the options, and the options a path does not take.

Only light imports at the top: each builder imports the class it makes.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from asuc_bayes.spec.config import load_model

if TYPE_CHECKING:  # pragma: no cover
    from asuc_bayes.decisions.dosing import DosingRequest, PlanOptions
    from asuc_bayes.inference import SamplerOptions
    from asuc_bayes.inference.forecast import SamplerSettings
    from asuc_bayes.inference.library_population import LibraryFitSettings
    from asuc_bayes.spec.config import ModelSpec
    from asuc_bayes.spec.declaration import ModelDeclaration

#: ``asuc_bayes.studies.comparison.SCENARIOS``'s names, sorted (written out so that parsing the
#: command line does not import the simulation study; tests/test_startup.py checks they agree).
SCENARIO_NAMES = ("blq", "day7", "no_sample", "trough_week2", "two_samples")


#: Most candidate days a day list may hold (START:END:STEP with a tiny step would be endless).
MAX_DAY_LIST = 1000


def day_list(text: str) -> list[float]:
    """``START:END[:STEP]`` (inclusive, step 1 by default) or ``D1,D2,...`` (days): finite
    numbers, at most :data:`MAX_DAY_LIST` days (each day's range:
    ``asuc_bayes.interfaces.options``)."""
    usage = f"expected days as START:END[:STEP] or D1,D2,... (finite numbers), got {text!r}"
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ValueError
            if not all(math.isfinite(p) for p in parts):
                raise ValueError
            start, end = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1.0
            count = int((end - start) / step + 1e-9) + 1
            if count > MAX_DAY_LIST:
                raise argparse.ArgumentTypeError(
                    f"{text!r} gives {count} days, more than {MAX_DAY_LIST} (fix: a larger STEP)"
                )
            days = [start + i * step for i in range(count)]
        else:
            days = [float(p) for p in text.split(",") if p.strip()]
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(usage) from None
    if not days or len(days) > MAX_DAY_LIST or not all(math.isfinite(d) for d in days):
        raise argparse.ArgumentTypeError(usage)
    return days


def model_list(text: str) -> tuple[str, ...]:
    """``--model-average A,B,C`` (argparse type: a bad list exits 2 naming the option)."""
    from asuc_bayes.decisions.model_average import ModelAverageError, parse_model_list

    try:
        return parse_model_list(text)
    except ModelAverageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--model-average: ")) from None


#: ``fit --method`` -> :func:`asuc_bayes.inference.population.fit_population`'s method.
FIT_METHODS = {"marginal": "marginal", "full": "joint", "two-stage": "two_stage"}


def fit_method(args: argparse.Namespace) -> str:
    """The :func:`asuc_bayes.inference.population.fit_population` method of ``--method`` and
    ``--two-stage`` (marginal by default; raises ``ValueError`` when they contradict)."""
    if args.two_stage and args.method not in (None, "two-stage"):
        raise ValueError(f"--two-stage contradicts --method {args.method} (give one of them)")
    return FIT_METHODS[args.method or ("two-stage" if args.two_stage else "marginal")]


def library_fit_settings(args: argparse.Namespace) -> LibraryFitSettings:
    """The NUTS settings of ``fit --model NAME`` (a library model): the options given, the
    defaults of :class:`asuc_bayes.inference.library_population.LibraryFitSettings` for the
    others (``fit`` leaves ``--draws``, ``--tune`` and ``--target-accept`` None when not
    given)."""
    from asuc_bayes.inference.library_population import LibraryFitSettings

    given = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "target_accept": args.target_accept,
        "adaptation": getattr(args, "adaptation", None),
    }
    return LibraryFitSettings(**{name: value for name, value in given.items() if value is not None})


def decision_request(args: argparse.Namespace) -> DosingRequest:
    """The dose decision of the decision options."""
    from asuc_bayes.decisions.dosing import DosingRequest

    return DosingRequest(
        target_risk=args.target_risk,
        criterion=args.criterion,
        probability=args.probability,
        dose_time_day=args.dose_time,
        vial_mg=args.vial_mg,
        max_mg_per_kg=args.max_mg_kg,
        min_mg_per_kg=args.min_mg_kg,
    )


def plan_options(args: argparse.Namespace) -> PlanOptions:
    """What ``optimize`` plans beyond the dose: timing, maintenance trough, next sample."""
    from asuc_bayes.decisions.dosing import PlanOptions

    return PlanOptions(
        timing_dose_mg=args.timing_dose_mg,
        timing_days=None if args.timing_days is None else tuple(args.timing_days),
        trough_target_mg_l=args.trough_target,
        trough_interval_day=args.interval_days,
        trough_dose_mg=args.trough_dose_mg,
        maintenance_doses=args.maintenance_doses,
        sample_days=None if args.sample_days is None else tuple(args.sample_days),
        next_sample=args.next_sample,
        n_simulations=args.n_simulations,
        lloq_mg_l=args.lloq,
        uloq_mg_l=args.uloq,
        turnaround_day=args.turnaround_days,
    )


def spec_and_settings(args: argparse.Namespace) -> tuple[ModelSpec, SamplerSettings]:
    """The model and sampler settings of the sampling options (raises on bad values)."""
    from asuc_bayes.inference.forecast import SamplerSettings

    spec = load_model(args.model, variants=args.variant)
    settings = SamplerSettings(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        sampler=args.sampler,
    )
    return spec, settings


def imputation(
    entries: list[str] | None, declaration: ModelDeclaration
) -> str | dict[str, float | str] | None:
    """The ``impute`` argument of the library API from ``--impute`` entries for
    ``declaration``: None (none given), ``"reference"`` (every missing covariate at the model's
    reference value) or ``{NAME: value or "reference"}`` (values in the model's unit).

    A name the model does not declare (a dataset column such as ADA names its covariate), a
    value that is not a number or one implausible in the model's unit (albumin 40 for a model
    in g/dL) is a :class:`ValueError` naming the entry and the fix.

    >>> from asuc_bayes.spec import load_declaration
    >>> model = load_declaration("wojciechowski2017")
    >>> imputation(["reference"], model), imputation(["ALB=4", "ADA=reference"], model)
    ('reference', {'ALB': 4.0, 'ADA': 'reference'})
    """
    from asuc_bayes.inference.covariates import implausible

    if not entries:
        return None
    if entries == ["reference"]:
        return "reference"
    names = {column: c.name for c in declaration.covariates for column in c.columns}
    chosen: dict[str, float | str] = {}
    for entry in entries:
        column, sep, value = entry.partition("=")
        column, value = column.strip().upper(), value.strip()
        if entry == "reference" or not sep or not column or not value:
            raise ValueError(
                f"--impute {entry}: give 'reference' alone, or NAME=VALUE / NAME=reference "
                "entries (e.g. --impute ALB=4 --impute ADA=0)"
            )
        if column not in names:
            raise ValueError(
                f"--impute {entry}: model {declaration.name} has no covariate {column} "
                f"(its covariates: {', '.join(c.name for c in declaration.covariates)})"
            )
        name = names[column]
        if value.lower() == "reference":
            chosen[name] = "reference"
            continue
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        unit = declaration.covariate(name).unit
        if not math.isfinite(number):
            raise ValueError(
                f"--impute {entry}: {value!r} is not a finite number (fix: NAME=VALUE in the "
                f"model's unit, here {unit}, or NAME=reference)"
            )
        problem = implausible(name, number, unit)
        if problem is not None:
            raise ValueError(
                f"--impute {entry}: {number:g} {unit} (the model's unit) is {problem} "
                f"(fix: give {name} in {unit})"
            )
        chosen[name] = number
    return chosen


def library_sampler_options(args: argparse.Namespace, adaptive: bool = False) -> SamplerOptions:
    """The sampling options of a library-model run (``adaptive``: no ``--draws`` means an
    adaptive run; otherwise 1000 draws per chain)."""
    from asuc_bayes.inference import SamplerOptions

    return SamplerOptions(
        chains=args.chains,
        draws=args.draws if adaptive else args.draws or 1000,
        tune=args.tune,
        target_accept=args.target_accept,
        sampler="imh" if args.sampler == "imh" else "nuts",
    )


def library_plan_inputs(args: argparse.Namespace):
    """(SamplerOptions, DosingRequest or None, PlanOptions or None) of a library-model run."""
    from asuc_bayes.decisions.dosing import PlanOptions

    options = library_sampler_options(args)
    if args.command != "optimize":
        return options, None, None
    plan = PlanOptions(
        trough_target_mg_l=args.trough_target,
        trough_interval_day=args.interval_days,
        trough_dose_mg=args.trough_dose_mg,
        maintenance_doses=args.maintenance_doses,
    )
    return options, decision_request(args), plan


#: Options of ``forecast`` that the library-model path does not take yet, and their defaults.
NOT_FOR_LIBRARY_MODELS = {
    "report": None,
    "workers": 1,
    "scheduler": None,
    "checkpoint": None,
    "sampler": "imh",
}


#: Options of ``optimize`` that library models and model averaging do not take yet.
NOT_FOR_LIBRARY_DOSING = {
    "out": None,
    "report": None,
    "timing_days": None,
    "timing_dose_mg": None,
    "next_sample": False,
    "sample_days": None,
}


def refused_option(
    args: argparse.Namespace, refused: dict[str, object], what: str, alternative: str = ""
) -> str | None:
    """The error for the first option of ``refused`` (option -> its default) given to a path
    (``what``) that does not take it, or None; ``alternative`` ends the fix."""
    for option, default in refused.items():
        if getattr(args, option, default) != default:
            flag = option.replace("_", "-")
            return f"--{flag}: not available yet with {what}; fix: leave --{flag} out{alternative}"
    return None


def refused_dosing_option(
    args: argparse.Namespace, what: str, *, takes_csv: bool = False, takes: tuple[str, ...] = ()
) -> str | None:
    """The error for an option the library-model dosing paths (``what``: a library model or
    model averaging; ``takes_csv``: whether it writes ``--format csv``; ``takes``: options of
    :data:`NOT_FOR_LIBRARY_DOSING` this path does take) do not take, or None."""
    refused = {**NOT_FOR_LIBRARY_MODELS, **NOT_FOR_LIBRARY_DOSING}
    for option in takes:
        refused.pop(option)
    message = refused_option(args, refused, what)
    if message is None and args.format == "csv" and not takes_csv:
        return f"--format csv: not available yet with {what}; fix: --format json or table"
    return message
