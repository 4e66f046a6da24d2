"""The retrain job as every API process of an installation sees it (`serve` runs several)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadwatch.leads.retrain import Progress, RetrainJobs, RetrainResult, RetrainRunningError

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="shared through flock")


def result(version: str) -> RetrainResult:
    validation = {"model": {"30d": {"auc": 0.71}}, "baseline": {"30d": {"auc": 0.5}}}
    return RetrainResult(version, "lightgbm", rows=900, rescored=12, validation=validation)


def test_a_retrain_started_in_one_process_is_seen_and_guarded_by_another(tmp_path: Path) -> None:
    # Two objects on one folder stand for two API processes: each holds its own lock file.
    first, second = RetrainJobs(lambda: NOW, tmp_path), RetrainJobs(lambda: NOW, tmp_path)
    assert second.current() is None
    halfway, finish = threading.Event(), threading.Event()

    def work(progress: Progress) -> RetrainResult:
        progress("training", 0.4)
        halfway.set()
        assert finish.wait(10)
        return result("v-new")

    first.start(model_type="auto", started_by="ada@riverside.example", work=work)
    assert halfway.wait(10)
    seen = second.current()
    assert seen is not None and seen.running
    assert (seen.number, seen.stage, seen.fraction) == (1, "training", 0.4)
    assert seen.started_by == "ada@riverside.example" and seen.started_at == NOW
    with pytest.raises(RetrainRunningError, match="started by ada@riverside.example"):
        second.start(model_type="logistic", started_by="bo@riverside.example", work=work)
    finish.set()
    first.join(10)
    done = second.current()
    assert done is not None and done.state == "done" and done.fraction == 1.0
    assert done.result == result("v-new")
    # Free again, for either process; the numbering goes on across them.
    second.start(model_type="logistic", started_by="bo@riverside.example", work=work)
    second.join(10)
    again = first.current()
    assert again is not None and again.number == 2 and again.state == "done"


def test_a_failed_retrain_is_reported_to_the_other_processes(tmp_path: Path) -> None:
    first, second = RetrainJobs(lambda: NOW, tmp_path), RetrainJobs(lambda: NOW, tmp_path)

    def work(progress: Progress) -> RetrainResult:
        raise ValueError("no sold leads")

    first.start(model_type="auto", started_by="ada@riverside.example", work=work)
    first.join(10)
    failed = second.current()
    assert failed is not None and failed.state == "failed"
    assert failed.error == "training failed: no sold leads"


def test_a_retrain_whose_process_was_killed_shows_as_stopped_and_frees_the_next(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, threading
        from datetime import UTC, datetime
        from pathlib import Path
        from leadwatch.leads.retrain import RetrainJobs

        def work(progress):
            progress("training", 0.3)
            print("training", flush=True)
            threading.Event().wait()

        jobs = RetrainJobs(lambda: datetime.now(UTC), Path({str(tmp_path)!r}))
        jobs.start(model_type="auto", started_by="ada@riverside.example", work=work)
        jobs.join()
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "training"
        jobs = RetrainJobs(lambda: NOW, tmp_path)
        running = jobs.current()
        assert running is not None and running.running and running.stage == "training"
        with pytest.raises(RetrainRunningError):
            jobs.start(model_type="auto", started_by="bo@riverside.example", work=lambda _: 1)  # type: ignore[arg-type,return-value]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    deadline = time.monotonic() + 5
    stopped = jobs.current()
    while stopped is not None and stopped.running and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel lets go of a killed process's locks at once, but be fair
        stopped = jobs.current()
    assert stopped is not None and stopped.state == "failed"
    assert stopped.error is not None and "stopped before it reported the end" in stopped.error
    jobs.start(model_type="auto", started_by="bo@riverside.example", work=lambda _: result("v2"))
    jobs.join(10)
    after = jobs.current()
    assert after is not None and after.state == "done" and after.number == 2
