# shellcheck shell=bash
# Docker mode's image: which one, a registry login, the pull policy, or a build. Sourced by
# run.sh, which provides give_up; `get_image` leaves the image to run in $image.
#
# Credentials go into a Docker config of our own under RUNNER_TEMP, used only while pulling
# or building and removed right after, so a self-hosted runner keeps no login in the runner
# user's ~/.docker and the containers that follow never see one.

# The registry of the job's token: GHCR (GitHub Enterprise Server: containers.HOST, set in the
# step's env).
github_registry="${MLTEST_GITHUB_REGISTRY:-ghcr.io}"
login_config=""   # the temporary DOCKER_CONFIG while logged in
logged_in_with="" # which credentials the pull used, for the failure message
docker_err=""     # docker's stderr of the last pull or build, for the likely cause

# The registry host of an image reference, read as docker reads it: the first component when
# it names a host (a dot or a port in it, or localhost), else Docker Hub.
image_registry() {
    local name="${1%%@*}"
    local first="${name%%/*}"
    if [ "$first" = "$name" ]; then
        echo docker.io
    elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then
        echo "$first"
    else
        echo docker.io
    fi
}

# Logs in to registry $1 with registry-username/registry-password, or with the job's token
# when $1 is GHCR; no credentials for it: no login (a public image, or the runner's own).
registry_login() {
    local host="$1" user password
    if [ -n "${MLTEST_REGISTRY_USERNAME:-}${MLTEST_REGISTRY_PASSWORD:-}" ]; then
        if [ -z "${MLTEST_REGISTRY_USERNAME:-}" ] || [ -z "${MLTEST_REGISTRY_PASSWORD:-}" ]; then
            give_up "bad action input" "inputs registry-username and registry-password go \
together: set both (the password from a secret) or neither"
        fi
        user="$MLTEST_REGISTRY_USERNAME" password="$MLTEST_REGISTRY_PASSWORD"
        logged_in_with="registry-username $user"
    elif [ "$host" = "$github_registry" ] && [ -n "${MLTEST_GITHUB_TOKEN:-}" ]; then
        # A login the job made itself (e.g. docker/login-action with a token that reads
        # another organisation's packages) wins over the job's token.
        if grep -qsF "\"$host\"" "${DOCKER_CONFIG:-$HOME/.docker}/config.json"; then
            echo "mltest: using the runner's Docker login for $host"
            return 0
        fi
        user="${GITHUB_ACTOR:-github-actions}" password="$MLTEST_GITHUB_TOKEN"
        logged_in_with="the job's token (input github-token, user $user)"
    else
        return 0
    fi

    local own_config="${DOCKER_CONFIG:-$HOME/.docker}"
    login_config="$(mktemp -d "${RUNNER_TEMP:-/tmp}/mltest-docker.XXXXXX")"
    trap registry_logout EXIT
    # Plugins (buildx) stay reachable with the temporary config.
    if [ -d "$own_config/cli-plugins" ]; then ln -s "$own_config/cli-plugins" "$login_config/"; fi
    export DOCKER_CONFIG="$login_config"
    echo "mltest: logging in to $host with $logged_in_with"
    local out
    if ! out="$(printf '%s' "$password" | docker login --username "$user" --password-stdin \
        "$host" 2>&1)"; then
        echo "$out" >&2
        if [ -z "${MLTEST_REGISTRY_USERNAME:-}" ]; then
            # The job's token is only a convenience for GHCR: a public image still pulls.
            echo "::warning title=mltest: no registry login::could not log in to $host with the \
job's token; pulling without a login"
            registry_logout
            logged_in_with=""
            return 0
        fi
        give_up "registry login failed" "could not log in to $host as $user: \
$(docker_cause "$out" "$host")"
    fi
}

# Drops the temporary Docker config and the credentials in it.
registry_logout() {
    if [ -z "$login_config" ]; then return 0; fi
    rm -rf "$login_config"
    login_config=""
    if [ -n "${own_docker_config+set}" ]; then
        export DOCKER_CONFIG="$own_docker_config"
    else
        unset DOCKER_CONFIG
    fi
    trap - EXIT
}

# The likely cause of docker's failure text $1 with registry $2, and what to do, in a sentence.
docker_cause() {
    local text="${1,,}" host="$2"
    local login_hint="input registry-username and registry-password (from secrets)"
    local access_hint="check the image's name and that the credentials may read it"
    if [ "$host" = "$github_registry" ]; then
        login_hint="the job's token (input github-token, the default) with permissions: \
packages: read, or $login_hint"
        access_hint="in the GHCR package's settings, Manage Actions access, add this repository \
with the Read role (and give the job permissions: packages: read), or make the package public \
(Change visibility)"
    fi
    # Phrases, not status numbers: a port or a digest in the text can hold "401" or "404".
    if [[ "$text" == *toomanyrequests* || "$text" == *"too many requests"* || \
        "$text" == *"rate limit"* ]]; then
        echo "the pull rate limit of $host is reached (429 toomanyrequests). Log in ($login_hint: \
logged-in pulls have a higher limit), pull through a registry mirror (registry-mirrors in the \
runner's /etc/docker/daemon.json), or pre-pull the image onto the runner and set pull: missing"
    elif [[ "$text" == *"invalid reference format"* || "$text" == *"invalid reference"* ]]; then
        echo "the name is not an image reference: write NAME:TAG or NAME@sha256:<64 hex digits>"
    elif [[ "$text" == *unauthorized* || "$text" == *"no basic auth"* || \
        "$text" == *"authentication required"* ]]; then
        if [ -n "$logged_in_with" ]; then
            echo "$host refused the credentials of $logged_in_with (401 unauthorized): check \
that they are valid, not expired, and may read the image (for registry-password, the secret \
behind it)"
        else
            echo "$host needs a login (401 unauthorized) and none was given. Give $login_hint"
        fi
    elif [[ "$text" == *denied* || "$text" == *forbidden* ]]; then
        echo "no access (denied${logged_in_with:+ to $logged_in_with}): the image is private, \
the credentials cannot read it, or it does not exist. To fix: $access_hint"
    elif [[ "$text" == *"manifest unknown"* || "$text" == *"not found"* || \
        "$text" == *"no such manifest"* ]]; then
        echo "there is no such tag or digest (manifest unknown). The published mltest images \
exist only for release tags (v1, v1.2.3, a release's commit sha): use the action at a released \
ref, set image: build to build it from the action's Dockerfile, or name an image by digest"
    elif [[ "$text" == *"no such host"* || "$text" == *"connection refused"* || \
        "$text" == *"network is unreachable"* || "$text" == *"i/o timeout"* || \
        "$text" == *"tls handshake timeout"* || "$text" == *"dial tcp"* || \
        "$text" == *"could not resolve"* || "$text" == *"temporary failure in name"* ]]; then
        echo "$host cannot be reached from this runner (network). Check the runner's DNS, proxy \
and firewall, or pre-pull the image (or serve it from a local mirror) and set pull: missing"
    else
        local last
        last="$(grep -i -E 'error|denied|failed' <<<"$1" | tail -n 1 || true)"
        if [ -z "$last" ]; then last="$(grep -v '^[[:space:]]*$' <<<"$1" | tail -n 1 || true)"; fi
        last="${last//'%'/'%25'}"
        echo "docker said: ${last:-nothing (exit code only)}"
    fi
}

# Runs `docker "$@"` with its output shown as it comes and its stderr kept in $docker_err.
docker_showing_errors() {
    local err_file status=0
    err_file="$(mktemp "${RUNNER_TEMP:-/tmp}/mltest-docker-err.XXXXXX")"
    { docker "$@" 2>&1 >&3 3>&- | tee "$err_file" >&2; } 3>&1 || status=$?
    docker_err="$(cat "$err_file")"
    rm -f "$err_file"
    return "$status"
}

# Sets $image to the image to run: the input `image`, the published image of this action's
# ref, or a build; pulls or builds as input `pull` says. $1: the action's folder.
get_image() {
    local action_dir="$1" policy="${MLTEST_PULL:-missing}"
    case "$policy" in
        always | missing | never) ;;
        *) give_up "bad action input" "input pull (MLTEST_PULL) must be one of always, missing, \
never; got '$policy'" ;;
    esac
    if [ -n "${MLTEST_REGISTRY_PASSWORD:-}" ]; then
        # A password that does not come from a secret would otherwise show in the log.
        local line
        while IFS= read -r line; do
            if [ -n "$line" ]; then echo "::add-mask::$line"; fi
        done <<<"$MLTEST_REGISTRY_PASSWORD"
    fi
    if [ -n "${DOCKER_CONFIG+set}" ]; then own_docker_config="$DOCKER_CONFIG"; fi

    image="${MLTEST_IMAGE:-}"
    if [ -z "$image" ]; then
        case "$action_dir" in
            */_actions/*/*/*)
                # A published action lives in .../_actions/OWNER/REPO/REF: run the image that
                # the release workflow pushed for that same ref.
                local rel="${action_dir#*/_actions/}"
                local owner="${rel%%/*}" rest="${rel#*/}"
                local repo="${rest%%/*}" ref="${rest#*/}"
                image="ghcr.io/${owner,,}/${repo,,}:${ref//\//-}"
                ;;
            *) image=build ;; # used from a checkout (uses: ./): build what is checked out
        esac
    fi
    if [ "$image" = build ]; then
        build_image "$action_dir" "$policy"
        return 0
    fi
    if [[ "$image" == *@* ]] && ! [[ "$image" =~ @sha256:[0-9a-f]{64}$ ]]; then
        give_up "bad action input" "input image '$image' names a digest that is not \
sha256:<64 lowercase hex digits>; copy it from the release's job summary or \
\`docker buildx imagetools inspect IMAGE:TAG\`"
    fi

    if [ "$policy" != always ] && docker image inspect "$image" >/dev/null 2>&1; then
        echo "mltest: using $image, already on this runner (pull: $policy)"
        return 0
    fi
    if [ "$policy" = never ]; then
        give_up "image not on this runner" "image $image is not on this runner and input pull \
is never. Pre-pull it (docker pull $image) or bake it into the runner's image, or set pull: \
missing to pull it when absent"
    fi

    local host
    host="$(image_registry "$image")"
    registry_login "$host"
    echo "mltest: pulling $image"
    if ! docker_showing_errors pull "$image"; then
        give_up "could not pull the image" "could not pull $image: $(docker_cause "$docker_err" \
"$host")"
    fi
    registry_logout
}

# Builds the action's Dockerfile as mltest-action:local (input build-args), logged in to the
# base image's registry when credentials for it are given. $1: the action's folder, $2: pull.
build_image() {
    local action_dir="$1" policy="$2" build_args=() base="" arg
    while IFS= read -r arg; do
        if [ -n "$arg" ]; then build_args+=(--build-arg "$arg"); fi
        if [[ "$arg" == BASE_IMAGE=* ]]; then base="${arg#BASE_IMAGE=}"; fi
    done <<<"${MLTEST_BUILD_ARGS:-}"
    if [ -z "$base" ]; then
        base="$(sed -n 's/^ARG BASE_IMAGE=//p' "$action_dir/Dockerfile")"
    fi
    if [ "$policy" = always ]; then build_args+=(--pull); fi
    image="mltest-action:local"
    local host
    host="$(image_registry "$base")"
    registry_login "$host"
    echo "mltest: building $image from $action_dir/Dockerfile"
    if ! docker_showing_errors build "${build_args[@]}" --tag "$image" "$action_dir"; then
        # The build steps' own output (BuildKit's "#N ..." lines) is not docker's error.
        local errors
        errors="$(grep -v -E '^(#|Step [0-9]|[[:space:]]*--->)' <<<"$docker_err" || true)"
        give_up "could not build the image" "could not build $image from the action's \
Dockerfile (base image $base): $(docker_cause "$errors" "$host")"
    fi
    registry_logout
}
