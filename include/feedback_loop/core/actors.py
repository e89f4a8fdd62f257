"""Who is acting, for the audit trails of promotions, rollbacks and eval-case changes."""

from __future__ import annotations

import getpass
import os

ENV_ACTOR = "FEEDBACK_LOOP_ACTOR"


def cli_actor() -> str:
    """The OS user of a command-line call, unless FEEDBACK_LOOP_ACTOR names someone else."""
    return os.environ.get(ENV_ACTOR) or f"cli:{getpass.getuser()}"
