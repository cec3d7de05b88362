# The mltest image: a CUDA PyTorch runtime plus mltest. The action runs it with
# `docker run --gpus ...` (see action/run.sh). Tests build it on a local base with
# --build-arg BASE_IMAGE=... and wheels in docker/wheels (PIP_FIND_LINKS, PIP_NO_INDEX).
ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

# pip settings as build arguments (they reach RUN as environment variables); unset in a
# release build, set by the tests to install offline from docker/wheels.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_BREAK_SYSTEM_PACKAGES
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

WORKDIR /opt/mltest
COPY docker/wheels/ /opt/wheels/

# Dependencies first, from pyproject.toml alone, so editing mltest's source reuses this layer.
# The base image's torch satisfies the torch requirement (no second, CPU-only torch).
COPY pyproject.toml README.md ./
RUN mkdir mltest && touch mltest/__init__.py \
    && python3 -m pip install . \
    && python3 -m pip uninstall --yes mltest-action \
    && rm -rf mltest build ./*.egg-info

COPY mltest ./mltest
COPY entrypoint.py ./
RUN python3 -m pip install --no-deps . && rm -rf build ./*.egg-info /opt/wheels

ENTRYPOINT ["python3", "/opt/mltest/entrypoint.py"]
