"""Delivery channels: one small typed class per channel behind the `Channel` protocol."""
