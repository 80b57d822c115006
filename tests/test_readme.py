"""Every Python example in README.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    spaces = []
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, str(README), "exec"), namespace)
        spaces.append(namespace)
    namespace = next(ns for ns in spaces if "r" in ns)  # the one-line estimates block
    r = namespace["r"]
    assert abs(r.value - 0.2231) < 4 * r.std + 1e-3
    assert len(namespace["table"]) == 32
    sweep = next(ns for ns in spaces if "sweep" in ns)
    assert {10, 20} <= set(sweep["sweep"].x_index[sweep["sweep"].significant])
    assert set(sweep["screen"].x_index[sweep["screen"].significant]) == set(
        sweep["sweep"].x_index[sweep["sweep"].significant])
