# syntax=docker/dockerfile:1
#
# graphgate service image.
#
#   docker build -t graphgate .
#   docker run --env-file graphgate.env -p 50051:50051 -p 8080:8080 -v graphgate-data:/data graphgate
#
# The image defaults to GRAPHGATE_ENV=production, so it refuses to start
# without its real settings (C21): DATABASE_URL with sslmode, VALKEY_URL,
# JWT_SECRET_KEY, BACKUP_ENCRYPTION_KEYS, AWS_REGION. For production, pin
# the base image by digest (python:3.12-slim@sha256:...).

ARG PYTHON_IMAGE=python:3.12-slim

# ---------------------------------------------------------------- build ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the distribution is built from (setup.py maps these folders onto
# the graphgate namespace); nothing else of the build context is copied.
COPY pyproject.toml setup.py README.md ./
COPY server/ server/
COPY interceptors/ interceptors/
COPY clients/ clients/
COPY gen/ gen/
RUN pip install .

# -------------------------------------------------------------- runtime ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="graphgate" \
      org.opencontainers.image.description="Multi-tenant LadybugDB graphs behind gRPC contracts" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid (10001) that owns nothing but the data dir.
RUN groupadd --system --gid 10001 graphgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin graphgate \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

# The venv stays owned by root: the service cannot rewrite its own code.
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GRAPHGATE_ENV=production \
    GRAPHGATE_DATA_DIR=/data \
    GRAPHGATE_GRPC_LISTEN=0.0.0.0:50051 \
    GRAPHGATE_HTTP_LISTEN=0.0.0.0:8080

# Graphs (one LadybugDB database each) and temporary files live here.
VOLUME ["/data"]
WORKDIR /data

USER 10001:10001

# 50051: gRPC (API, health, reflection); 8080: REST sidecar.
EXPOSE 50051 8080

# grpc.health.v1 Check against the local gRPC port; exits 0 only when SERVING.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/venv/bin/python", "-m", "graphgate.server.healthcheck"]

ENTRYPOINT ["graphgate"]
CMD ["serve"]
