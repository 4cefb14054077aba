"""Broken model files: each error names the file, the key and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from asuc_bayes.spec import ModelFileError, load_declaration

VALID = """
[model]
name = "test2020"
population = "test"
source = "Test 2020, Table 1"
structure = "one_compartment"
structural_parameters = ["CL", "V"]
default_infusion_duration_day = 0.0833

[parameters.CL]
value = 0.3
unit = "L/day"
source = "Test 2020, Table 1"

[parameters.V]
value = 5.0
unit = "L"
source = "Test 2020, Table 1"

[covariates.ALB]
unit = "g/dL"
kind = "continuous"

[[effects]]
parameter = "CL"
covariate = "ALB"
form = "power"
reference = 4.0
unit = "g/dL"
theta = { value = -1.0, source = "Test 2020, Table 1" }

[random_effects]
parameters = ["CL", "V"]
reported_as = "variance"
values = [0.1, 0.05]
source = "Test 2020, Table 1"

[residual]
form = "proportional"
proportional = { value = 0.3, source = "Test 2020, Table 1" }

[variants.other]
description = "another albumin exponent"
"parameters.CL.value" = 0.4
"""


def _write(tmp_path, text):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    return path


def test_the_valid_file_loads_with_its_variant(tmp_path):
    path = _write(tmp_path, VALID)
    assert load_declaration(path).parameter("CL").typical.estimate == 0.3
    assert load_declaration(path, variants=["other"]).parameter("CL").typical.estimate == 0.4


BLOCK_OMEGA = VALID.replace("values = [0.1, 0.05]", "omega = [[0.1, 0.2], [0.2, 0.05]]")

CASES = {
    "unknown form": (
        VALID.replace('form = "power"', 'form = "sigmoid"'),
        "effects[0].form",
        "unknown covariate form 'sigmoid'",
    ),
    "unknown key": (
        VALID.replace('unit = "L/day"', 'units = "L/day"'),
        "parameters.CL.units",
        "unknown key",
    ),
    "unknown section": (VALID + "\n[outcomes]\nx = 1\n", "outcomes", "unknown key"),
    "missing source": (
        VALID.replace('value = 5.0\nunit = "L"\nsource = "Test 2020, Table 1"', "value = 5.0"),
        "parameters.V.source",
        "missing source",
    ),
    "omega not positive definite": (BLOCK_OMEGA, "random_effects", "not positive definite"),
    "unit not convertible": (
        VALID.replace('reference = 4.0\nunit = "g/dL"', 'reference = 4.0\nunit = "kg"'),
        "effects[0].unit",
        "cannot be converted",
    ),
    "unknown covariate unit": (
        VALID.replace('unit = "g/dL"\nkind', 'unit = "g/dl"\nkind'),
        "covariates.ALB.unit",
        "unknown unit",
    ),
    "unknown residual form": (
        VALID.replace('form = "proportional"', 'form = "exponential"'),
        "residual.form",
        "unknown residual form",
    ),
    "residual SD missing": (
        VALID.replace('form = "proportional"', 'form = "combined"'),
        "residual.additive",
        "missing",
    ),
    "unknown structure": (
        VALID.replace('structure = "one_compartment"', 'structure = "three_compartment"'),
        "model.structure",
        "unknown structure",
    ),
    "effect on an undeclared parameter": (
        VALID.replace('parameter = "CL"', 'parameter = "KA"'),
        "effects[0].parameter",
        "not a declared parameter",
    ),
    "undeclared covariate": (
        VALID.replace('covariate = "ALB"', 'covariate = "CRP"'),
        "effects[0].covariate",
        "not declared",
    ),
    "power without reference": (
        VALID.replace("reference = 4.0\n", ""),
        "effects[0]",
        "needs a reference",
    ),
    "parameter named like a reported quantity": (
        VALID + '\n[parameters.ln_auc_cl]\nvalue = 1.0\nsource = "Test 2020, Table 1"\n',
        "parameters.ln_auc_cl",
        "reserved",
    ),
    "derived parameter with the random-effect prefix": (
        VALID + '\n[derived.eta_CL]\nproduct_of = ["CL", "V"]\n',
        "derived.eta_CL",
        "reserved",
    ),
    "not a number": (
        VALID.replace("value = 0.3\n", 'value = "0.3"\n'),
        "parameters.CL.value",
        "must be a number",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_file_names_file_key_and_fix(tmp_path, case):
    text, key, problem = CASES[case]
    path = _write(tmp_path, text)
    with pytest.raises(ModelFileError) as info:
        load_declaration(path)
    message = str(info.value)
    assert str(path) in message and f": {key}: " in message and problem in message, message
    assert "; fix: " in message and info.value.fix
    assert info.value.file == str(path) and info.value.key == key


def test_unknown_variant_and_model(tmp_path):
    path = _write(tmp_path, VALID)
    with pytest.raises(ModelFileError, match=r"variants\.nope: unknown variant; fix: use one of"):
        load_declaration(path, variants=["nope"])
    with pytest.raises(ModelFileError, match=r"unknown model.*niyigena2025"):
        load_declaration("nosuchmodel1999")
    with pytest.raises(ModelFileError, match="not valid TOML"):
        load_declaration(_write(tmp_path, "[model\n"))


def test_block_omega_and_cv_percent(tmp_path):
    block = load_declaration(
        _write(
            tmp_path, VALID.replace("values = [0.1, 0.05]", "omega = [[0.1, 0.03], [0.03, 0.05]]")
        )
    )
    assert not block.random_effects.diagonal
    assert block.random_effects.matrix[0, 1] == 0.03
    cv = load_declaration(
        _write(
            tmp_path,
            VALID.replace(
                'reported_as = "variance"\nvalues = [0.1, 0.05]',
                'reported_as = "cv_percent"\nvalues = [40.0, 20.0]',
            ),
        )
    )
    np.testing.assert_allclose(np.diag(cv.random_effects.matrix), np.log1p([0.16, 0.04]))
    assert [e.cv_percent for e in cv.random_effects.effects] == [40.0, 20.0]


def test_ambiguous_reference_needs_an_explicit_imputation(tmp_path):
    from asuc_bayes.spec import MissingCovariateError, individual_parameters

    second = (
        '\n[[effects]]\nparameter = "V"\ncovariate = "ALB"\nform = "power"\nreference = 3.5\n'
        'theta = { value = 0.5, source = "Test 2020, Table 1" }\n'
    )
    text = VALID.replace("[random_effects]", second + "\n[random_effects]")
    decl = load_declaration(_write(tmp_path, text))
    with pytest.raises(MissingCovariateError, match="no single reference value"):
        individual_parameters(decl, {}, impute="reference")
    assert individual_parameters(decl, {}, impute={"ALB": 4.0})["CL"] == pytest.approx(0.3)


def test_reserved_names_are_the_quantities_every_forecast_reports():
    """The names a model file may not give a parameter are exactly those of the derived
    quantities beside the parameters (so a forecast never overwrites one with the other)."""
    from asuc_bayes.inference.derived import Derived
    from asuc_bayes.spec.declaration import RESERVED_PARAMETER_NAMES

    one = np.ones(2)
    derived = Derived({"CL": one}, one, one, one, one, one)
    assert set(derived.contract()) == set(RESERVED_PARAMETER_NAMES)
