# One image, two entrypoints: `edgeroll operator` (hub) and `edgeroll cache` (edges).
# Build: docker build -t ghcr.io/edgeroll/edgeroll:0.1.0 .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/edgeroll \
 && /opt/edgeroll/bin/pip install --upgrade pip \
 && /opt/edgeroll/bin/pip install .

FROM python:3.11-slim-bookworm
# Non-root with a fixed UID so `runAsNonRoot` can be verified by the kubelet.
RUN groupadd --system --gid 65532 edgeroll \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin edgeroll
COPY --from=build /opt/edgeroll /opt/edgeroll
ENV PATH=/opt/edgeroll/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["edgeroll"]
CMD ["operator"]
