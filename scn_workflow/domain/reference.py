"""Reference facts about the ASCN (shipped with the package, copied from shared/reference)."""

import json
from functools import cache
from importlib import resources


@cache
def ascn() -> dict:
    """The reference document: member states, focus areas, cycles and their cities."""
    return json.loads(resources.files("scn_workflow.reference").joinpath("ascn.json").read_text("utf-8"))


@cache
def focus_areas() -> dict[str, str]:
    """Focus area code -> name, in the order of the reference."""
    return {area["code"]: area["name"] for area in ascn()["focus_areas"]}
