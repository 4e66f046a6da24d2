"""Retraining the sale-probability model from the stored leads, in the background of the
server: read the leads, train, save, re-score the open leads, activate.

One retrain at a time for the whole installation: `serve` runs several API processes, and a
retrain started through one is shown, and refused a second time, by all of them. The job's
progress is a small JSON file in the home's models folder, replaced at every step, and a
lock file beside it is held while it runs (the lock goes with its process, so a server
killed mid-retrain leaves no job "running" forever: the next look reports it stopped). A
retrain that fails leaves the model that was active before it active: the new version is
activated only together with the re-scoring's commit.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from leadwatch.db.engine import unit_of_work
from leadwatch.filelocks import fcntl, open_lock_file, try_flock
from leadwatch.leads.export import lead_frame
from leadwatch.leads.scoring import score_open_leads

if TYPE_CHECKING:
    from leadwatch.prediction.artifacts import ModelStore
    from leadwatch.prediction.predictor import LeadOutcomePredictor

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]
# Where each part of a retrain starts on the job's 0..1 scale; training fills the middle.
TRAINING_START, TRAINING_END, RESCORING_START = 0.05, 0.85, 0.9


class RetrainRunningError(Exception):
    """A retrain is already running (in this process or another of the installation)."""


class NotEnoughLeadsError(ValueError):
    """Too few stored leads to train on."""


@dataclass(frozen=True)
class RetrainResult:
    version: str
    model_type: str
    rows: int  # leads trained on
    rescored: int  # open leads re-scored with the new model
    validation: dict[str, Any]  # the training report's out-of-time validation


@dataclass(frozen=True)
class RetrainJob:
    """One retrain as the pages show it: a snapshot, replaced (never changed) as it moves on."""

    number: int
    model_type: str
    started_by: str
    started_at: datetime
    stage: str = "starting"
    fraction: float = 0.0
    state: str = "running"  # running, done or failed
    error: str | None = None
    result: RetrainResult | None = None
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


class RetrainJobs:
    """The installation's retrain: at most one runs, on a thread of the process that started
    it. With ``folder`` (the models folder), every process of the installation sees it;
    without, this process only (tests)."""

    STATE = "retrain-job.json"
    LOCK = "retrain.lock"

    def __init__(self, clock: Callable[[], datetime], folder: Path | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._job: RetrainJob | None = None
        self._thread: threading.Thread | None = None
        self._folder = folder if fcntl is not None else None
        self._held = -1  # the lock file, open and locked while this process runs a retrain

    def current(self) -> RetrainJob | None:
        """The running retrain, or the last one to finish (None before the first)."""
        with self._lock:
            if self._folder is None or self._held >= 0:
                return self._job  # ours (or the only process): the freshest copy is here
        job = self._read()
        if job is None or not job.running or self._running_elsewhere():
            return job
        # Running on paper, but no process holds the lock: the one running it has died.
        # Read once more: it may have finished between the two looks.
        job = self._read()
        if job is not None and job.running:
            return replace(
                job,
                state="failed",
                error="the server process running this retrain stopped before it reported "
                "the end; the Model page shows which model is active",
            )
        return job

    def start(
        self, *, model_type: str, started_by: str, work: Callable[[Progress], RetrainResult]
    ) -> RetrainJob:
        """Run ``work`` (given a progress callback) on a new thread; refused while one runs."""
        with self._lock:
            if self._job is not None and self._job.running:
                raise _running(self._job)
            if self._folder is not None:
                self._take_lock()
                last = self._read()
            else:
                last = self._job
            number = last.number + 1 if last is not None else 1
            job = RetrainJob(number, model_type, started_by, self._clock())
            try:
                self._set(job)
                self._thread = threading.Thread(
                    target=self._run, args=(number, work), name=f"retrain-{number}", daemon=True
                )
                self._thread.start()
            except BaseException:  # not started after all: the next try must not be refused
                self._job = None
                self._give_lock_back()
                raise
        log.info("retrain %d (%s) started by %s", number, model_type, started_by)
        return job

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running retrain (if any) to finish."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self, number: int, work: Callable[[Progress], RetrainResult]) -> None:
        def progress(stage: str, fraction: float) -> None:
            self._update(number, stage=stage, fraction=min(max(fraction, 0.0), 1.0))

        try:
            result = work(progress)
        except Exception as exc:  # the job's error is shown to the user; the thread must end
            error = failure_message(exc)
            if error is None:
                log.exception("retrain %d failed", number)
                error = (
                    f"training failed unexpectedly ({type(exc).__name__}); the server log "
                    "has the details"
                )
            else:
                log.warning("retrain %d failed: %s", number, error)
            self._update(number, state="failed", error=error, finished_at=self._clock())
        else:
            log.info("retrain %d done: model %s", number, result.version)
            self._update(
                number,
                state="done",
                stage="done",
                fraction=1.0,
                result=result,
                finished_at=self._clock(),
            )
        finally:
            with self._lock:
                self._give_lock_back()

    def _update(self, number: int, **changes: Any) -> None:
        with self._lock:
            if self._job is not None and self._job.number == number:
                self._set(replace(self._job, **changes))

    # ---- shared between processes --------------------------------------------------------

    def _set(self, job: RetrainJob) -> None:
        """The new snapshot, here and (atomically replaced) in the folder. Called locked."""
        self._job = job
        if self._folder is None:
            return
        temporary = self._folder / f".{self.STATE}.{os.getpid()}"
        temporary.write_text(json.dumps(_job_to_json(job)), encoding="utf-8")
        os.replace(temporary, self._folder / self.STATE)

    def _read(self) -> RetrainJob | None:
        assert self._folder is not None
        try:
            text = (self._folder / self.STATE).read_text(encoding="utf-8")
            return _job_from_json(json.loads(text))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:  # a file from another version
            log.warning("ignoring the unreadable retrain job file: %s", exc)
            return None

    def _take_lock(self) -> None:
        assert self._folder is not None
        self._folder.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(self._folder / self.LOCK)
        if not try_flock(fd, fcntl.LOCK_EX):
            os.close(fd)
            raise _running(self._read())
        self._held = fd

    def _give_lock_back(self) -> None:
        if self._held >= 0:
            os.close(self._held)  # closing the file releases its lock
            self._held = -1

    def _running_elsewhere(self) -> bool:
        assert self._folder is not None
        try:
            fd = open_lock_file(self._folder / self.LOCK, create=False)
        except FileNotFoundError:
            return False
        try:
            return not try_flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)


def _running(job: RetrainJob | None) -> RetrainRunningError:
    if job is None:
        return RetrainRunningError("a retrain is already running; wait for it to finish")
    return RetrainRunningError(
        f"a retrain ({job.model_type}, started by {job.started_by}) is already running; "
        "wait for it to finish"
    )


def _job_to_json(job: RetrainJob) -> dict[str, Any]:
    data = asdict(job)
    for key in ("started_at", "finished_at"):
        data[key] = data[key].isoformat() if data[key] is not None else None
    plain: dict[str, Any] = json.loads(json.dumps(data, default=_plain))
    return plain


def _plain(value: Any) -> Any:
    """numpy numbers in a training report, as plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _job_from_json(data: dict[str, Any]) -> RetrainJob:
    result = data.pop("result", None)
    for key in ("started_at", "finished_at"):
        data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
    return RetrainJob(**data, result=RetrainResult(**result) if result is not None else None)


def failure_message(exc: Exception) -> str | None:
    """A failure in plain words, or None for a failure nobody expected (a bug)."""
    from leadwatch.prediction.artifacts import ModelFileError
    from leadwatch.prediction.splits import HistoryTooShortError

    if isinstance(exc, HistoryTooShortError):
        return f"history too short: {exc}"
    if isinstance(exc, NotEnoughLeadsError | ModelFileError):
        return str(exc)
    if isinstance(exc, ValueError | KeyError):
        return f"training failed: {exc}"
    return None


def retrain(
    *,
    session_factory: sessionmaker[Session],
    store: ModelStore,
    model_type: str,
    clock: Callable[[], datetime],
    progress: Progress,
    n_jobs: int = 2,
) -> RetrainResult:
    """Train ``model_type`` on every stored lead, save it, re-score the open leads with it
    and activate it (activation and re-scoring commit together)."""
    from leadwatch.prediction.predictor import LeadOutcomePredictor

    predictor = LeadOutcomePredictor(model_type, n_jobs=n_jobs)  # refuses an unknown type
    progress("reading leads", 0.0)
    with unit_of_work(session_factory) as db_session:
        frame = lead_frame(db_session=db_session)
    if frame.empty:
        raise NotEnoughLeadsError(
            "no leads are stored yet: import lead history first (`leadwatch import FILE`)"
        )
    span = TRAINING_END - TRAINING_START
    report = predictor.train(
        frame, progress=lambda stage, done: progress(stage, TRAINING_START + span * done)
    )
    progress("saving", TRAINING_END)
    info = predictor.save(store, activate=False, now=clock())
    progress("re-scoring", RESCORING_START)
    rescored = activate_with_scores(
        session_factory=session_factory,
        store=store,
        predictor=predictor,
        version=info.version,
        now=clock(),
    )
    return RetrainResult(
        version=info.version,
        model_type=report.model_type,
        rows=report.rows,
        rescored=rescored,
        validation=report.validation,
    )


def activate_with_scores(
    *,
    session_factory: sessionmaker[Session],
    store: ModelStore,
    predictor: LeadOutcomePredictor,
    version: str,
    now: datetime,
) -> int:
    """Re-score the open leads with ``predictor`` and make its ``version`` the active one,
    together: if the scores are not committed, the model active before stays active.
    Returns how many leads were re-scored."""
    previous = _active_or_none(store)
    try:
        with unit_of_work(session_factory) as db_session:
            rescored = score_open_leads(db_session=db_session, predictor=predictor, now=now)
            store.activate(version)
    except BaseException:
        if previous is not None and _active_or_none(store) != previous:
            store.activate(previous)  # the scores rolled back: so does the model
        raise
    return rescored


def _active_or_none(store: ModelStore) -> str | None:
    from leadwatch.prediction.artifacts import ModelFileError

    try:
        return store.active_version()
    except ModelFileError:  # a damaged active.json: the new model replaces it
        return None
