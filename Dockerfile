# syntax=docker/dockerfile:1
# The connector's image: `docker build -t personalize-kafka-connector:0.1.0 .`
# The Helm chart (helm/personalize-connector) runs it as
#   personalize-connector run --config /etc/personalize-connector/config.yaml
# as UID 10001 with a read-only root filesystem. See docs/kubernetes.md#the-image.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# ---- builder: wheels for the connector and every dependency --------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only for dependencies without a wheel for this platform (most ship manylinux wheels).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so editing the code does not rebuild them: a stub package with the real metadata.
COPY pyproject.toml README.md ./
RUN mkdir -p connector avro_schemas \
 && touch connector/__init__.py avro_schemas/__init__.py \
 && pip wheel --wheel-dir /wheels . \
 && rm -f /wheels/personalize_kafka_connector-*.whl
COPY connector ./connector
COPY avro_schemas ./avro_schemas
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime: the wheels installed, no compiler, no pip, non-root --------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="personalize-kafka-connector" \
      org.opencontainers.image.description="Kafka to Amazon Personalize PutEvents connector" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/app
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels personalize-kafka-connector \
 && pip uninstall -y pip setuptools wheel \
 && personalize-connector --help >/dev/null
WORKDIR /home/app
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
# /metrics, /healthz, /readyz (observability.metrics_port)
EXPOSE 9400
ENTRYPOINT ["personalize-connector"]
CMD ["run", "--config", "/etc/personalize-connector/config.yaml"]
