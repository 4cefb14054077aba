"""The marginal model's log density and draw expansion as disk-cached numba C callbacks.

``nutpie.compile_pymc_model`` builds the marginal model's log density and gradient, rewrites
the graph, compiles it with PyTensor's numba backend and wraps it in C callbacks that close
over per-process objects, so numba cannot cache them: every new process spent 13–25 s on it
(measured on cohort 120001, README "Population model"). Here the functions nutpie itself
builds for the model (``nutpie.compile_pymc._make_functions``: the same graphs, rewrites and
numba code) are called from C callbacks whose source is generated here and registered with
numba's cache (:mod:`asuc_bayes.graphs.nutpie_density`), every ``pm.Data`` container read
from one flat buffer. Everything else nutpie needs (the names, shapes and dims of the stored
variables, the sampler's start) is written beside the callbacks. A later process loads both
callbacks and that file (:attr:`MarginalCallbacks.loaded_from_cache`) without building or
compiling any graph.

The buffer (nutpie's ``user_data``, :func:`pack_marginal_data`) holds a header (its length,
the sampler's dimension, the expansion's length, then rows and columns of every container in
:data:`MARGINAL_LAYOUT` order) and the containers' values one after the other, row by row;
integer containers hold their int64 bit patterns (read back by ``view``, not converted).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from asuc_bayes.graphs.numerics import reproducible_numba
from asuc_bayes.graphs.nutpie_density import (
    EXPAND_SIGNATURE,
    LOGP_CALLBACK_TAIL,
    LOGP_SIGNATURE,
    NutpieCallbackSampler,
    cache_dir,
    callback_from_source,
    transform_adapter,
)
from asuc_bayes.spec.config import ModelSpec, PopulationPriors

__all__ = [
    "MARGINAL_LAYOUT",
    "MarginalCallbackModel",
    "MarginalCallbacks",
    "pack_marginal_data",
]

#: (container, dtype, number of dimensions) of the marginal model's data, in buffer order:
#: :func:`asuc_bayes.inference.population_marginal._graph_data` of
#: :meth:`~asuc_bayes.inference.population_marginal.QuadratureRule.model_data`.
MARGINAL_LAYOUT: tuple[tuple[str, str, int], ...] = (
    ("subject_data", "float64", 2),
    ("node_start", "int64", 1),
    ("node_data", "float64", 2),
    ("node_axis", "int64", 2),
    ("axis_data", "float64", 2),
    ("axis_subject", "int64", 2),
    ("node_stats", "float64", 2),
    ("measured_node", "int64", 1),
    ("measured_data", "float64", 2),
    ("censored_node", "int64", 1),
    ("censored_data", "float64", 2),
    ("scaled_node", "int64", 1),
    ("scaled_censored", "float64", 1),
)
#: Buffer header: its length, the sampler's dimension, the expansion's length, then rows and
#: columns of each container.
HEADER = 3 + 2 * len(MARGINAL_LAYOUT)
#: Bump when the generated callbacks' source or the buffer layout changes meaning.
CALLBACK_VERSION = 1


def pack_marginal_data(values: dict[str, np.ndarray], n_dim: int, n_expanded: int) -> np.ndarray:
    """The flat buffer the callbacks read (module docstring) from the model's data
    ``values`` (:func:`~asuc_bayes.inference.population_marginal._graph_data`).

    Examples
    --------
    >>> from asuc_bayes.inference.population import CohortData
    >>> from asuc_bayes.inference.population_marginal import _graph_data, quadrature_rule
    >>> from asuc_bayes.spec.config import load_model
    >>> from asuc_bayes.studies.simulate import simulate_cohort
    >>> spec = load_model()
    >>> data = CohortData.from_patients(simulate_cohort(spec, 2, random_seed=1).patients)
    >>> values = _graph_data(quadrature_rule(spec, data, levels=(5,)).model_data(data))
    >>> buffer = pack_marginal_data(values, 9, 17)
    >>> int(buffer[0]) == len(buffer), buffer[1:3].tolist()
    (True, [9.0, 17.0])
    >>> node_axis = values["node_axis"]  # int64, read back bit for bit
    >>> start = HEADER + sum(values[k].size for k, _, _ in MARGINAL_LAYOUT[:3])
    >>> bool(np.array_equal(buffer[start : start + node_axis.size].view(np.int64),
    ...                     node_axis.ravel()))
    True
    """
    names = {name for name, _, _ in MARGINAL_LAYOUT}
    if set(values) != names:
        raise ValueError(
            f"marginal model data: expected containers {sorted(names)}, got {sorted(values)}"
        )
    shapes, parts = [], []
    for name, dtype, ndim in MARGINAL_LAYOUT:
        value = np.ascontiguousarray(values[name])
        if value.ndim != ndim or value.dtype != np.dtype(dtype):
            raise ValueError(
                f"marginal model data {name}: expected {ndim}-D {dtype}, "
                f"got {value.ndim}-D {value.dtype}"
            )
        shapes += [value.shape[0], value.shape[1] if ndim == 2 else 1]
        parts.append(value.ravel().view(np.float64))
    size = HEADER + sum(len(part) for part in parts)
    header = np.array([size, n_dim, n_expanded, *shapes], dtype=float)
    return np.ascontiguousarray(np.concatenate([header, *parts]))


def _unpack_lines() -> list[str]:
    """Source lines reading the containers ``a0`` … from ``user_data_`` (module docstring)."""
    lines = [
        f"        header = numba.carray(user_data_, ({HEADER},), np.float64)",
        "        buf = numba.carray(user_data_, (int(header[0]),), np.float64)",
        f"        i0 = {HEADER}",
    ]
    for k, (_, dtype, ndim) in enumerate(MARGINAL_LAYOUT):
        rows, columns = f"int(header[{3 + 2 * k}])", f"int(header[{4 + 2 * k}])"
        lines.append(f"        i{k + 1} = i{k} + {rows} * {columns}")
        read = f"buf[i{k}:i{k + 1}]"
        if dtype == "int64":
            read += ".view(np.int64)"
        if ndim == 2:
            read += f".reshape(({rows}, {columns}))"
        lines.append(f"        a{k} = {read}")
    return lines


def _arguments() -> str:
    return ", ".join(f"a{k}" for k in range(len(MARGINAL_LAYOUT)))


_DIM_CHECK = "dim != int(header[1])"


def _callback_head(signature: str, wrong_size: str, code: int) -> list[str]:
    """The opening lines every callback shares: its ``def``, the unpacking of the bound data,
    ``return code`` when ``wrong_size`` holds, and the point ``x`` as an array."""
    return [
        f"def {signature}:",
        "    try:",
        *_unpack_lines(),
        f"        if {wrong_size}:",
        f"            return {code}",
        "        x = numba.carray(x_, (dim,))",
    ]


def _logp_source(function_name: str) -> str:
    """Source of the log density callback ``function_name(dim, x, grad_out, logp_out,
    user_data)``: nutpie's return codes (0 ok, −1 wrong dimension, 1 error, 3/4 a non-finite
    gradient/value)."""
    lines = [
        *_callback_head(f"{function_name}(dim, x_, out_, logp_, user_data_)", _DIM_CHECK, -1),
        "        out = numba.carray(out_, (dim,))",
        "        logp = numba.carray(logp_, ())",
        f"        value, gradient = inner(x, {_arguments()})",
        *LOGP_CALLBACK_TAIL,
    ]
    return "\n".join(lines) + "\n"


def _value_source(function_name: str) -> str:
    """Source of the log-density-only callback, nutpie's log density signature with the
    gradient output left untouched: for samplers that need no gradient (the independence
    sampler of :mod:`asuc_bayes.inference.population_marginal_imh`): 1.3× cheaper than
    with the gradient on cohort 120001 (the value itself is most of the cost)."""
    lines = [
        *_callback_head(f"{function_name}(dim, x_, out_, logp_, user_data_)", _DIM_CHECK, -1),
        "        logp = numba.carray(logp_, ())",
        f"        (value,) = inner(x, {_arguments()})",
        "        logp[()] = value[()]",
        "        if not np.isfinite(value[()]):",
        "            return 4",
        "    except Exception:  # noqa: BLE001",
        "        return 1",
        "    return 0",
    ]
    return "\n".join(lines) + "\n"


def _expand_source(function_name: str) -> str:
    """Source of the expansion callback ``function_name(dim, expanded, x, out, user_data)``:
    the stored variables at the sampler's point (0 ok, −1 wrong sizes, −2 error)."""
    lines = [
        *_callback_head(
            f"{function_name}(dim, expanded, x_, out_, user_data_)",
            f"{_DIM_CHECK} or expanded != int(header[2])",
            -1,
        ),
        "        out = numba.carray(out_, (expanded,))",
        f"        (values,) = inner(x, {_arguments()})",
        "        out[...] = values",
        "    except Exception:  # noqa: BLE001",
        "        return -2",
        "    return 0",
    ]
    return "\n".join(lines) + "\n"


def _sources_digest() -> str:
    """Digest of the code the marginal model's graph comes from and of the library versions."""
    from asuc_bayes.graphs import censored_ops, segment_ops
    from asuc_bayes.inference import population_marginal
    from asuc_bayes.inference.population import model
    from asuc_bayes.pk import kernels, weibull
    from asuc_bayes.spec import legacy, residual

    digest = hashlib.sha256()
    modules = (
        population_marginal,
        model,
        kernels,
        weibull,
        residual,
        legacy,
        censored_ops,
        segment_ops,
        sys.modules[__name__],
    )
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    for package in ("pytensor", "pymc", "numba", "numpy", "nutpie"):
        digest.update(version(package).encode())
    return digest.hexdigest()


def _reordered(jit_function, order: list[int]):
    """A numba function of (x, a0, …) in :data:`MARGINAL_LAYOUT` order calling
    ``jit_function`` with the containers in ``order`` (its own input order)."""
    import numba

    source = (
        f"def reordered(x, {_arguments()}):\n"
        f"    return jit_function(x, {', '.join(f'a{k}' for k in order)})\n"
    )
    environment = {"jit_function": jit_function}
    exec(compile(source, "<asuc_bayes marginal reorder>", "exec"), environment)
    return numba.njit(environment["reordered"])


@dataclass(frozen=True)
class _Metadata:
    """What nutpie needs besides the callbacks: the sampler's dimension, the expansion's
    length, the stored variables (names, flat slices, shapes, dims), the coordinates and the
    sampler's start before jitter (unconstrained)."""

    n_dim: int
    n_expanded: int
    names: list[str]
    slices: list[list[int]]
    shapes: list[list[int]]
    dims: dict[str, list[str]]
    coords: dict[str, list]
    reparameterized_names: list[str]
    start: list[float]


class MarginalCallbacks:
    """The marginal model of ``spec`` and ``priors`` as disk-cached C callbacks (log density
    with gradient, and the expansion to the stored variables).

    On a cache hit nothing is built or compiled; on a miss the model is built
    (:func:`~asuc_bayes.inference.population_marginal.build_marginal_model` on ``values``,
    any data of the model's layout), nutpie's own functions for it are compiled, and the
    callbacks and their metadata are written to :func:`~asuc_bayes.graphs.nutpie_density.cache_dir`.
    """

    def __init__(self, spec: ModelSpec, priors: PopulationPriors, values: dict, initial: dict):
        import numba
        from numba.core.errors import TypingError

        names = {
            "logp": "asuc_marginal_logp",
            "value": "asuc_marginal_value",
            "expand": "asuc_marginal_expand",
        }
        sources = {
            "logp": _logp_source(names["logp"]),
            "value": _value_source(names["value"]),
            "expand": _expand_source(names["expand"]),
        }
        self.cache_key = hashlib.sha256(
            "|".join(
                [
                    "marginal",
                    repr(spec),
                    repr(priors),
                    repr(sorted(initial.items())),
                    *sources.values(),
                    str(CALLBACK_VERSION),
                    _sources_digest(),
                ]
            ).encode()
        ).hexdigest()
        metadata_path = cache_dir() / f"marginal-{self.cache_key}.json"
        environments = {
            kind: {"inner": None, "np": np, "numba": numba, "__name__": __name__} for kind in names
        }
        callbacks = {
            kind: callback_from_source(
                sources[kind], names[kind], environments[kind], f"{self.cache_key}-{kind}"
            )
            for kind in names
        }
        signatures = {"logp": LOGP_SIGNATURE, "value": LOGP_SIGNATURE, "expand": EXPAND_SIGNATURE}
        self.metadata = _read_metadata(metadata_path)

        def compile_callbacks():
            compiled = {
                kind: numba.cfunc(signatures[kind], cache=True)(callbacks[kind]) for kind in names
            }
            return compiled["logp"], compiled["value"], compiled["expand"]

        if self.metadata is not None:
            try:  # a cache hit never looks at ``inner`` (None here)
                self.logp, self.value, self.expand = compile_callbacks()
            except TypingError:  # not in numba's cache
                self.metadata = None
        if self.metadata is None:  # a miss: build and compile, then write the cache
            inner, self.metadata = _build(spec, priors, values, initial)
            for kind in names:
                environments[kind]["inner"] = inner[kind]
            with warnings.catch_warnings():
                # An uncacheable graph or cache directory: it still works, compiled per process.
                warnings.filterwarnings("ignore", message="Cannot cache compiled function")
                self.logp, self.value, self.expand = compile_callbacks()
            _write_json(metadata_path, dataclasses.asdict(self.metadata))
        self.loaded_from_cache = all(
            bool(callback.cache_hits) for callback in (self.logp, self.value, self.expand)
        )

    def model(self, values: dict) -> MarginalCallbackModel:
        """A nutpie compiled model of these callbacks with the data ``values`` bound."""
        meta = self.metadata
        dims = {name: tuple(d) for name, d in meta.dims.items()}
        return MarginalCallbackModel(
            dims=dims,
            callbacks=self,
            user_data=pack_marginal_data(values, meta.n_dim, meta.n_expanded),
            reparameterized_names=list(meta.reparameterized_names),
        )


def _read_metadata(path) -> _Metadata | None:
    """The metadata written beside the callbacks; ``None`` if absent or unreadable (a miss)."""
    try:
        return _Metadata(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_json(path, content: dict) -> None:
    """Write ``content`` to ``path`` atomically (another process may read it meanwhile); a
    cache directory that cannot be written only means the next process compiles again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump(content, f)
        os.chmod(f.name, 0o644)
        os.replace(f.name, path)
    except OSError:
        pass


def _build(spec, priors, values: dict, initial: dict):
    """On a cache miss: nutpie's own log density and expansion functions of the marginal
    model (numba), reordered to :data:`MARGINAL_LAYOUT`, and the metadata."""
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from pymc.initial_point import make_initial_point_fn

    from asuc_bayes.inference.population_marginal import build_marginal_model

    reproducible_numba()
    model = build_marginal_model(spec, priors, values)
    initial_point = make_initial_point_fn(
        model=model, overrides=initial, jitter_rvs=set(), return_transformed=True
    )
    functions = [
        _make_functions(
            model,
            mode="NUMBA",
            compute_grad=gradient,
            join_expanded=True,
            pymc_initial_point_fn=initial_point,
        )
        for gradient in (True, False)
    ]
    n_dim, n_expanded, logp_pt, expand_pt, start, shape_info, reparameterized = functions[0]
    value_pt = functions[1][2]
    position = {name: k for k, (name, _, _) in enumerate(MARGINAL_LAYOUT)}
    inner = {}
    for kind, function in (("logp", logp_pt), ("value", value_pt), ("expand", expand_pt)):
        shared = [variable.name for variable in function.get_shared()]
        unknown = set(shared) - set(position)
        if unknown:
            raise RuntimeError(f"marginal model data outside MARGINAL_LAYOUT: {sorted(unknown)}")
        inner[kind] = _reordered(function.vm.jit_fn, [position[name] for name in shared])
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    names, slices, shapes = shape_info
    metadata = _Metadata(
        n_dim=int(n_dim),
        n_expanded=int(n_expanded),
        names=list(names),
        slices=[[s.start, s.stop] for s in slices],
        shapes=[list(map(int, shape)) for shape in shapes],
        dims={name: list(d) for name, d in dims.items()},
        coords={name: [_plain(v) for v in index] for name, index in coords.items()},
        reparameterized_names=list(reparameterized),
        start=[float(v) for v in start(0)],
    )
    return inner, metadata


def _plain(value):
    """A coordinate value as JSON keeps it (NumPy scalars to Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class MarginalCallbackModel(NutpieCallbackSampler):
    """A nutpie ``CompiledModel`` over :class:`MarginalCallbacks` with one cohort's buffer;
    the sampler starts at the model's start plus a uniform ±``INIT_JITTER`` in every
    unconstrained coordinate, from the seed's own generator (as
    :func:`~asuc_bayes.inference.population.model.compile_jittered`)."""

    dims: dict
    callbacks: MarginalCallbacks
    user_data: np.ndarray
    reparameterized_names: list | None = None

    @property
    def n_dim(self) -> int:
        return self.callbacks.metadata.n_dim

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        meta = self.callbacks.metadata
        return {name: tuple(shape) for name, shape in zip(meta.names, meta.shapes, strict=True)}

    @property
    def coords(self) -> dict:
        return dict(self.callbacks.metadata.coords)

    def with_data(self, **values) -> MarginalCallbackModel:
        meta = self.callbacks.metadata
        buffer = pack_marginal_data(values, meta.n_dim, meta.n_expanded)
        return dataclasses.replace(self, user_data=buffer)

    def initial_point(self, seed) -> np.ndarray:
        """The sampler's start for ``seed`` (unconstrained, flat)."""
        from asuc_bayes.inference.population.model import INIT_JITTER

        start = np.asarray(self.callbacks.metadata.start, dtype=float)
        jitter = np.random.default_rng(seed).uniform(-INIT_JITTER, INIT_JITTER, start.shape)
        return start + jitter

    def log_density(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient of the log density at the unconstrained point ``x`` (nutpie's
        coordinates), through the C callback; ``(-inf, 0)`` where it cannot be evaluated."""
        value, gradient = self._call(self.callbacks.logp.address, x)
        return value, gradient if np.isfinite(value) else np.zeros(self.n_dim)

    def log_density_value(self, x: np.ndarray) -> float:
        """The log density alone at ``x`` (the value callback: no gradient computed);
        ``-inf`` where it cannot be evaluated."""
        return self._call(self.callbacks.value.address, x)[0]

    def _call(self, address: int, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(value, gradient buffer) of a callback of nutpie's log density signature at
        ``x``; the value ``-inf`` on a non-zero status."""
        import ctypes

        x = np.ascontiguousarray(x, dtype=float)
        gradient, value = np.zeros(self.n_dim), np.zeros(())
        pointer = ctypes.c_void_p
        call = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, pointer, pointer, pointer, pointer)
        status = call(address)(
            self.n_dim,
            x.ctypes.data,
            gradient.ctypes.data,
            value.ctypes.data,
            self.user_data.ctypes.data,
        )
        return (float(value) if status == 0 else -np.inf), gradient

    def expanded(self, x: np.ndarray) -> np.ndarray:
        """The stored variables at the unconstrained point ``x``, through the C callback."""
        import ctypes

        x = np.ascontiguousarray(x, dtype=float)
        meta = self.callbacks.metadata
        out = np.zeros(meta.n_expanded)
        pointer = ctypes.c_void_p
        call = ctypes.CFUNCTYPE(
            ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, pointer, pointer, pointer
        )
        status = call(self.callbacks.expand.address)(
            meta.n_dim, meta.n_expanded, x.ctypes.data, out.ctypes.data, self.user_data.ctypes.data
        )
        if status != 0:
            raise FloatingPointError(f"expansion failed (status {status}) at {x}")
        return out

    def _make_model(self, init_mean):
        import pandas as pd
        from nutpie import _lib

        meta = self.callbacks.metadata
        expand = _lib.ExpandFunc(
            meta.n_dim,
            meta.n_expanded,
            self.callbacks.expand.address,
            self.user_data.ctypes.data,
            self,
        )
        logp = _lib.LogpFunc(self.callbacks.logp.address, self.user_data.ctypes.data, self)
        coords = {name: pd.Index(values) for name, values in meta.coords.items()}
        sizes = {name: len(values) for name, values in coords.items()}
        variables = _lib.PyVariable.new_variables(
            list(meta.names),
            ["float64"] * len(meta.names),
            [list(shape) for shape in meta.shapes],
            sizes,
            dict(self.dims),
        )

        return _lib.PyMcModel(
            logp,
            expand,
            variables,
            meta.n_dim,
            sizes,
            coords,
            self.initial_point,
            transform_adapter,
        )
