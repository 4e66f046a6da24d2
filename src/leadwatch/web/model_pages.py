"""The Model page: the active model with its out-of-time validation beside the naive baseline,
its calibration and feature importance as charts, the risk levels in force, every saved
version; admins activate another version, admins and managers retrain from the stored leads
in the background and watch its progress."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadwatch.deps import SessionDep, SettingsDep
from leadwatch.leads import retrain as retrain_service
from leadwatch.prediction.artifacts import ModelFileError, ModelInfo, ModelStore, store_for
from leadwatch.web import charts
from leadwatch.web.auth import CurrentUser, SignedInUser, check_csrf
from leadwatch.web.pages import page

router = APIRouter(tags=["web"], include_in_schema=False)
RETRAINERS = ("admin", "manager")
ACTIVATORS = ("admin",)
MODEL_TYPES = ("gradient_boosting", "random_forest", "logistic", "auto")
# (key in the validation report, label, which way is better)
METRICS = (
    ("roc_auc", "ROC AUC", "higher"),
    ("pr_auc", "PR AUC", "higher"),
    ("brier", "Brier score", "lower"),
    ("log_loss", "Log loss", "lower"),
    ("ece", "Calibration error (ECE)", "lower"),
    ("lift_top_decile", "Top-decile lift", "higher"),
    ("capture_top_decile", "Top-decile capture", "higher"),
)
HORIZON_NAMES = {"14d": "14 days", "30d": "30 days", "target": "outcome"}


def _store(settings: SettingsDep) -> ModelStore:
    """The store scoring reads too (see create_app): the home's models folder and key."""
    return store_for(settings.home, settings.secret_key_value)


def _jobs(request: Request) -> retrain_service.RetrainJobs:
    jobs: retrain_service.RetrainJobs = request.app.state.model_jobs
    return jobs


def metric_rows(validation: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: label, which way is better, and (model, baseline) per horizon."""
    model, baseline = validation.get("model") or {}, validation.get("baseline") or {}
    return [
        {
            "label": label,
            "better": better,
            "values": [
                (_number(model[h].get(key)), _number((baseline.get(h) or {}).get(key)))
                for h in model
            ],
        }
        for key, label, better in METRICS
    ]


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _summary(info: ModelInfo) -> dict[str, Any]:
    """What the history table shows of a version."""
    report = info.metadata.get("report") or {}
    metrics = (report.get("validation") or {}).get("model") or {}
    main = metrics.get("30d") or metrics.get("target") or {}
    split = report.get("split") or {}
    return {
        "version": info.version,
        "created_at": info.created_at[:16].replace("T", " "),
        "model_type": info.metadata.get("model_type", "?"),
        "rows": report.get("rows"),
        "window": (str(split.get("start", "?"))[:10], str(info.metadata.get("as_of", "?"))[:10]),
        "roc_auc": _number(main.get("roc_auc")),
        "log_loss": _number(main.get("log_loss")),
        "ece": _number(main.get("ece")),
    }


def _active_details(request: Request, info: ModelInfo) -> dict[str, Any]:
    """The active model's page sections: summary, metrics, charts, risk levels."""
    report = info.metadata.get("report") or {}
    validation = report.get("validation") or {}
    horizons = list((validation.get("model") or {}).keys())
    reliability = {
        HORIZON_NAMES.get(h, h): (validation["model"][h].get("reliability") or []) for h in horizons
    }
    found = report.get("feature_importance") or {}
    importance = dict(sorted(found.items(), key=lambda item: -float(item[1])))
    predictor = request.app.state.active_model.get()
    return {
        "summary": _summary(info),
        "features": info.metadata.get("features") or [],
        "target": info.metadata.get("target"),
        "slices": report.get("slices") or {},
        "horizons": [HORIZON_NAMES.get(h, h) for h in horizons],
        "metrics": metric_rows(validation),
        "calibration": charts.calibration("Calibration: observed against predicted", reliability),
        "importance_chart": charts.bars(
            "Feature importance (rise in log loss when shuffled)",
            {name: max(float(value), 0.0) for name, value in importance.items()},
        ),
        "importance": importance,
        "model_levels": predictor.risk_levels if predictor is not None else None,
    }


def _render(
    request: Request,
    signed_in: SignedInUser,
    db_session: SessionDep,
    settings: SettingsDep,
    *,
    code: int = 200,
    **context: Any,
) -> HTMLResponse:
    store = _store(settings)
    try:
        active = store.active_version()
    except ModelFileError as exc:
        active, context["error"] = None, str(exc)
    infos = store.list()
    active_info = next((info for info in infos if info.version == active), None)
    runtime = request.app.state.escalation_runtime
    config = runtime.config(db_session)
    response = page(
        request,
        "model.html",
        signed_in,
        db_session,
        title="Model",
        active=_active_details(request, active_info) if active_info else None,
        active_version=active,
        history=[_summary(info) for info in infos],
        problems=store.problems(),
        thresholds=runtime(db_session).thresholds,
        thresholds_from_settings=config.rules.thresholds is not None,
        job=_jobs(request).current(),
        model_types=MODEL_TYPES,
        can_retrain=signed_in.user.role in RETRAINERS,
        can_activate=signed_in.user.role in ACTIVATORS,
        **context,
    )
    response.status_code = code
    return response


@router.get("/model", response_class=HTMLResponse)
def model_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    activated: str = "",
) -> HTMLResponse:
    notice = f"Model {activated} is now active; open leads were re-scored." if activated else None
    return _render(request, signed_in, db_session, settings, notice=notice)


@router.post("/model/activate")
def activate_version(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    csrf_token: Annotated[str, Form(max_length=100)],
    version: Annotated[str, Form(max_length=40)],
) -> Response:
    """Make another saved version the active one and re-score the open leads with it."""
    check_csrf(signed_in, csrf_token)
    if signed_in.user.role not in ACTIVATORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins activate a model version")
    job = _jobs(request).current()
    if job is not None and job.running:
        error = "A retrain is running and will activate its own model; activate after it ends."
        return _render(request, signed_in, db_session, settings, code=409, error=error)
    from leadwatch.prediction.predictor import LeadOutcomePredictor

    store = _store(settings)
    try:
        predictor = LeadOutcomePredictor.load(version, store=store)
    except (ModelFileError, ValueError) as exc:
        return _render(request, signed_in, db_session, settings, code=422, error=str(exc))
    retrain_service.activate_with_scores(
        session_factory=request.app.state.session_factory,
        store=store,
        predictor=predictor,
        version=version,
        now=request.app.state.clock(),
    )
    return RedirectResponse(f"/model?activated={version}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/model/retrain", response_class=HTMLResponse)
def start_retrain(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    csrf_token: Annotated[str, Form(max_length=100)],
    model_type: Annotated[str, Form(max_length=40)] = "gradient_boosting",
) -> Response:
    """Start the retrain on a thread of its own and go to its progress page."""
    check_csrf(signed_in, csrf_token)
    if signed_in.user.role not in RETRAINERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins and managers retrain")
    if model_type not in MODEL_TYPES:
        error = f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}"
        return _render(request, signed_in, db_session, settings, code=422, error=error)
    work = partial(
        retrain_service.retrain,
        session_factory=request.app.state.session_factory,
        store=_store(settings),
        model_type=model_type,
        clock=request.app.state.clock,
    )
    try:
        _jobs(request).start(
            model_type=model_type,
            started_by=signed_in.user.email,
            work=lambda progress: work(progress=progress),
        )
    except retrain_service.RetrainRunningError as exc:
        return _job_page(request, signed_in, db_session, code=409, error=str(exc))
    return RedirectResponse("/model/retrain", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/model/retrain", response_class=HTMLResponse)
def retrain_progress(
    request: Request, signed_in: CurrentUser, db_session: SessionDep
) -> HTMLResponse:
    """The retrain's progress (the page reloads itself while it runs), then its result."""
    return _job_page(request, signed_in, db_session)


def _job_page(
    request: Request,
    signed_in: SignedInUser,
    db_session: SessionDep,
    *,
    code: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    job = _jobs(request).current()
    result = job.result if job is not None else None
    response = page(
        request,
        "model_job.html",
        signed_in,
        db_session,
        title="Retrain",
        job=job,
        percent=round(job.fraction * 100) if job is not None else 0,
        metrics=metric_rows(result.validation) if result is not None else [],
        horizons=[HORIZON_NAMES.get(h, h) for h in (result.validation.get("model") or {})]
        if result is not None
        else [],
        error=error,
    )
    response.status_code = code
    response.headers["Cache-Control"] = "no-store"
    return response
