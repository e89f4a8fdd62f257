"""What people told us, combined: one consensus label per reviewed trace with its probability, how far each
reviewer can be trusted, and how much reviewers agree. Inference asks for second opinions from it,
retraining weighs training rows by it, monitoring and the dashboard report it.
"""
