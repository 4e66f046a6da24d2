"""LeadWatch: dealership lead intake, outcome prediction and escalation."""

__version__ = "0.1.0"
