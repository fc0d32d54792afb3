"""Where an operator's retry of a failure (api/ops.py, web/ops_pages.py) sends the work: to the
broker's queues when the app has one, else to the embedded worker of this process."""

from flask import current_app

from scn_workflow.current import svc


def retry_publisher():
    """A publisher for `failures.retry`: the broker, or the embedded worker in this process."""
    if svc().settings.broker_url:
        from scn_workflow.workers import publisher
        return publisher(current_app.extensions["celery"])
    worker = current_app.extensions["scn_embedded_worker"]
    return lambda queue, event_id, **_: worker.perform_later(queue, event_id)
