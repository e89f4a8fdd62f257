"""Watching a model in production: roll feedback up per model version and interval, measure
drift against the training-time profile, and decide which alerts fire.
"""
