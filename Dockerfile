# syntax=docker/dockerfile:1
# The fundflow worker image: `docker build -t fundflow:0.1.0 .`, then `docker run fundflow:0.1.0` (= worker).
# Wheels are built in a throw-away stage, so compilers never reach the runtime image.
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
# rules/ is also package data (the pack shipped with fundflow, stream/rulepack in the wheel)
COPY rules ./rules
# The package and its runtime dependencies only: no test extras in a production image.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11.13-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    FUNDFLOW_RULES_DIR=/etc/fundflow/rules \
    FUNDFLOW_DATA_DIR=/var/lib/fundflow \
    FUNDFLOW_WEB_PORT=6066
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels fundflow \
 && groupadd --system --gid 10001 fundflow \
 && useradd --system --uid 10001 --gid fundflow --home-dir /var/lib/fundflow --shell /usr/sbin/nologin fundflow \
 && mkdir -p /var/lib/fundflow /etc/fundflow/rules \
 && chown fundflow:fundflow /var/lib/fundflow
# The shipped rule pack; deployments mount their own over it (compose: ./rules, k8s: a ConfigMap).
COPY rules/ /etc/fundflow/rules/
WORKDIR /var/lib/fundflow
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('FUNDFLOW_WEB_PORT', '6066'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=3).status != 200)"]
ENTRYPOINT ["fundflow"]
CMD ["worker"]
