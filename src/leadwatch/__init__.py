"""LeadWatch: dealership lead intake, outcome prediction and escalation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AlertEscalationRouter", "LeadOutcomePredictor", "__version__"]

if TYPE_CHECKING:
    from leadwatch.escalations.router import AlertEscalationRouter
    from leadwatch.prediction.predictor import LeadOutcomePredictor


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI and API start without loading scikit-learn and LightGBM.
    if name == "LeadOutcomePredictor":
        from leadwatch.prediction.predictor import LeadOutcomePredictor

        return LeadOutcomePredictor
    if name == "AlertEscalationRouter":
        from leadwatch.escalations.router import AlertEscalationRouter

        return AlertEscalationRouter
    raise AttributeError(f"module 'leadwatch' has no attribute {name!r}")
