"""Stopping the processes the tests and benchmarks start (the standard library only)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen | None, grace_s: float = 20) -> None:
    """SIGTERM a process started with start_new_session=True and its children; SIGKILL them if
    they have not exited after `grace_s`."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
