-- Record what a refresh was made from.
INSERT INTO consensus_refreshes (model_name, answers, last_answer, settings, refreshed_at)
VALUES (%(model_name)s, %(answers)s, %(last_answer)s, %(settings)s, now())
ON CONFLICT (model_name) DO UPDATE
SET answers = EXCLUDED.answers, last_answer = EXCLUDED.last_answer, settings = EXCLUDED.settings,
    refreshed_at = EXCLUDED.refreshed_at
