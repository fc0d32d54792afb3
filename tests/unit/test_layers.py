"""The layers, as the import-linter contracts of pyproject.toml ([tool.importlinter]) state them:
the entry points web, api, cli and workers (independent of each other) above the use cases
(services), above persistence (db), above the domain; and the domain imports no Flask, Celery,
SQLAlchemy, marshmallow, kombu or redis."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_import_contracts_hold():
    result = subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
