# The mltest image: a CUDA PyTorch runtime plus mltest. The action runs it with
# `docker run --gpus ...` (see action/run.sh). Tests build it on a local base with
# --build-arg BASE_IMAGE=... and wheels in docker/wheels (PIP_FIND_LINKS, PIP_NO_INDEX).
#
# pip installs in a build stage, into staging roots (`pip install --root`); the image copies
# only those. So the wheels a test build brings (docker/wheels, ~240 MB) and pip's build files
# are in no layer of the image, with the classic builder too (no BuildKit `RUN --mount`).
ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime

FROM ${BASE_IMAGE} AS base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

FROM base AS install
# pip settings as build arguments (they reach RUN as environment variables); unset in a
# release build, set by the tests to install offline from docker/wheels.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_BREAK_SYSTEM_PACKAGES
WORKDIR /src
COPY docker/wheels/ /opt/wheels/

# Dependencies first, from pyproject.toml alone, so editing mltest's source reuses this layer.
# pip resolves against the base image's packages: its torch satisfies the torch requirement
# (no second, CPU-only torch), and only what is missing lands under /deps. The placeholder
# package that carried the requirements is taken out of /deps again, and its build folder
# out of /src (setuptools would put its empty mltest/__init__.py in the real wheel).
# upgraded.txt names the base's packages that /deps holds a newer version of: the image
# uninstalls those first, as pip would have.
COPY pyproject.toml README.md ./
RUN mkdir -p mltest /deps && touch mltest/__init__.py \
    && python3 -m pip list --format=freeze > base.txt \
    && python3 -m pip install --root /deps . \
    && find /deps -depth \( -path '*-packages/mltest' -o -path '*-packages/mltest_action-*' \
        -o -path '*/bin/mltest' \) -exec rm -rf {} + \
    && python3 -c "import pathlib, re; key = lambda s: re.sub(r'[-_.]+', '-', s).lower(); \
base = {key(line.split('==')[0]) for line in open('base.txt') if '==' in line}; \
new = {key(p.name.split('-')[0]) for p in pathlib.Path('/deps').rglob('*.dist-info')}; \
open('/upgraded.txt', 'w').write(''.join(n + chr(10) for n in sorted(base & new)))" \
    && rm -rf mltest build ./*.egg-info base.txt

COPY mltest ./mltest
COPY entrypoint.py ./
RUN python3 -m pip install --no-deps --root /app .

FROM base
ARG PIP_BREAK_SYSTEM_PACKAGES
COPY --from=install /upgraded.txt /tmp/upgraded.txt
# A package the base's own package manager installed may refuse: the newer copy shadows it.
RUN while read -r name; do \
        python3 -m pip uninstall --yes "$name" || echo "mltest: the base's $name stays, shadowed"; \
    done < /tmp/upgraded.txt \
    && rm /tmp/upgraded.txt
COPY --from=install /deps/ /
COPY --from=install /app/ /
WORKDIR /opt/mltest
COPY entrypoint.py ./

ENTRYPOINT ["python3", "/opt/mltest/entrypoint.py"]
