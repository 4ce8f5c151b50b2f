"""JSON Schema files for producers in other languages (``schemas/json/``).

Run ``python -m schemas.export`` after changing a model; a unit test fails
while the committed files differ from what the models say.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas.wire import KINDS

JSON_DIR = Path(__file__).parent / "json"


def schema_texts() -> dict[str, str]:
    """File name -> JSON Schema text, for every wire event kind."""
    return {
        f"{kind}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for kind, model in KINDS.items()
    }


def write(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema file; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in schema_texts().items():
        path = directory / name
        path.write_text(text)
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write():
        print(p)
