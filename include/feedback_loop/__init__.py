"""airflow-feedback-loop: close the human feedback loop around production ML models."""

__version__ = "0.1.0"
