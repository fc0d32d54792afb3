"""WSGI entry point: `gunicorn web:app`; `python web.py` serves it."""

from scn_workflow import logs
from scn_workflow.app import create_app

logs.configure()
app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000, threaded=True)
