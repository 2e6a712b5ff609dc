"""Scale-out with ``jax.sharding``: data-parallel minibatches, replicated or row-sharded tables.

A 2-D device mesh has a ``data`` axis and a ``model`` axis. ``fit(..., mesh=)``
places

* the training ratings, as the grid of rows that the epoch draws one rating
  per row from for each minibatch (:func:`mfjax.solvers.minibatch.layout.build_grid`), split by
  rows over ``data``: each step's minibatch is spread over the data axis;
* the factor tables, their biases and the optimizer state either replicated
  (every device holds all rows) or row-sharded over ``model`` (each device
  holds 1/M of the rows, padded with unused zero rows to a multiple of M).

The jitted epoch is the same code as on one device: XLA's SPMD partitioner
inserts the all-reduces that sum the per-device gradients. Across hosts,
``jax.distributed.initialize`` joins the processes into one runtime, and each
process places only its own rows of the grid on its devices.

Memory per device, with n = n_users + n_items, rank k, 4-byte floats and Adam
(parameters, gradient and two moments: 4 copies of every table):

    tables ≈ 4 · 4 B · n · (k + 1) / M          ratings ≈ 12 B · N / D

for a ``D x M`` mesh and N ratings (int32 user, int32 item, float32 rating).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .objectives.explicit import Params

__all__ = ["make_mesh", "resolve_mesh", "table_bytes", "initialize", "Placement"]

DATA, MODEL = "data", "model"
# Share of one device's memory that the tables may take before "auto" shards them.
_AUTO_SHARD_FRACTION = 0.25


def make_mesh(data: int | None = None, model: int = 1, devices=None) -> Mesh:
    """A ``data x model`` mesh over ``devices`` (default: all devices, all processes).

    Args:
        data: size of the data-parallel axis; ``None`` = all remaining devices.
        model: size of the table-sharding axis.
        devices: the devices to use, in order.
    """
    devices = list(jax.devices() if devices is None else devices)
    if data is None:
        data = len(devices) // model
    if data < 1 or model < 1 or data * model != len(devices):
        raise ValueError(f"a {data} x {model} mesh needs {data * model} devices; "
                         f"{len(devices)} are given (pass devices=jax.devices()[:{data * model}] "
                         "to use some of them)" if data >= 1 and model >= 1 else
                         f"a {data} x {model} mesh: both sizes must be >= 1")
    axis_types = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh((data, model), (DATA, MODEL), devices=devices, axis_types=axis_types)


def table_bytes(n_users: int, n_items: int, rank: int, copies: int = 4, itemsize: int = 4) -> int:
    """Bytes of the tables: parameters plus gradient and optimizer moments (``copies``)."""
    return copies * itemsize * (n_users + n_items) * (rank + 1)


def _device_memory(device) -> int:
    """Bytes of memory on ``device``; for CPU devices, the host's share."""
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return host // max(1, len(jax.local_devices()))


def resolve_mesh(mesh, n_users: int, n_items: int, rank: int) -> Mesh | None:
    """Turn ``fit``'s ``mesh=`` argument into a Mesh (or None for single-device).

    ``"auto"`` uses every device: a pure data-parallel mesh while the tables
    fit comfortably in one device (a quarter of its memory), otherwise the
    smallest power-of-two ``model`` axis that makes 1/M of them fit.
    """
    if mesh is None or isinstance(mesh, Mesh):
        if isinstance(mesh, Mesh) and set(mesh.axis_names) != {DATA, MODEL}:
            raise ValueError(f"fit needs a mesh with axes ('data', 'model'), got {mesh.axis_names}; "
                             "build one with mfjax.distributed.make_mesh")
        return mesh
    if mesh != "auto":
        raise ValueError(f"mesh must be None, 'auto' or a jax.sharding.Mesh, got {mesh!r}; "
                         "build one with mfjax.distributed.make_mesh(data, model)")
    devices = jax.devices()
    budget = _AUTO_SHARD_FRACTION * _device_memory(devices[0])
    model = 1
    while model < len(devices) and table_bytes(n_users, n_items, rank) / model > budget:
        model *= 2
    while len(devices) % model:
        model //= 2
    return make_mesh(len(devices) // model, model, devices)


class Placement:
    """How one training run lays its arrays out on a mesh.

    Args:
        mesh: the ``data x model`` mesh.
        n_users, n_items: the unpadded table sizes.
        shard_tables: row-shard the tables over ``model`` (else replicate them).
    """

    def __init__(self, mesh: Mesh, n_users: int, n_items: int, shard_tables: bool):
        self.mesh = mesh
        self.n_users, self.n_items = n_users, n_items
        self.shard_tables = shard_tables
        m = mesh.shape[MODEL] if shard_tables else 1
        self.padded_users = -(-n_users // m) * m
        self.padded_items = -(-n_items // m) * m
        self._replicated = NamedSharding(mesh, P())
        self._data = NamedSharding(mesh, P(DATA))

    @property
    def data_size(self) -> int:
        return self.mesh.shape[DATA]

    def leaf_sharding(self, x) -> NamedSharding:
        """Arrays whose leading axis is a table's rows (factors, biases and their
        optimizer moments, with or without a member axis) follow the rows; the
        rest (global bias, step counts) is replicated."""
        if x.ndim and x.shape[0] in (self.padded_users, self.padded_items) and self.shard_tables:
            return NamedSharding(self.mesh, P(MODEL, *([None] * (x.ndim - 1))))
        return self._replicated

    def pad_params(self, params: Params) -> Params:
        """Pad tables with zero rows to a multiple of the model axis (never indexed)."""
        du, di = self.padded_users - self.n_users, self.padded_items - self.n_items
        pad = lambda x, d: jnp.pad(x, [(0, d)] + [(0, 0)] * (x.ndim - 1))
        return Params(pad(params.user_factors, du), pad(params.item_factors, di),
                      pad(params.user_bias, du), pad(params.item_bias, di), params.global_bias)

    def unpad_params(self, params: Params) -> Params:
        nu, ni = self.n_users, self.n_items
        return Params(params.user_factors[:nu], params.item_factors[:ni], params.user_bias[:nu],
                      params.item_bias[:ni], params.global_bias)

    def put_tree(self, tree):
        """Place a pytree of (host-identical) arrays by :meth:`leaf_sharding`."""
        return jax.tree.map(lambda x: put_global(np.asarray(x), self.leaf_sharding(x)), tree)

    def put_data(self, x: np.ndarray):
        """Place a 1-D array of the training grid split over ``data``: each
        process transfers only the part its own devices hold."""
        return put_global(np.asarray(x), self._data)

    def put_replicated(self, x: np.ndarray):
        return put_global(np.asarray(x), self._replicated)


def put_global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a host array that every process holds in full.

    Each process copies only the slices its addressable devices own, so this
    works unchanged on one host or many.
    """
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def to_host(tree):
    """Fetch a pytree of (possibly multi-host) global arrays as NumPy arrays.

    A leaf this process holds whole (a host array or a fully addressable one, e.g. early
    stopping's best parameters rebuilt on the host) is returned as it is; only arrays
    spread over several processes are gathered (``process_allgather`` would instead
    concatenate every process's copy of a local one).
    """
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def initialize(coordinator: str, num_processes: int, process_id: int, local_devices: int | None = None):
    """Join a multi-host run (``jax.distributed.initialize``); call before any JAX work.

    Args:
        coordinator: ``HOST:PORT`` of process 0.
        num_processes: how many processes take part.
        process_id: this process's rank in [0, num_processes).
        local_devices: on CPU, how many devices this process exposes.
    """
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator must be HOST:PORT, got {coordinator!r}")
    if local_devices:
        jax.config.update("jax_num_cpu_devices", local_devices)
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)


def describe(mesh: Mesh | None) -> str:
    if mesh is None:
        return "single device"
    return f"mesh data={mesh.shape[DATA]} x model={mesh.shape[MODEL]} over {mesh.size} devices"

