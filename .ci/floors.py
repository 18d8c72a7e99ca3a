"""The runtime dependency floors in pyproject.toml, tested.

Prints a pip constraints file pinning each runtime dependency (``name>=floor``) to
its floor, and exits 0 when the environment given by ``--python`` already has
exactly those versions (the suite that just ran tested the floors), 3 when some
differ (run the fast tests again with the floors installed: see ``.ci/run``),
2 when a runtime dependency has no plain ``>=`` floor.

    python .ci/floors.py --python .venv/bin/python > floors.txt
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floors() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", dep)
        if match is None:
            print(f"runtime dependency without a plain '>=' floor: {dep!r}", file=sys.stderr)
            sys.exit(2)
        out[match[1].lower()] = match[2]
    return out


def installed(python: str, names) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    result = subprocess.run(
        [python, "-c", code, *names], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, help="the interpreter the suite ran with")
    args = parser.parse_args()
    want = floors()
    have = installed(args.python, want)
    for name, floor in want.items():
        print(f"{name}=={floor}")
        state = "tested" if have[name] == floor else f"NOT tested (suite ran {have[name]})"
        print(f"floor {name}>={floor}: {state}", file=sys.stderr)
    return 0 if have == want else 3


if __name__ == "__main__":
    sys.exit(main())
