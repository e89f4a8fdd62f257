# Airflow 3.3 with airflow-feedback-loop installed from this checkout, pinned by uv.lock.
# Built by docker-compose.yaml; the same image runs every Airflow component and the Celery workers.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/feedback-loop
COPY --chown=airflow:root pyproject.toml uv.lock README.md ./
COPY --chown=airflow:root include ./include
COPY --chown=airflow:root sql ./sql
COPY --chown=airflow:root config ./config

# Dependencies exactly as locked (CeleryExecutor extra included), then the package itself without deps.
RUN pip install --no-cache-dir "uv==0.13.9" \
 && uv export --locked --no-dev --extra celery --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
 && uv pip install --python "$(command -v python)" --no-cache -r /tmp/requirements.txt \
 && uv pip install --python "$(command -v python)" --no-cache --no-deps . \
 && rm /tmp/requirements.txt

WORKDIR /opt/airflow
