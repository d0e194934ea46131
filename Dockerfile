# One image for the four services and the reference pipeline worker; the command picks the
# process (see docker-compose.yml and deploy/k8s):
#   API:        uvicorn <name>_service.main:create_app --factory --host 0.0.0.0 --port 8000
#   worker:     python -m <name>_service.worker
#   migrations: alembic -c services/<name>/alembic.ini upgrade head
#   pipeline:   python -m pipeline.reference
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 opencap
WORKDIR /app
COPY requirements.txt ./
# Pinned third-party dependencies first (a cached layer), then the workspace packages.
RUN grep -v '^-e ' requirements.txt > /tmp/deps.txt && pip install -r /tmp/deps.txt
COPY shared ./shared
COPY services ./services
COPY pipeline ./pipeline
RUN pip install --no-deps ./shared ./services/session ./services/device ./services/upload \
    ./services/results ./pipeline
USER 10001
EXPOSE 8000 9100
