"""The patient model's log densities as disk-cached numba C callbacks (NUTS and MAP).

``nutpie.compile_pymc_model`` wraps the PyTensor log density in numba C callbacks that
close over per-process objects, so numba cannot cache them and every new process spends
~12–15 s compiling them. Here the same PyTensor graphs (``model.logp()`` of
:func:`asuc_bayes.graphs.model.build_patient_model` in the sampler's whitened coordinates, and
:func:`asuc_bayes.graphs.model.eta_log_density` for the MAP; nothing rewritten by hand) are compiled
by PyTensor's numba backend with every ``pm.Data`` container turned into an explicit input,
and called from C callbacks whose source is generated here and registered with PyTensor's
numba cache. The cache key covers the model specification, the source of the modules that
define the graphs and the library versions, so a later process loads both callbacks from
disk (~0.4 s) without building or compiling any graph.

Patient data reach a callback as one flat float64 buffer (nutpie's ``user_data``): the
counts of plain doses, observations and doses at steady state or cut by a reset, then the
scalar, 2-vector, 2×2 and per-record inputs in :data:`INPUT_LAYOUT` order. The sampler
draws the whitened coordinates ``z``; η follows in NumPy (:func:`eta_from_whitened`); the
expansion callback is a plain copy.
The MAP optimiser calls the η callback through ``ctypes`` (~µs per call).
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import inspect
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.core.caching import CacheImpl, _CacheLocator

from asuc_bayes._lazy import lazy_module
from asuc_bayes.graphs.model import (
    RANDOM_EFFECTS,
    SPECIAL_DOSE_NAMES,
    PatientData,
    sampler_to_log_relative,
)
from asuc_bayes.graphs.numerics import reproducible_numba

# Only a cache miss (compiling a graph) needs PyTensor and PyMC: a cache hit imports neither.
pytensor = lazy_module("pytensor")
pt = lazy_module("pytensor.tensor")

__all__ = [
    "EXPAND_SIGNATURE",
    "INPUT_LAYOUT",
    "LOGP_CALLBACK_TAIL",
    "LOGP_SIGNATURE",
    "CachedDensity",
    "NutpieCallbackSampler",
    "cache_dir",
    "callback_from_source",
    "eta_density",
    "eta_from_whitened",
    "pack_data",
    "sampler_density",
    "transform_adapter",
]

#: (data name, kind): the order of the flat data buffer after its three-entry header
#: (number of plain doses, of observations, of doses at steady state or cut by a reset).
#: Kinds: ``scalar``, ``vec2``, ``mat2``, ``dose`` (one value per plain dose), ``obs`` (one
#: value per observation) and ``special`` (one value per dose at steady state or cut by a
#: reset, :class:`asuc_bayes.graphs.model.PatientData`).
INPUT_LAYOUT: tuple[tuple[str, str], ...] = (
    ("weight_kg", "scalar"),
    ("crp_mg_l", "scalar"),
    ("eta_shift", "vec2"),
    ("eta_chol", "mat2"),
    ("dose_time_day", "dose"),
    ("dose_amount_mg", "dose"),
    ("dose_duration_day", "dose"),
    ("obs_time_day", "obs"),
    ("obs_value_mg_l", "obs"),
    ("obs_censoring", "obs"),
    *((name, "special") for name in SPECIAL_DOSE_NAMES),
)
_FIXED_SIZE = {"scalar": 1, "vec2": 2, "mat2": 4}
_SHAPE_SUFFIX = {"scalar": ".reshape(())", "vec2": "", "mat2": ".reshape((2, 2))"}
HEADER = 3
#: The header's count of each per-record kind.
_COUNTS = {"dose": "n_dose", "obs": "n_obs", "special": "n_special"}
#: Bump when the generated callback's source or the buffer layout changes meaning.
CALLBACK_VERSION = 4  # 2: censoring codes in the buffer; 3: compiled without fast-math;
# 4: doses at steady state or cut by a reset in the buffer (a third count in the header)


#: The last lines of a log density callback's source, after ``value, gradient = inner(...)``:
#: nutpie's return codes (0 ok, 1 an error, 3 a non-finite gradient, 4 a non-finite value).
LOGP_CALLBACK_TAIL = (
    "        logp[()] = value[()]",
    "        out[...] = gradient",
    "        if not np.all(np.isfinite(out)):",
    "            return 3",
    "        if not np.isfinite(value[()]):",
    "            return 4",
    "    except Exception:  # noqa: BLE001",
    "        return 1",
    "    return 0",
)


def _callback_source(function_name: str) -> str:
    """Source of a C callback ``function_name(dim, x, grad_out, logp_out, user_data)``."""
    lines = [
        f"def {function_name}(dim, x_, out_, logp_, user_data_):",
        "    if dim != 2:",
        "        return -1",
        "    try:",
        f"        header = numba.carray(user_data_, ({HEADER},), np.float64)",
        "        n_dose = int(header[0])",
        "        n_obs = int(header[1])",
        "        n_special = int(header[2])",
    ]
    fixed = sum(_FIXED_SIZE.get(kind, 0) for _, kind in INPUT_LAYOUT)
    per_record = " + ".join(
        f"{sum(k == kind for _, k in INPUT_LAYOUT)} * {count}" for kind, count in _COUNTS.items()
    )
    total = f"{HEADER + fixed} + {per_record}"
    lines.append(f"        buf = numba.carray(user_data_, ({total},), np.float64)")
    lines.append(f"        i0 = {HEADER}")
    arguments = []
    for index, (_, kind) in enumerate(INPUT_LAYOUT):
        size = _COUNTS.get(kind, str(_FIXED_SIZE.get(kind)))
        lines.append(f"        i{index + 1} = i{index} + {size}")
        arguments.append(f"buf[i{index}:i{index + 1}]{_SHAPE_SUFFIX.get(kind, '')}")
    lines += [
        "        x = numba.carray(x_, (2,))",
        "        out = numba.carray(out_, (2,))",
        "        logp = numba.carray(logp_, ())",
        f"        value, gradient = inner(x, {', '.join(arguments)})",
        *LOGP_CALLBACK_TAIL,
    ]
    return "\n".join(lines) + "\n"


def pack_data(data: dict[str, Any]) -> np.ndarray:
    """The flat buffer the callback reads: header, then :data:`INPUT_LAYOUT` order."""
    counts = {
        "dose": len(np.atleast_1d(data["dose_time_day"])),
        "obs": len(np.atleast_1d(data["obs_time_day"])),
        "special": len(np.atleast_1d(data["special_dose_time_day"])),
    }
    parts = [np.array(list(counts.values()), dtype=float)]
    for name, kind in INPUT_LAYOUT:
        values = np.asarray(data[name], dtype=float).ravel()
        expected = counts.get(kind, _FIXED_SIZE.get(kind))
        if values.size != expected:
            raise ValueError(f"{name}: expected {expected} values, got {values.size}")
        parts.append(values)
    return np.ascontiguousarray(np.concatenate(parts))


def eta_from_whitened(whitened: np.ndarray, shift: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """η = (ln k/k_typ + ln V/V_typ, ln V/V_typ) from whitened draws (..., 2), as the model."""
    coordinates = shift + np.asarray(whitened) @ np.asarray(chol).T
    log_relative, _ = sampler_to_log_relative(coordinates)
    return np.stack([log_relative[..., 0] + log_relative[..., 1], log_relative[..., 1]], axis=-1)


def _explicit_input_graph(model, value, logp):
    """``logp`` and its gradient w.r.t. ``value``, with every ``pm.Data`` container of
    ``model`` and every dimension length replaced by an explicit input."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import ancestors

    gradient = pt.grad(logp, value)
    inputs = {
        name: pt.tensor(name=name, dtype="float64", shape=(None,) * model[name].ndim)
        for name, _ in INPUT_LAYOUT
    }
    replacements = {model[name]: variable for name, variable in inputs.items()}
    replacements[model.dim_lengths["dose"]] = inputs["dose_time_day"].shape[0]
    replacements[model.dim_lengths["obs"]] = inputs["obs_time_day"].shape[0]
    replacements[model.dim_lengths["random_effect"]] = pt.constant(2, dtype="int64")
    left = [
        v.name
        for v in ancestors([logp, gradient])
        if isinstance(v, SharedVariable) and v not in replacements
    ]
    if left:
        raise RuntimeError(f"model data not bound to the callback's inputs: {left}")
    missing = set(PatientData.data_names()) - set(inputs)
    if missing:
        raise RuntimeError(f"INPUT_LAYOUT lacks model data {sorted(missing)}")
    logp, gradient = graph_replace([logp, gradient], replacements, strict=False)
    return [inputs[name] for name, _ in INPUT_LAYOUT], logp, gradient


def _graph_sources_digest() -> str:
    """Digest of the code that defines the density graphs and the callback: the kernels, the
    patient model, the residual forms (:mod:`asuc_bayes.spec.residual`, mapped from the model
    file by :mod:`asuc_bayes.spec.legacy`) and this module."""
    from asuc_bayes.graphs import model
    from asuc_bayes.pk import kernels
    from asuc_bayes.spec import legacy, residual

    digest = hashlib.sha256()
    for module in (kernels, model, residual, legacy, sys.modules[__name__]):
        digest.update(inspect.getsource(module).encode())
    for package in ("pytensor", "pymc", "numba", "numpy"):
        digest.update(version(package).encode())  # without importing PyTensor and PyMC
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where the compiled callbacks are cached: ``$ASUC_BAYES_CACHE_DIR/numba``; else, when
    numba's own cache is redirected, ``$NUMBA_CACHE_DIR/asuc_bayes``; else
    ``$XDG_CACHE_HOME/asuc_bayes/numba`` (default ``~/.cache/asuc_bayes/numba``)."""
    if root := os.environ.get("ASUC_BAYES_CACHE_DIR"):
        return Path(root) / "numba"
    if numba_cache := os.environ.get("NUMBA_CACHE_DIR"):
        return Path(numba_cache) / "asuc_bayes"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asuc_bayes" / "numba"


#: Callbacks generated from source, by function object: the cache key numba files them under.
_CALLBACK_KEYS: weakref.WeakKeyDictionary[Callable, str] = weakref.WeakKeyDictionary()


class _CallbackCacheLocator(_CacheLocator):
    """Numba cache locator of the generated callbacks: they have no source file, so numba's
    own locators cannot cache them; each is filed in :func:`cache_dir` under its cache key
    (the key covers everything the callback depends on, so no source stamp is needed)."""

    def __init__(self, py_func, key: str) -> None:
        self._py_func, self._key = py_func, key

    def ensure_cache_path(self) -> None:
        cache_dir().mkdir(parents=True, exist_ok=True)

    def get_cache_path(self) -> str:
        return str(cache_dir())

    def get_source_stamp(self) -> int:
        return 0

    def get_disambiguator(self) -> str:
        return self._key

    @classmethod
    def from_function(cls, py_func, py_file):
        key = _CALLBACK_KEYS.get(py_func)
        return None if key is None else cls(py_func, key)


if _CallbackCacheLocator not in CacheImpl._locator_classes:
    CacheImpl._locator_classes.insert(0, _CallbackCacheLocator)


def callback_from_source(source: str, function_name: str, environment: dict, cache_key: str):
    """The Python function defined by ``source``, registered for caching under ``cache_key``
    (what PyTensor's ``compile_numba_function_src`` does, without importing PyTensor)."""
    exec(compile(source, "<asuc_bayes callback>", "exec"), environment)
    function = environment[function_name]
    _CALLBACK_KEYS[function] = cache_key
    return function


#: nutpie's log density callback: (dim, x, gradient out, value out, user data) -> status.
LOGP_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)
#: nutpie's expansion callback: (dim, expanded, x, out, user data) -> status.
EXPAND_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)


class CachedDensity:
    """A 2-D log density of one patient model as a disk-cached numba C callback.

    The callback's cache key is derived from ``key`` (which must identify the model, e.g.
    the full ``repr`` of its specification), ``name``, the source of the modules that define
    the graph and the library versions. On a cache hit nothing is compiled and the PyTensor
    graph is not even built; on a miss ``build()`` gives the graph, PyTensor's numba
    backend compiles it and the callback is compiled and written to the cache.

    Parameters
    ----------
    model
        A function of no arguments returning the model of
        :func:`asuc_bayes.graphs.model.build_patient_model` (its ``pm.Data`` containers become the
        callback's data buffer); called on a cache miss only.
    name
        Identifier of the density (``"sampler"``, ``"eta"``), part of the cache key.
    key
        Text identifying everything else the graph depends on.
    build
        Returns ``(value, logp)``: the 2-vector input and the log density graph.
    """

    def __init__(self, model: Callable[[], Any], name: str, key: str, build: Callable):
        from numba.core.errors import TypingError

        function_name = f"asuc_{name}_logp"
        source = _callback_source(function_name)
        self.cache_key = hashlib.sha256(
            "|".join([name, key, source, str(CALLBACK_VERSION), _graph_sources_digest()]).encode()
        ).hexdigest()
        environment = {"inner": None, "np": np, "numba": numba, "__name__": __name__}
        callback = callback_from_source(source, function_name, environment, self.cache_key)
        try:  # a cache hit never looks at ``inner``
            self.cfunc = numba.cfunc(LOGP_SIGNATURE, cache=True)(callback)
        except TypingError:  # cache miss: compile the graph, then the callback
            reproducible_numba()
            value, logp = build()
            inputs, logp, gradient = _explicit_input_graph(model(), value, logp)
            function = pytensor.function(
                [value, *inputs], [logp, gradient], mode="NUMBA", on_unused_input="ignore"
            )
            environment["inner"] = function.vm.jit_fn
            with warnings.catch_warnings():
                # Uncacheable graph (dynamic globals): it still works, compiled per process.
                warnings.filterwarnings("ignore", message="Cannot cache compiled function")
                self.cfunc = numba.cfunc(LOGP_SIGNATURE, cache=True)(callback)
        self.loaded_from_cache = bool(self.cfunc.cache_hits)
        pointer = ctypes.c_void_p
        self._call = ctypes.CFUNCTYPE(
            ctypes.c_int64, ctypes.c_uint64, pointer, pointer, pointer, pointer
        )(self.cfunc.address)

    def evaluate(self, x: np.ndarray, buffer: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient at ``x`` for the packed data ``buffer`` (:func:`pack_data`);
        ``(-inf, 0)`` where the density cannot be evaluated."""
        x = np.ascontiguousarray(x, dtype=float)
        gradient = np.zeros(2)
        value = np.zeros(())
        status = self._call(
            2, x.ctypes.data, gradient.ctypes.data, value.ctypes.data, buffer.ctypes.data
        )
        if status != 0:
            return -np.inf, np.zeros(2)
        return float(value), gradient

    def log_density(self, x: np.ndarray, data: dict[str, Any]) -> tuple[float, np.ndarray]:
        """Value and gradient for unpacked ``data`` (raises if not finite; for tests)."""
        value, gradient = self.evaluate(x, pack_data(data))
        if not np.isfinite(value):
            raise FloatingPointError(f"log density not finite at {x}")
        return value, gradient

    def compiled_model(self, data: dict[str, Any]) -> CallbackModel:
        """A nutpie compiled model of this density with ``data`` (incl. whitening) bound."""
        return CallbackModel(dims={}, density=self, user_data=pack_data(data))


def sampler_density(model: Callable[[], Any], key: str) -> CachedDensity:
    """The density NUTS samples: ``model().logp()`` in the whitened coordinates
    (``model``: a function returning the PyMC model, called on a cache miss only)."""

    def build():
        built = model()
        return built.rvs_to_values[built["eta_whitened"]], built.logp()

    return CachedDensity(model, "sampler", key, build)


def eta_density(model: Callable[[], Any], spec, key: str) -> CachedDensity:
    """log p(η | data) up to a constant (prior + censored likelihood): the MAP's density
    (``model``: a function returning the PyMC model, called on a cache miss only)."""
    from asuc_bayes.graphs.model import eta_log_density

    def build():
        eta = pt.vector("eta_input")
        return eta, eta_log_density(model(), spec, eta)

    return CachedDensity(model, "eta", key, build)


def _initial_point(seed) -> np.ndarray:
    """Start of a chain in whitened coordinates: uniform(-1, 1), as PyMC's jitter."""
    return np.random.default_rng(int(seed)).uniform(-1.0, 1.0, 2)


_IDENTITY_EXPAND = None


def _identity_expand():
    """C callback copying the whitened point to the stored draw (η is derived afterwards)."""
    global _IDENTITY_EXPAND
    if _IDENTITY_EXPAND is None:

        @numba.cfunc(EXPAND_SIGNATURE, cache=True)
        def expand(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled
            if dim != 2 or expanded != 2:
                return -1
            x = numba.carray(x_, (2,))
            out = numba.carray(out_, (2,))
            out[...] = x
            return 0

        _IDENTITY_EXPAND = expand
    return _IDENTITY_EXPAND


class NutpieCallbackSampler:
    """nutpie's sampler over a compiled model's ``_make_model`` (its ``CompiledModel``
    protocol): the part every callback model shares."""

    def _make_sampler(
        self, settings, init_mean, cores, progress_type, extra_callback, extra_callback_rate, store
    ):
        from nutpie import _lib

        return _lib.PySampler.from_pymc(
            settings,
            cores,
            self._make_model(init_mean),
            progress_type,
            extra_callback,
            extra_callback_rate,
            store,
        )


def transform_adapter(*args, **kwargs):
    """nutpie's transform adapter without a log density function of its own."""
    from nutpie.transform_adapter import make_transform_adapter

    return make_transform_adapter()(*args, **kwargs, logp_fn=None)


@dataclass(frozen=True)
class CallbackModel(NutpieCallbackSampler):
    """A nutpie ``CompiledModel`` over :class:`CachedDensity` with one patient's buffer.

    Draws are stored as ``eta_whitened`` (dims ``random_effect``).
    """

    dims: dict
    density: CachedDensity
    user_data: np.ndarray
    reparameterized_names: list | None = None

    @property
    def n_dim(self) -> int:
        return 2

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {"eta_whitened": (2,)}

    @property
    def coords(self) -> dict:
        return {}

    def with_data(self, **data) -> CallbackModel:
        return dataclasses.replace(self, user_data=pack_data(data))

    def _make_model(self, init_mean):
        import pandas as pd
        from nutpie import _lib

        expand = _lib.ExpandFunc(2, 2, _identity_expand().address, self.user_data.ctypes.data, self)
        logp = _lib.LogpFunc(self.density.cfunc.address, self.user_data.ctypes.data, self)
        sizes = {"random_effect": 2}
        coords = {"random_effect": pd.Index(RANDOM_EFFECTS)}
        variables = _lib.PyVariable.new_variables(
            ["eta_whitened"], ["float64"], [(2,)], sizes, {"eta_whitened": ("random_effect",)}
        )

        return _lib.PyMcModel(
            logp, expand, variables, 2, sizes, coords, _initial_point, transform_adapter
        )
