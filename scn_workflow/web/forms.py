"""Turning HTML form posts into the use cases' input, keeping everything the user typed."""

from __future__ import annotations

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from scn_workflow.domain.errors import N_
from scn_workflow.schemas.nominations import MAX_PROJECTS, AssessmentSchema, NominationContent, NominationCreate
from scn_workflow.schemas.text import form_number


def nomination_input(form: MultiDict) -> dict:
    """The raw values of the nomination form, projects included, exactly as typed."""
    data = {name: form.get(name, "") for name in ("city_name", "region", "population", "csco_name", "csco_email",
                                                  "vision")}
    data["focus_areas"] = form.getlist("focus_areas")
    projects = []
    for i in range(MAX_PROJECTS):
        prefix = f"project-{i}-"
        if prefix + "title" not in form:
            continue
        projects.append({"title": form.get(prefix + "title", ""), "focus_area": form.get(prefix + "focus_area", ""),
                         "description": form.get(prefix + "description", ""),
                         "priority": form.get(prefix + "priority") == "on"})
    data["projects"] = projects
    action = form.get("action", "save")
    if action == "add_project" and len(projects) < MAX_PROJECTS:
        projects.append({"title": "", "focus_area": "", "description": "", "priority": False})
    elif action.startswith("remove_project:"):
        index = form_number(action.split(":", 1)[1])
        if isinstance(index, int) and index < len(projects):
            projects.pop(index)
    return data


def validate_nomination(raw: dict, *, creating: bool) -> tuple[dict | None, dict]:
    """(clean data, {}) or (None, errors by field); blank optional fields become None."""
    data = dict(raw)
    for name in ("region", "csco_name", "csco_email", "vision"):
        data[name] = data[name].strip() or None
    data["city_name"] = data["city_name"].strip()
    population = data["population"].strip().replace(",", "").replace("_", "")
    data["population"] = form_number(population) if population else None
    # Blank project rows are dropped; the errors of the others must still name their row in the form.
    kept = [i for i, p in enumerate(data["projects"]) if any((p["title"].strip(), p["description"].strip()))]
    data["projects"] = [data["projects"][i] for i in kept]
    schema = NominationCreate() if creating else NominationContent()
    try:
        return schema.load(data), {}
    except ValidationError as err:
        errors = dict(err.messages)
        if isinstance(errors.get("projects"), dict):
            errors["projects"] = {kept[i] if isinstance(i, int) and i < len(kept) else i: messages
                                  for i, messages in errors["projects"].items()}
            for i, messages in errors["projects"].items():
                if isinstance(messages, dict) and "focus_area" in messages and not raw["projects"][i]["focus_area"]:
                    messages["focus_area"] = [N_("Choose the focus area of this project.")]
        if "city_name" in errors and not data["city_name"]:
            errors["city_name"] = [N_("Enter the name of the city.")]
        return None, errors


def assessment_input(form: MultiDict, focus_areas: list[str]) -> dict:
    scores = {}
    for area in focus_areas:
        value = form.get(f"score-{area}", "")
        scores[area] = form_number(value) if value else value
    return {"scores": scores, "recommendation": form.get("recommendation", ""), "summary": form.get("summary", "")}


def validate_assessment(raw: dict) -> tuple[dict | None, dict]:
    """(clean data, {}) or (None, errors by field), saying what to do about a field left empty."""
    try:
        return AssessmentSchema().load(raw), {}
    except ValidationError as err:
        errors = dict(err.messages)
        if isinstance(errors.get("scores"), dict):
            for area, messages in errors["scores"].items():
                if raw["scores"].get(area) == "":
                    messages["value"] = [N_("Choose a score from 1 to 5.")]
        if "recommendation" in errors and not raw["recommendation"]:
            errors["recommendation"] = [N_("Choose a recommendation.")]
        if "summary" in errors and not raw["summary"].strip():
            errors["summary"] = [N_("Write a summary of the assessment.")]
        return None, errors
