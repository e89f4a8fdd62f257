"""Turning feedback into a better model: training data from base data plus resolved feedback labels,
training, the regression set of eval cases, the promotion gate, and the retraining run that ties them.
"""
