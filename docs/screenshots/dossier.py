"""Draw one page of a handover dossier as docs/screenshots/dossier-<language>.png.

The demo data (services.seed) on a throwaway SQLite database, the dossier of a seeded city that was
handed over, its second page (the nomination, the assessment's chart, the checks) rendered with
pypdfium2 (the test extra). Run: .venv/bin/python docs/screenshots/dossier.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pypdfium2
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scn_workflow.config import Settings  # noqa: E402 - after the path is set
from scn_workflow.db import migrate  # noqa: E402
from scn_workflow.db import tables as t  # noqa: E402
from scn_workflow.services import Services, dossier, seed  # noqa: E402

CITY, PAGE = "Sumedang", 1  # the second page
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def main() -> None:
    with tempfile.TemporaryDirectory() as instance:
        url = f"sqlite:///{instance}/demo.sqlite3"
        migrate.upgrade(url)
        svc = Services(Settings(instance_path=instance, database_url=url), clock=lambda: NOW)
        seed.seed(svc)
        with svc.engine.connect() as c:
            nomination_id = c.scalar(sa.select(t.nominations.c.id).where(t.nominations.c.city_name == CITY))
        for language in ("en", "id"):
            pdf = pypdfium2.PdfDocument(dossier.build(svc, nomination_id, language))
            target = ROOT / "docs" / "screenshots" / f"dossier-{language}.png"
            pdf[PAGE].render(scale=1.5).to_pil().save(target)
            pdf.close()
            print(target.relative_to(ROOT))
        svc.engine.dispose()


if __name__ == "__main__":
    main()
