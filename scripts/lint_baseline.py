"""Write ruff-baseline.toml: for each file that breaks a lint rule today, the rules it may still break.

`make lint` enforces the rules of pyproject.toml ([tool.ruff.lint]) on every file, minus this list. The
list only shrinks: fix a file, run this script, and its entry goes (or narrows). Never run it to hide a
new finding in a file that had none. Usage: python scripts/lint_baseline.py (from the repository root).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "ruff-baseline.toml"
PATHS = ["thunes", "tests", "benchmarks", "scripts"]


def main() -> int:
    BASELINE.write_text("")  # judge every file by the full rule set
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "json", "--exit-zero",
                            *PATHS], cwd=ROOT, capture_output=True, text=True, check=True)
    codes: dict[str, set[str]] = defaultdict(set)
    for item in json.loads(found.stdout):
        codes[Path(item["filename"]).resolve().relative_to(ROOT).as_posix()].add(item["code"])
    lines = [
        "# Lint baseline: the rules each file still breaks (written by scripts/lint_baseline.py; it only",
        "# shrinks). pyproject.toml's [tool.ruff] extends this file.",
        "",
        "[lint.per-file-ignores]",
    ]
    lines += [f'"{path}" = {json.dumps(sorted(rules))}' for path, rules in sorted(codes.items())]
    BASELINE.write_text("\n".join(lines) + "\n")
    print(f"{BASELINE.name}: {len(codes)} file(s), {sum(map(len, codes.values()))} (file, rule) pair(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
