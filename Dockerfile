FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SCN_INSTANCE_PATH=/var/lib/scn-workflow
COPY pyproject.toml README.md ./
COPY scn_workflow ./scn_workflow
COPY migrations ./migrations
COPY web.py worker.py ./
RUN pip install --no-cache-dir -e '.[flower]' && pybabel compile -d scn_workflow/translations && useradd --system scn && mkdir -p /var/lib/scn-workflow && chown scn /var/lib/scn-workflow
USER scn
EXPOSE 8000
# gthread: threads overlap the waits on PostgreSQL and keep connections alive (docs/performance.md)
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--worker-class", "gthread", "--threads", "8", "web:app"]
