#!/usr/bin/env bash
# Sets up GraphCast from Zero on a fresh rented GPU box (written for AutoDL, fine on any Linux host):
# clone the repository, create the Python environment, install the package, run `invoke setup`.
# Running it again is safe: each step leaves alone what is already in place.
#
#   bash autodl_bootstrap.sh --repo URL                 # on the box
#   ssh -p PORT root@HOST bash -s -- --repo URL < scripts/autodl_bootstrap.sh   # from a laptop
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: autodl_bootstrap.sh [options] [REPO_URL [CODE_DIR]]

Options:
  --repo URL             repository to clone (default: $GRAPHCAST_REPO_URL, else the origin of
                         the checkout this script lives in)
  --code-dir DIR         where the code goes (default: $GRAPHCAST_CODE_DIR, else /root/graphcast-zero)
  --branch NAME          branch or tag to clone
  --data-disk DIR        the large data disk (default: /root/autodl-tmp, AutoDL's data disk)
  --data-dir DIR         data folder (default: $GRAPHCAST_DATA_DIR, else DATA_DISK/graphcast-data
                         when the data disk exists, else CODE_DIR/data)
  --venv-on-data-disk    put the environment on the data disk (DATA_DISK/venvs/graphcast) and link
                         it as CODE_DIR/.venv; the system disk is small and JAX with CUDA takes GBs
  --venv DIR             put the environment in DIR (linked as CODE_DIR/.venv)
  --python PY            interpreter for the environment (default: python3.11, 3.12, 3.10 or python3)
  --pypi-mirror URL      PyPI index to install from (default: $PIP_INDEX_URL; unset: pip's own
                         configuration, where AutoDL images usually name a mirror)
  --extras LIST          extras to install (default: gpu,dev when nvidia-smi exists, else dev)
  --autodl-proxy         clone through AutoDL's academic proxy (source /etc/network_turbo)
  --skip-install         clone and configure only: no environment, no pip, no `invoke setup`
  --dry-run              print the commands that would change something, change nothing
  -h, --help             show this help
EOF
}

REPO_URL=${GRAPHCAST_REPO_URL:-}
CODE_DIR=${GRAPHCAST_CODE_DIR:-/root/graphcast-zero}
BRANCH=""
DATA_DISK=/root/autodl-tmp
DATA_DIR=${GRAPHCAST_DATA_DIR:-}
VENV_DIR=""
VENV_ON_DATA_DISK=0
PYTHON=""
MIRROR=${PIP_INDEX_URL:-}
EXTRAS=""
AUTODL_PROXY=0
SKIP_INSTALL=0
DRY_RUN=0

die() { echo "autodl_bootstrap: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# Runs a command, or only prints it (shell-quoted) under --dry-run.
run() {
  if ((DRY_RUN)); then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

parse_args() {
  local positional=()
  while (($#)); do
    case $1 in
      --repo) REPO_URL=${2:?--repo needs a URL}; shift ;;
      --code-dir) CODE_DIR=${2:?--code-dir needs a folder}; shift ;;
      --branch) BRANCH=${2:?--branch needs a name}; shift ;;
      --data-disk) DATA_DISK=${2:?--data-disk needs a folder}; shift ;;
      --data-dir) DATA_DIR=${2:?--data-dir needs a folder}; shift ;;
      --venv-on-data-disk) VENV_ON_DATA_DISK=1 ;;
      --venv) VENV_DIR=${2:?--venv needs a folder}; shift ;;
      --python) PYTHON=${2:?--python needs an interpreter}; shift ;;
      --pypi-mirror) MIRROR=${2:?--pypi-mirror needs a URL}; shift ;;
      --extras) EXTRAS=${2:?--extras needs a list such as gpu,dev}; shift ;;
      --autodl-proxy) AUTODL_PROXY=1 ;;
      --skip-install) SKIP_INSTALL=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      -*) usage >&2; echo "autodl_bootstrap: unknown option $1" >&2; exit 2 ;;
      *) positional+=("$1") ;;
    esac
    shift
  done
  ((${#positional[@]} <= 2)) || { usage >&2; exit 2; }
  if ((${#positional[@]} >= 1)); then REPO_URL=${positional[0]}; fi
  if ((${#positional[@]} == 2)); then CODE_DIR=${positional[1]}; fi
  return 0
}

# Absolute paths, so that invoke.yaml, ~/.bashrc and the .venv link work from any folder.
absolute() { if [[ -z $1 || $1 == /* ]]; then echo "$1"; else echo "$PWD/${1#./}"; fi; }

# The origin of the checkout holding this script (empty when piped through `bash -s`).
script_origin() {
  local source=${BASH_SOURCE[0]:-}
  [[ -n $source && -f $source ]] || return 0
  git -C "$(dirname "$source")" remote get-url origin 2>/dev/null || true
}

clone_code() {
  if [[ -e $CODE_DIR/.git ]]; then
    say "code: $CODE_DIR is already a checkout; leaving it as it is"
    local origin
    origin=$(git -C "$CODE_DIR" remote get-url origin 2>/dev/null || true)
    if [[ -n $REPO_URL && $origin != "$REPO_URL" ]]; then
      echo "note: its origin is ${origin:-(none)}, not $REPO_URL" >&2
    fi
    return 0
  fi
  if [[ -d $CODE_DIR && -n $(ls -A "$CODE_DIR") ]]; then
    die "$CODE_DIR exists, is not empty and is not a git checkout; pass another --code-dir"
  fi
  [[ -n $REPO_URL ]] || REPO_URL=$(script_origin)
  [[ -n $REPO_URL ]] || die "no repository to clone: pass --repo URL (or set GRAPHCAST_REPO_URL)"
  local clone=(git clone)
  [[ -z $BRANCH ]] || clone+=(--branch "$BRANCH")
  clone+=("$REPO_URL" "$CODE_DIR")
  say "code: cloning $REPO_URL into $CODE_DIR"
  if ((AUTODL_PROXY)); then
    [[ -f /etc/network_turbo ]] || die "--autodl-proxy: /etc/network_turbo not found (not an AutoDL box?)"
    # The proxy is for the clone only: pip is faster through the mirror without it.
    (
      set +u
      # shellcheck source=/dev/null
      if ((DRY_RUN)); then echo "+ source /etc/network_turbo"; else source /etc/network_turbo; fi
      run "${clone[@]}"
    )
  else
    run "${clone[@]}" || die "clone failed; on AutoDL try --autodl-proxy for GitHub"
  fi
}

pick_data_dir() {
  if [[ -z $DATA_DIR ]]; then
    if [[ -d $DATA_DISK ]]; then DATA_DIR=$DATA_DISK/graphcast-data; else DATA_DIR=$CODE_DIR/data; fi
  fi
  say "data: $DATA_DIR"
  run mkdir -p "$DATA_DIR"
}

# Keeps a machine-local file out of `git status` in the checkout, without touching .gitignore.
exclude_locally() {
  local exclude=$CODE_DIR/.git/info/exclude
  if ((DRY_RUN)); then echo "+ add /$1 to $exclude"; return; fi
  mkdir -p "$(dirname "$exclude")"
  grep -qxF "/$1" "$exclude" 2>/dev/null || echo "/$1" >>"$exclude"
}

# Makes every way in use the data folder: invoke.yaml for invoke (VS Code tasks, debugging), and
# GRAPHCAST_DATA_DIR in ~/.bashrc for terminals and notebooks. Only when it is not ./data.
remember_data_dir() {
  [[ $DATA_DIR != "$CODE_DIR/data" ]] || return 0
  local config=$CODE_DIR/invoke.yaml begin="# >>> graphcast-zero >>>" end="# <<< graphcast-zero <<<"
  if ((DRY_RUN)); then
    echo "+ write data_dir: $DATA_DIR to $config"
    echo "+ export GRAPHCAST_DATA_DIR=$DATA_DIR in $HOME/.bashrc"
    return
  fi
  if [[ ! -e $config ]]; then
    printf 'data_dir: %s\n' "$DATA_DIR" >"$config"
    exclude_locally invoke.yaml
  elif ! grep -qxF "data_dir: $DATA_DIR" "$config"; then
    echo "note: $config exists; add the line 'data_dir: $DATA_DIR' to it yourself" >&2
  fi
  local rc=$HOME/.bashrc
  touch "$rc"
  sed -i "/^$begin\$/,/^$end\$/d" "$rc"
  printf '%s\nexport GRAPHCAST_DATA_DIR=%q\n%s\n' "$begin" "$DATA_DIR" "$end" >>"$rc"
}

find_python() {
  local candidate
  for candidate in ${PYTHON:-python3.11 python3.12 python3.10 python3}; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
      PYTHON=$(command -v "$candidate")
      return
    fi
  done
  die "no Python 3.10-3.12 found${PYTHON:+ at $PYTHON}; on AutoDL: conda create -y -p $DATA_DISK/py311 python=3.11, then pass --python $DATA_DISK/py311/bin/python"
}

make_venv() {
  local link=$CODE_DIR/.venv
  if ((VENV_ON_DATA_DISK)) && [[ -z $VENV_DIR ]]; then VENV_DIR=$DATA_DISK/venvs/graphcast; fi
  VENV_DIR=${VENV_DIR:-$link}
  if [[ -x $VENV_DIR/bin/python ]]; then
    say "environment: $VENV_DIR already exists"
  else
    find_python
    say "environment: creating $VENV_DIR with $PYTHON"
    run mkdir -p "$(dirname "$VENV_DIR")"
    run "$PYTHON" -m venv "$VENV_DIR" ||
      die "venv failed; on Debian/Ubuntu: apt-get install python3-venv (or pass --python)"
  fi
  [[ $VENV_DIR != "$link" ]] || return 0
  if [[ -L $link || ! -e $link ]]; then
    # VS Code (settings, tasks, launch) expects the environment at .venv: link it there.
    run ln -sfn "$VENV_DIR" "$link"
    exclude_locally .venv
  else
    echo "note: $link is a folder; remove it to use $VENV_DIR from VS Code" >&2
  fi
}

install_package() {
  if [[ -z $EXTRAS ]]; then
    # nvidia-smi is there even when AutoDL starts the box without a GPU (no-GPU mode): the GPU
    # wheels are wanted then too, for when it restarts with one.
    if command -v nvidia-smi >/dev/null 2>&1; then EXTRAS=gpu,dev; else EXTRAS=dev; fi
  fi
  local pip=("$VENV_DIR/bin/python" -m pip install)
  if [[ -n $MIRROR ]]; then
    pip+=(--index-url "$MIRROR")
    # Plain-http mirrors (common on AutoDL) must be trusted explicitly.
    if [[ $MIRROR == http://* ]]; then
      local host=${MIRROR#http://}
      pip+=(--trusted-host "${host%%[/:]*}")
    fi
    say "install: .[$EXTRAS] from $MIRROR"
  else
    say "install: .[$EXTRAS] (pip's configured index)"
  fi
  run "${pip[@]}" -e "${CODE_DIR}[${EXTRAS}]"
}

run_setup() {
  say "setup: data folders and the Jupyter kernel"
  run "$VENV_DIR/bin/invoke" --search-root "$CODE_DIR" setup --data-dir "$DATA_DIR"
}

next_steps() {
  cat <<EOF

Done. Next:
  1. In VS Code: Remote-SSH: Connect to Host..., then File > Open Folder... $CODE_DIR
     (install the recommended extensions when asked); Terminal > Run Task... lists the steps.
  2. Or in a terminal:  cd $CODE_DIR && source .venv/bin/activate && invoke fetch-data run-inference
  The data folder is $DATA_DIR. The bucket is abroad: on AutoDL, \`source /etc/network_turbo\`
  first (or \`invoke fetch-data --autodl-proxy\`), and \`invoke fetch-data --source demo\` works offline.
EOF
}

main() {
  parse_args "$@"
  CODE_DIR=$(absolute "$CODE_DIR") DATA_DIR=$(absolute "$DATA_DIR")
  DATA_DISK=$(absolute "$DATA_DISK") VENV_DIR=$(absolute "$VENV_DIR")
  if ((DRY_RUN)); then say "dry run: nothing will be changed"; fi
  clone_code
  pick_data_dir
  remember_data_dir
  if ((SKIP_INSTALL)); then
    say "--skip-install: no environment, no pip, no invoke setup"
    VENV_DIR=${VENV_DIR:-$CODE_DIR/.venv}
  else
    make_venv
    install_package
    run_setup
  fi
  next_steps
}

main "$@"
