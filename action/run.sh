#!/usr/bin/env bash
# The composite action's only step: run mltest in Docker (default) or on the host.
# Inputs arrive as MLTEST_* environment variables set by action.yml; the Python entrypoint
# validates and uses them, this script only decides where Python runs.
set -euo pipefail

action_dir="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set; run this as a GitHub Action}"
# Names that look like credentials: the same pattern as mltest/worker_handle.py's _SECRET_NAME.
SECRET_NAME='TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|COOKIE|SESSION|AUTH|(^|_)KEY($|_)|APIKEY'

# Stop before the suite runs. The error is published as the run's verdict (the same sticky PR
# comment a finished run updates, the job summary, an annotation, the outputs) by the runner's
# own python3 with the standard library only (-S: no site-packages, -E: no PYTHONPATH), since
# no image or virtualenv may exist yet; it exits with fail-on's code (2, or 0 for nothing).
# Without a python3 >= 3.10, or if it fails: the annotation and the outputs only, said so.
give_up() {
    local code=0 fail_on="${MLTEST_FAIL_ON:-failure}"
    if command -v python3 >/dev/null 2>&1 &&
        python3 -S -E -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        python3 -S -E "$action_dir/entrypoint.py" error "$1" "$2" || code=$?
        if [ "$code" -eq 0 ] || [ "$code" -eq 2 ]; then exit "$code"; fi
        echo "::warning title=mltest: error not published::publishing this error with the \
runner's python3 failed (exit code $code, see above): it is not in the PR comment or the job \
summary, and an earlier mltest comment on the pull request may be out of date."
    else
        echo "::warning title=mltest: error not published::python3 (3.10 or newer) is not on \
the runner's PATH, so this error is not in the PR comment or the job summary, and an earlier \
mltest comment on the pull request may be out of date. Install python3 on the runner."
    fi
    echo "::error title=mltest: $1::$2"
    if [ -n "${GITHUB_OUTPUT:-}" ]; then
        printf 'result=error\npassed=0\nfailed=0\nerrors=1\n' >>"$GITHUB_OUTPUT"
    fi
    if [ "${fail_on,,}" = nothing ]; then exit 0; fi
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
        python3 -m venv --system-site-packages "$venv" || give_up "host setup" "python3 -m venv \
could not create $venv (see above); host mode needs python3 >= 3.10 with venv (Debian and \
Ubuntu: apt-get install python3-venv), or use mode: docker."
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$action_dir" ||
        give_up "host setup" "pip could not install mltest from $action_dir into $venv (see \
pip's messages above): is the package index reachable from the runner (or set PIP_INDEX_URL \
in the step's env), and is the runner's torch one mltest supports (>= 2.1)?"
    # The runner's torch is kept (pip installs none when it satisfies mltest): say which one
    # runs, read from its metadata (importing torch would cost seconds).
    "$venv/bin/python" -c 'import importlib.metadata as m; d = m.distribution("torch")
print("mltest: host mode uses torch", d.version, "from", d.locate_file(str()))' || true
    # exec: the supervisor takes this process's place, receives the runner's cancel signals
    # itself and wipes the token from its environment before any model code runs.
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

# The image: pulled (with a registry login) or built; a failure is give_up with its cause.
# shellcheck source=action/image.sh
source "$action_dir/action/image.sh"
get_image "$action_dir"
unset MLTEST_REGISTRY_PASSWORD # needed for the pull alone: nothing started from here gets it

# Two containers. The first runs the suite (the pull request's code): it gets the workspace
# read-only (writable only under `baselines: update`), the report folder writable, no token,
# none of the runner's file-command paths, no network unless asked for, no capabilities.
# The second runs no user code: it reads the report and publishes with the token.
workspace="${GITHUB_WORKSPACE:-$PWD}"
report_dir="${MLTEST_REPORT_DIR:-mltest-report}"
mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"
stack_dir="$(mktemp -d "${RUNNER_TEMP:-/tmp}/mltest-tmp.XXXXXX")"
cidfile="$stack_dir/suite.cid"

workspace_mode=ro
if [ "${MLTEST_BASELINES:-compare}" = update ]; then workspace_mode=rw; fi

event_mount=()
if [ -n "${GITHUB_EVENT_PATH:-}" ] && [ -f "$GITHUB_EVENT_PATH" ]; then
    event_mount=(--volume "$GITHUB_EVENT_PATH:$GITHUB_EVENT_PATH:ro")
fi

# `-e NAME` copies the value from this environment, so no value appears on a command line.
context_env=()
for name in CI GITHUB_ACTIONS GITHUB_REPOSITORY GITHUB_EVENT_NAME GITHUB_EVENT_PATH \
    GITHUB_API_URL GITHUB_SERVER_URL GITHUB_RUN_ID GITHUB_RUN_ATTEMPT GITHUB_SHA GITHUB_REF \
    GITHUB_WORKSPACE MLTEST_CONFIG MLTEST_REPORT_DIR MLTEST_COMMENT MLTEST_COMMENT_ID \
    MLTEST_FAIL_ON MLTEST_GPUS MLTEST_MAX_TIME MLTEST_BASELINES MLTEST_NETWORK MLTEST_ENV \
    MLTEST_ALLOW_SECRET_ENV; do
    context_env+=(--env "$name")
done

# Input env: a line NAME copies the runner's variable into the suite's container (`--env NAME`,
# so the value is on no command line); NAME=value lines travel inside MLTEST_ENV. The
# supervisor validates every entry (a credential-like name not in allow-secret-env is exit 2)
# before any model code runs; here a credential-like name is not even copied unless allowed,
# and the job's token, the runner's file commands and MLTEST_* never are.
passed_env=()
read -r -a allowed_secrets <<<"$(tr '\n' ' ' <<<"${MLTEST_ALLOW_SECRET_ENV:-}")"
while IFS= read -r entry; do
    read -r name _ <<<"$entry"
    if ! [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then continue; fi
    case "$name" in
        MLTEST_* | GITHUB_TOKEN | GH_TOKEN | ACTIONS_* | GITHUB_ENV | GITHUB_PATH | GITHUB_OUTPUT | \
            GITHUB_STEP_SUMMARY | GITHUB_STATE) continue ;;
    esac
    shopt -s nocasematch
    if [[ "$name" =~ $SECRET_NAME ]] && ! [[ " ${allowed_secrets[*]} " == *" $name "* ]]; then
        shopt -u nocasematch
        continue
    fi
    shopt -u nocasematch
    passed_env+=(--env "$name")
done <<<"${MLTEST_ENV:-}"
# The runner's variable names (never values): a lookup of one the model code did not get is
# named in a notice, with the input that passes it.
MLTEST_RUNNER_ENV_NAMES="$(compgen -e | tr '\n' ' ')"
export MLTEST_RUNNER_ENV_NAMES

memory_flag=()
if [ -n "${MLTEST_MEMORY:-}" ]; then memory_flag=(--memory "$MLTEST_MEMORY"); fi
# DataLoader workers pass batches through /dev/shm; Docker's 64m default kills them.
shm_size="${MLTEST_SHM_SIZE:-2g}"
if ! [[ "$shm_size" =~ ^[0-9]+[bkmgBKMG]?$ ]]; then
    give_up "bad action input" "input shm-size (MLTEST_SHM_SIZE) must be a size such as 2g or \
512m; got '$shm_size'"
fi

read -r -a extra <<<"${MLTEST_DOCKER_OPTIONS:-}"

# Cancelling the job (SIGINT, then SIGTERM) reaches the suite through `docker kill`; --init
# makes the supervisor a normal child that handles it and writes a final, flagged report.
forward() {
    if [ -s "$cidfile" ]; then docker kill --signal TERM "$(cat "$cidfile")" >/dev/null 2>&1 || true; fi
}
trap forward INT TERM

# No root-owned files in the workspace of a self-hosted runner: run as the runner's user.
docker run --rm --init \
    --cidfile "$cidfile" \
    --user "$(id -u):$(id -g)" \
    --network "${MLTEST_NETWORK:-none}" \
    --cap-drop ALL \
    --security-opt no-new-privileges \
    --pids-limit 4096 \
    --shm-size "$shm_size" \
    "${memory_flag[@]}" \
    "${gpu_flag[@]}" \
    --volume "$workspace:$workspace:$workspace_mode" \
    --volume "$report_dir:$report_dir:rw" \
    "${event_mount[@]}" \
    --tmpfs /tmp:exec \
    --workdir "$PWD" \
    --env HOME=/tmp \
    "${context_env[@]}" \
    --env MLTEST_RUNNER_ENV_NAMES \
    "${passed_env[@]}" \
    "${extra[@]}" \
    "$image" suite &
suite_pid=$!
suite_code=0
wait "$suite_pid" || suite_code=$?
while kill -0 "$suite_pid" 2>/dev/null; do # a signal interrupted `wait`: the suite goes on
    suite_code=0
    wait "$suite_pid" || suite_code=$?
done
trap - INT TERM
rm -rf "$stack_dir"

file_mounts=()
for file in "${GITHUB_OUTPUT:-}" "${GITHUB_STEP_SUMMARY:-}"; do
    if [ -n "$file" ] && [ -f "$file" ]; then file_mounts+=(--volume "$file:$file:rw"); fi
done

# The workspace read-only: under `baselines: update` the recorded folder is checked there
# before the outputs name it for the upload step.
MLTEST_SUITE_EXIT_CODE="$suite_code" exec docker run --rm --init \
    --user "$(id -u):$(id -g)" \
    --network host \
    --cap-drop ALL \
    --security-opt no-new-privileges \
    --volume "$workspace:$workspace:ro" \
    --volume "$report_dir:$report_dir:ro" \
    "${event_mount[@]}" \
    "${file_mounts[@]}" \
    --workdir "$PWD" \
    --env HOME=/tmp \
    "${context_env[@]}" \
    --env GITHUB_OUTPUT --env GITHUB_STEP_SUMMARY \
    --env MLTEST_SUITE_EXIT_CODE --env MLTEST_GITHUB_TOKEN \
    "$image" publish
