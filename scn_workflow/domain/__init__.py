"""The domain: plain Python, no Flask, Celery, SQLAlchemy or marshmallow."""
