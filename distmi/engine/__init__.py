"""Engine: plan work units, run them in-process or on Ray actors (``distmi.engine.ray_executor``,
the only module that imports ray, loaded on demand)."""

from distmi.engine.executors import EngineError, Executor, InProcessExecutor, make_executor
from distmi.engine.plan import PAIR_MODES, Partner, Plan, WorkBatch, make_plan
from distmi.engine.requests import (
    AllUnits,
    ExecutorSettings,
    LayerRequest,
    PlanRequest,
    TopVarianceUnits,
    UnitIndices,
    UnitRange,
)
from distmi.engine.worker import RESULT_COLUMNS, BatchOutput, BatchWorker, TaskConfig

__all__ = [
    "PAIR_MODES",
    "RESULT_COLUMNS",
    "AllUnits",
    "BatchOutput",
    "BatchWorker",
    "EngineError",
    "Executor",
    "ExecutorSettings",
    "InProcessExecutor",
    "LayerRequest",
    "Partner",
    "Plan",
    "PlanRequest",
    "TaskConfig",
    "TopVarianceUnits",
    "UnitIndices",
    "UnitRange",
    "WorkBatch",
    "make_executor",
    "make_plan",
]
