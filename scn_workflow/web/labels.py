"""The words for codes, for the pages: scn_workflow/labels.py (shared with the API's problem answers)."""

from scn_workflow.labels import (  # noqa: F401 - the names the pages use
    FILTERS, check_label, event_label, field_label, field_messages, field_problems, focus_area_label,
    install,
    kind_label, member_state_name, number, outcome_label, recommendation_label, refusal, role_label, say,
    state_label, trigger_label, when)
