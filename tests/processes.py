"""Stopping the processes the tests start: `stop_process_group` lives in tests/harness.py."""

from tests.harness import stop_process_group

__all__ = ["stop_process_group"]
