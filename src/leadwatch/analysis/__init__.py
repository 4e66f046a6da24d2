"""Lead flow analysis: conversion that respects time, speed to lead, the stage funnel and
recommendations, computed on a lead frame (numpy and pandas only)."""

from leadwatch.analysis.flow import FlowConfig, FlowReport, analyze_flow
from leadwatch.analysis.timeline import FlowInputError

__all__ = ["FlowConfig", "FlowInputError", "FlowReport", "analyze_flow"]
