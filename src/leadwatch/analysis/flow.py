"""The lead flow analysis: how leads actually move, where they stall and what converts.

``analyze_flow(frame)`` takes leads in the canonical CSV columns (``created_at`` and the stage
times; ``lead_source``, ``rep``, ``vehicle_make``, ``vehicle_model``, ``dealership`` when
known), times naive on each dealership's clock, and returns a ``FlowReport``: plain dataclasses
whose ``as_dict()`` is the JSON the CLI prints and the pages draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadwatch.analysis import hours as hours_of
from leadwatch.analysis.conversion import (
    Z95,
    Breakdown,
    Judged,
    Overall,
    breakdown,
    overall,
)
from leadwatch.analysis.funnel import DEFAULT_TARGETS, Cohort, Funnel, funnel
from leadwatch.analysis.recommend import Recommendation, recommend
from leadwatch.analysis.speed import SpeedToLead, speed_to_lead
from leadwatch.analysis.timeline import WEEKDAY_NAMES, build
from leadwatch.core.calendar import WorkingHours

# (dimension, title, columns joined for the group name)
GROUPED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("source", "Lead source", ("lead_source",)),
    ("rep", "Sales rep", ("rep",)),
    ("vehicle", "Vehicle", ("vehicle_make", "vehicle_model")),
    ("dealership", "Dealership", ("dealership",)),
)
MATURE = "leads whose 30-day window has closed"


@dataclass(frozen=True)
class FlowConfig:
    min_group: int = 30  # smaller groups are listed, flagged small, never ranked
    cohort: Cohort = "month"
    targets: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    hours: Mapping[str, WorkingHours] = field(default_factory=dict)  # by dealership name
    default_hours: WorkingHours = field(default_factory=hours_of.default_hours)
    hours_source: str = "escalation settings"  # where ``hours`` came from, for the report
    default_hours_source: str = "default"
    max_recommendations: int = 10
    z: float = Z95

    def __post_init__(self) -> None:
        if self.min_group < 1:
            raise ValueError("min_group must be at least 1")
        unknown = set(self.targets) - set(DEFAULT_TARGETS)
        if unknown:
            known = ", ".join(DEFAULT_TARGETS)
            raise ValueError(f"targets for unknown stages {sorted(unknown)}; stages: {known}")


@dataclass(frozen=True)
class FlowReport:
    as_of: str
    leads: int
    excluded: dict[str, int]
    min_group: int
    overall: Overall
    breakdowns: list[Breakdown]
    speed: SpeedToLead
    funnel: Funnel
    recommendations: list[Recommendation]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def breakdown(self, dimension: str) -> Breakdown:
        return next(table for table in self.breakdowns if table.dimension == dimension)


def analyze_flow(
    frame: pd.DataFrame, *, as_of: object = None, config: FlowConfig | None = None
) -> FlowReport:
    """The flow of the leads in ``frame`` as of ``as_of`` (default: the latest time in the
    data). Raises ``FlowInputError`` naming what is missing or wrong."""
    config = config or FlowConfig()
    timeline = build(frame, as_of)
    judged = Judged.of(timeline)
    total = overall(timeline, judged, config.z)
    base = total.d30.rate
    tables = [
        breakdown(
            dimension,
            title,
            timeline.groups(columns),
            judged,
            overall_30d=base,
            min_group=config.min_group,
            z=config.z,
        )
        for dimension, title, columns in GROUPED
    ]
    hour = hours_of.hour(timeline.created)
    weekday = hours_of.weekday(timeline.created)
    for dimension, title, codes, names in (
        ("hour", "Hour of day", hour, [f"{h:02d}:00" for h in range(24)]),
        ("weekday", "Day of week", weekday, list(WEEKDAY_NAMES)),
    ):
        tables.append(
            breakdown(
                dimension,
                title,
                (codes, names),
                judged,
                overall_30d=base,
                min_group=config.min_group,
                ordered=True,
                z=config.z,
            )
        )
    settled = judged.closed[30]
    basis = MATURE
    if not settled.any():
        settled = np.ones(len(timeline), dtype=np.bool_)
        basis = "all leads (none has a closed 30-day window yet: figures will still move)"
    in_hours, used = hours_of.business_hours(
        timeline.created,
        timeline.groups(("dealership",)),
        config.hours,
        config.default_hours,
        config.hours_source,
        config.default_hours_source,
    )
    speed = speed_to_lead(timeline, judged, in_hours, used, settled, z=config.z)
    flow = funnel(timeline, settled, basis, cohort=config.cohort, targets=config.targets)
    return FlowReport(
        as_of=timeline.as_of_text,
        leads=len(timeline),
        excluded=timeline.excluded,
        min_group=config.min_group,
        overall=total,
        breakdowns=tables,
        speed=speed,
        funnel=flow,
        recommendations=recommend(
            total,
            tables,
            speed,
            flow,
            min_group=config.min_group,
            limit=config.max_recommendations,
        ),
    )
