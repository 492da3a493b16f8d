"""Benchmark floor: parse every config YAML with libyaml and validate it with python-jsonschema.

    python bench/floor.py DIR [--schemas SCHEMA_DIR]

This is the minimum work any `runner validate` has to do (parse + schema-check each file),
done as plainly as possible; run as a whole process so interpreter start-up and imports count.
Exit status 1 if any document has a schema error (prints the count), else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jsonschema
import yaml

KINDS = ("queues", "targets", "jobs", "schedules")
DEFAULT_SCHEMAS = Path(__file__).resolve().parent.parent / "runner" / "schemas"


def files_by_kind(repo: Path) -> dict[str, list[Path]]:
    return {
        "queues": [repo / "queues.yaml"],
        **{kind: sorted((repo / f"{kind}.d").glob("*.yaml")) for kind in KINDS[1:]},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS)
    a = p.parse_args(argv)

    errors = 0
    for kind, paths in files_by_kind(a.dir).items():
        schema = json.loads((a.schemas / f"{kind}.schema.json").read_bytes())
        validator = jsonschema.Draft202012Validator(schema)
        for path in paths:
            doc = yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
            errors += sum(1 for _ in validator.iter_errors(doc))
    if errors:
        print(f"floor: {errors} schema error(s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
