# The image behind docker-compose.yml's services (worker, sinks, topics, camera).
# `sim` brings the photo scenes `driftline simulate` plays; the compose file runs
# Apache Kafka and Redis itself, so the embedded broker (`local`) is not needed.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline driftline
COPY schemas schemas
COPY producers producers
COPY processors processors
COPY sinks sinks
RUN pip install --no-cache-dir ".[sim]"
# Prometheus metrics, when DRIFTLINE_METRICS_PORT=9100 (docker-compose.yml sets it).
EXPOSE 9100
ENTRYPOINT ["driftline"]
