"""Scoring and human review: score pending requests with the champion, log every prediction,
choose which ones people review, build the review content and turn answers into feedback.
"""
