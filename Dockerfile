# One image, two entrypoints: `edgeroll operator` (hub) and `edgeroll cache` (edges).
# Build it with `make image` (hack/build-image.sh). The build has no network: the host puts the
# edgeroll wheel in build/image/app and its dependencies' wheels in build/image/wheels, and pip
# installs them from there. BASE_IMAGE is a Debian bookworm image with python3 (3.11) and its venv
# module: the stock one, or localhost:5000/python:3.11-slim-bookworm, which hack/kind-setup.sh
# builds from Debian packages when no registry answers.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_INDEX=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# pip has a venv of its own; /opt/edgeroll gets edgeroll and its dependencies, nothing else.
RUN python3 -m venv /opt/pip \
 && python3 -m venv --without-pip /opt/edgeroll
# Dependencies first, in their own layer: they change far less often than edgeroll.
COPY build/image/wheels /wheels
RUN /opt/pip/bin/pip --python /opt/edgeroll/bin/python3 install --no-index --find-links /wheels /wheels/*.whl
COPY build/image/app /app
RUN /opt/pip/bin/pip --python /opt/edgeroll/bin/python3 install --no-index --no-deps /app/*.whl \
 && /opt/pip/bin/pip --python /opt/edgeroll/bin/python3 check

FROM ${BASE_IMAGE}
# Non-root with a fixed UID so `runAsNonRoot` can be verified by the kubelet.
RUN groupadd --system --gid 65532 edgeroll \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin edgeroll
COPY --from=build /opt/edgeroll /opt/edgeroll
# PATH is spelt out: the Debian-built base sets none, so `$PATH` would be empty there.
ENV PATH=/opt/edgeroll/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: kopf liveness (operator) or the cache; 8081: the operator's /metrics (--metrics-addr).
EXPOSE 8080 8081
ENTRYPOINT ["edgeroll"]
CMD ["operator"]
