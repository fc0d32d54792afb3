"""Celery entry point: `celery -A worker worker -Q checks,notifications,handover,webhooks`."""

from scn_workflow.app import create_app

celery = create_app().extensions["celery"]
