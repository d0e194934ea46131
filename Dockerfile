# One image recipe for the four services and the reference pipeline worker.
#   docker build --build-arg SERVICE=device -t opencap/device .
# SERVICE picks what the image runs by default: the service's API. The same image also runs
# (as docker-compose.yml and deploy/k8s do, by overriding the command):
#   worker:     python -m <service>_service.worker
#   migrations: alembic -c services/<service>/alembic.ini upgrade head
#   pipeline:   python -m pipeline.reference
# The health check asks HEALTH_URL: the API's /healthz by default, a worker's metrics port
# (http://127.0.0.1:9100/metrics) when it runs a worker.
FROM python:3.11-slim
ARG SERVICE=session
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SERVICE=${SERVICE} HEALTH_URL=http://127.0.0.1:8000/healthz
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
HEALTHCHECK --interval=15s --timeout=3s --retries=4 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTH_URL'], timeout=3)"
CMD ["sh", "-c", "exec uvicorn ${SERVICE}_service.main:create_app --factory --host 0.0.0.0 --port 8000"]
