"""Record PaddleClas 2.6's parameter names and shapes for every backbone corolla registers
into ``tests/paddleclas_shapes.json``, which ``test_backbone_parity`` checks corolla's models
against without building PaddleClas's (about half of that test's cost).

Run it after adding a backbone: ``python tests/record_paddleclas_shapes.py`` (PaddleClas
installed, as for the parity tests). Each model is recorded as its parameter count and a
digest of its sorted ``name:shape`` lines; the slow tests compare every model against
PaddleClas itself again, so a stale record shows up there too.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _backbone_cases import NAMES, paddleclas, release_memory  # noqa: E402
from test_backbone_parity import RECORD, build_theirs, lazily, shapes_record  # noqa: E402


def main() -> None:
    backbones = vars(paddleclas().arch.backbone)
    record = {}
    for index, name in enumerate(NAMES, 1):
        record[name] = shapes_record(lazily(lambda: build_theirs(backbones, name)))
        release_memory()
        print(f"[{index}/{len(NAMES)}] {name}: {record[name]['parameters']} tensors", flush=True)
    RECORD.write_text(json.dumps({"paddleclas": "2.6.0", "models": record}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")


if __name__ == "__main__":
    main()
