"""Sale-probability model core: features, time-respecting labels and the hazard model.

Pure computation on numpy / pandas / scikit-learn / lightgbm; no database or web imports.
"""
