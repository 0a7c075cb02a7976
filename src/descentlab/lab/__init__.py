"""The lab: sweeps over methods and problems, run on a process pool or Ray, kept in a durable store.

- :class:`Space`, :func:`load_spec`: declarative search spaces (lists,
  grids, log grids, random search) and the spec files ``descentlab sweep``
  reads; every configuration is checked before anything runs;
- :class:`Store`: an SQLite file (WAL mode) that commits each finished run
  atomically with its configuration, record, status and versions;
  :func:`run_key` identifies a configuration;
- :func:`run_sweep`: runs the configurations a store lacks on an
  :class:`Executor` (:class:`LocalExecutor`, :class:`RayExecutor`,
  :class:`SerialExecutor`), committing each as it finishes; killed and
  started again, it resumes;
- the comparison (``descentlab compare``): :mod:`~descentlab.lab.claims`
  (one module per claim), :mod:`~descentlab.lab.suite`,
  :mod:`~descentlab.lab.plan`, :mod:`~descentlab.lab.stats`,
  :mod:`~descentlab.lab.calibration`, :mod:`~descentlab.lab.compare`; its
  record is a :class:`Findings` (``findings.json``).
"""

from __future__ import annotations

from .executors import Executor, LocalExecutor, RayExecutor, SerialExecutor, WorkerCrashed, default_workers
from .findings import Findings
from .space import (
    DIMENSIONS,
    Choice,
    Dimension,
    Grid,
    LogGrid,
    LogUniform,
    Space,
    SpaceError,
    Uniform,
    check_config,
)
from .spec import Spec, load_spec, parse_spec
from .store import (
    DEFAULTS_VERSION,
    SCHEMA_VERSION,
    STORE_FILENAME,
    Store,
    StoredRun,
    StoreError,
    defaults_digest,
    run_key,
    versions,
)
from .sweep import (
    Best,
    Outcome,
    Progress,
    best_per_problem,
    crashed,
    describe_config,
    execute,
    run_sweep,
    summary,
)

__all__ = [
    "DEFAULTS_VERSION",
    "DIMENSIONS",
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "Best",
    "Choice",
    "Dimension",
    "Executor",
    "Findings",
    "Grid",
    "LocalExecutor",
    "LogGrid",
    "LogUniform",
    "Outcome",
    "Progress",
    "RayExecutor",
    "SerialExecutor",
    "Space",
    "SpaceError",
    "Spec",
    "Store",
    "StoreError",
    "StoredRun",
    "Uniform",
    "WorkerCrashed",
    "best_per_problem",
    "check_config",
    "crashed",
    "default_workers",
    "defaults_digest",
    "describe_config",
    "execute",
    "load_spec",
    "parse_spec",
    "run_key",
    "run_sweep",
    "summary",
    "versions",
]
