FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline driftline
COPY schemas schemas
COPY producers producers
COPY processors processors
COPY sinks sinks
RUN pip install --no-cache-dir .
ENTRYPOINT ["driftline"]
