"""``python -m processors.monitor [--write-readme]``: print (or write) the README's signal table."""

from __future__ import annotations

import sys
from pathlib import Path

from processors.monitor.catalogue import readme_table, replace_readme_table


def main(argv: list[str]) -> None:
    if "--write-readme" in argv:
        path = Path(__file__).resolve().parents[2] / "README.md"
        path.write_text(replace_readme_table(path.read_text()))
        print(f"wrote the signal table of {path}")
    else:
        print(readme_table())


if __name__ == "__main__":
    main(sys.argv[1:])
