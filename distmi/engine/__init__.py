"""Engine: plan work units, run them in-process or on Ray actors (``distmi.engine.ray_executor``,
the only module that imports ray, loaded on demand)."""

from distmi.engine.executors import EngineError, Executor, InProcessExecutor, make_executor
from distmi.engine.plan import Partner, Plan, WorkBatch, make_plan
from distmi.engine.worker import RESULT_COLUMNS, BatchOutput, BatchWorker, TaskConfig

__all__ = [
    "RESULT_COLUMNS",
    "BatchOutput",
    "BatchWorker",
    "EngineError",
    "Executor",
    "InProcessExecutor",
    "Partner",
    "Plan",
    "TaskConfig",
    "WorkBatch",
    "make_executor",
    "make_plan",
]
