#!/usr/bin/env bash
# The composite action's only step: run mltest in Docker (default) or on the host.
# Inputs arrive as MLTEST_* environment variables set by action.yml; the Python entrypoint
# validates and uses them, this script only decides where Python runs.
set -euo pipefail

action_dir="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set; run this as a GitHub Action}"

# Stop before running anything: an error annotation, result=error, and the exit code that
# fail-on asks for (the same rule as the entrypoint's).
give_up() {
    echo "::error title=mltest: $1::$2"
    if [ -n "${GITHUB_OUTPUT:-}" ]; then
        printf 'result=error\npassed=0\nfailed=0\nerrors=1\n' >>"$GITHUB_OUTPUT"
    fi
    if [ "${MLTEST_FAIL_ON:-failure}" = nothing ]; then exit 0; fi
    exit 2
}

mode="${MLTEST_MODE:-docker}"
case "$mode" in
    docker | host) ;;
    *) give_up "bad action input" "input mode (MLTEST_MODE) must be one of docker, host; got '$mode'" ;;
esac

if [ "$mode" = host ]; then
    # A virtualenv that sees the runner's packages: a CUDA torch already installed on the
    # runner (or in the job container) is used as is instead of being downloaded again.
    venv="${RUNNER_TEMP:-/tmp}/mltest-venv"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv --system-site-packages "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$action_dir"
    exec "$venv/bin/python" "$action_dir/entrypoint.py"
fi

# --- docker mode -----------------------------------------------------------------------------
gpu_flag=()
if [ -n "${MLTEST_GPUS:-}" ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
        give_up "no GPU" "input gpus is '$MLTEST_GPUS' but this runner shows no NVIDIA GPU \
(nvidia-smi is missing or lists none). Check the NVIDIA driver and the NVIDIA Container \
Toolkit on the runner, that runs-on selects a GPU runner (e.g. [self-hosted, gpu]), or set \
gpus: '' to run on CPU."
    fi
    gpu_flag=(--gpus "$MLTEST_GPUS")
fi

image="${MLTEST_IMAGE:-}"
if [ -z "$image" ]; then
    case "$action_dir" in
        */_actions/*/*/*)
            # A published action lives in .../_actions/OWNER/REPO/REF: run the image that the
            # release workflow pushed for that same ref.
            rel="${action_dir#*/_actions/}"
            owner="${rel%%/*}"
            rest="${rel#*/}"
            repo="${rest%%/*}"
            ref="${rest#*/}"
            image="ghcr.io/${owner,,}/${repo,,}:${ref//\//-}"
            ;;
        *) image=build ;; # used from a checkout (uses: ./): build what is checked out
    esac
fi
if [ "$image" = build ]; then
    build_args=()
    while IFS= read -r arg; do
        if [ -n "$arg" ]; then build_args+=(--build-arg "$arg"); fi
    done <<<"${MLTEST_BUILD_ARGS:-}"
    image="mltest-action:local"
    echo "mltest: building $image from $action_dir/Dockerfile"
    docker build "${build_args[@]}" --tag "$image" "$action_dir"
fi

# The same paths inside and outside: the workspace, the runner's temp folder (it holds
# GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and the event file) and the working directory.
mounts=()
declare -A seen=()
for dir in "${GITHUB_WORKSPACE:-$PWD}" "${RUNNER_TEMP:-}" "$PWD" \
    "$(dirname "${GITHUB_OUTPUT:-/nonexistent/x}")" \
    "$(dirname "${GITHUB_STEP_SUMMARY:-/nonexistent/x}")" \
    "$(dirname "${GITHUB_EVENT_PATH:-/nonexistent/x}")"; do
    if [ -n "$dir" ] && [ -d "$dir" ] && [ -z "${seen[$dir]:-}" ]; then
        seen[$dir]=1
        mounts+=(--volume "$dir:$dir")
    fi
done

# `-e NAME` copies the value from this environment: the token never appears on a command line.
env_flags=(--env HOME=/tmp)
for name in CI GITHUB_ACTIONS GITHUB_REPOSITORY GITHUB_EVENT_NAME GITHUB_EVENT_PATH \
    GITHUB_API_URL GITHUB_SERVER_URL GITHUB_RUN_ID GITHUB_RUN_ATTEMPT GITHUB_SHA GITHUB_REF \
    GITHUB_WORKSPACE GITHUB_OUTPUT GITHUB_STEP_SUMMARY RUNNER_TEMP \
    MLTEST_CONFIG MLTEST_REPORT_DIR MLTEST_COMMENT MLTEST_COMMENT_ID MLTEST_FAIL_ON \
    MLTEST_GPUS MLTEST_GITHUB_TOKEN; do
    env_flags+=(--env "$name")
done

read -r -a extra <<<"${MLTEST_DOCKER_OPTIONS:-}"

# No root-owned files in the workspace of a self-hosted runner: run as the runner's user.
exec docker run --rm \
    --user "$(id -u):$(id -g)" \
    "${gpu_flag[@]}" \
    "${mounts[@]}" \
    --workdir "$PWD" \
    "${env_flags[@]}" \
    "${extra[@]}" \
    "$image"
