#!/usr/bin/env bash
# One-command, idempotent setup of the project venv (default: .venv at the repo root).
#
#   bash scripts/setup.sh             # or: make setup
#   VENV=/some/where bash scripts/setup.sh
#   VLA_ROS_DISTRO=jazzy bash scripts/setup.sh   # .venv-jazzy with ROS 2 Jazzy wheels (requirements-jazzy.txt)
#
# VLA_ROS_DISTRO picks the ROS 2 wheels: kilted (default: .venv, requirements.txt) or jazzy (.venv-jazzy,
# requirements-jazzy.txt). (Not ROS_DISTRO: sourcing /opt/ros/<distro>/setup.bash sets that one.)
#
# Steps, each skipped when its inputs did not change (hash stamps kept in $VENV/.vla_ros/):
#   1. create the venv                      (if $VENV/bin/python is missing)
#   2. pip install requirements             (requirements*.txt changed)
#   3. repoint the ROS wheels' CMake files  (idempotent sed; the wheels point at /opt/python/cpXY-cpXY)
#   4. build msg/ with CMake into the venv  (msg/, CMakeLists.txt, package.xml or requirements
#                                            changed; only `cmake --install` when just launch/,
#                                            config/ or the node launchers changed)
#   5. pip install -e . (editable)          (setup.py/pyproject.toml changed, or not installed)
#   6. smoke check: import vla_ros; from vla_ros.msg import Trajectory (always)
#
# Layout in the venv: site-packages/vla_ros/ holds only the GENERATED message code (msg/ and the
# typesupport .so files; its empty __init__.py is removed), the package's own code is the checkout
# (editable .pth), and vla_ros/__init__.py joins the two with pkgutil.extend_path.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISTRO=${VLA_ROS_DISTRO:-kilted}
case $DISTRO in
  kilted) REQUIREMENTS=requirements.txt; VENV=${VENV:-$ROOT/.venv} ;;
  jazzy) REQUIREMENTS=requirements-jazzy.txt; VENV=${VENV:-$ROOT/.venv-jazzy} ;;
  *) printf '[setup] ERROR: VLA_ROS_DISTRO=%s: choose kilted or jazzy\n' "$DISTRO" >&2; exit 2 ;;
esac
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac
PYTHON=${PYTHON:-python3}
STATE=$VENV/.vla_ros
cd "$ROOT"

# A venv Python re-execs itself once to set LD_LIBRARY_PATH (ros-wheels-bootstrapper) unless this
# guard is set; when inherited from another venv's process it would leave us with that venv's libs.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
t0=$SECONDS

# Hash of the given files/folders (names and contents; missing ones count as absent).
hash_paths() {
  local p
  {
    for p in "$@"; do
      if [ -d "$p" ]; then
        find "$p" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 -r sha256sum
      elif [ -f "$p" ]; then
        sha256sum "$p"
      else
        echo "absent $p"
      fi
    done
  } | sha256sum | cut -d' ' -f1
}
stamp_ok() { [ -f "$STATE/$1.stamp" ] && [ "$(cat "$STATE/$1.stamp")" = "$2" ]; }
stamp_set() { mkdir -p "$STATE" && printf '%s\n' "$2" > "$STATE/$1.stamp"; }

# --- 1. venv ---------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" > /dev/null || die "$PYTHON not found (set PYTHON=...)"
  "$PYTHON" - <<'EOF' || die "need CPython 3.10-3.13 on x86_64 (the ROS 2 Kilted wheels exist only there)"
import platform, sys
sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13) and platform.machine() == "x86_64"))
EOF
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip)
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
SITE=$VENV/lib/python$PYVER/site-packages
mkdir -p "$STATE"

# --- 2. requirements -------------------------------------------------------------------------
req_hash=$(hash_paths "$REQUIREMENTS" requirements-dev.txt requirements-robot.txt requirements-nodeps.txt)
if stamp_ok requirements "$req_hash"; then
  log "requirements: up to date ($DISTRO)"
else
  log "requirements: installing $REQUIREMENTS (first time: a minute or two)"
  "${PIP[@]}" install -q -r "$REQUIREMENTS"
  if [ -s requirements-nodeps.txt ]; then "${PIP[@]}" install -q --no-deps -r requirements-nodeps.txt; fi
  stamp_set requirements "$req_hash"
fi

# --- 3. patch the ROS wheels' CMake exports ----------------------------------------------------
# They name the manylinux build interpreter's include dirs; repoint them at this venv's Python and
# numpy. Checked on every run because reinstalling a wheel brings the old paths back.
mapfile -t unpatched < <(grep -l '/opt/python/' "$VENV"/share/*/cmake/*.cmake 2> /dev/null || true)
if [ "${#unpatched[@]}" -gt 0 ]; then
  log "patching ${#unpatched[@]} CMake file(s) of the ROS wheels"
  PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$PY" -c 'import numpy; print(numpy.get_include())')
  [ -f "$PYINC/Python.h" ] || die "Python headers missing in $PYINC (needed to build msg/)"
  sed -i \
    -e "s#/opt/python/cp[0-9]*-cp[0-9]*/lib/python[0-9.]*/site-packages/numpy/_core/include#$NPINC#g" \
    -e "s#/opt/python/cp[0-9]*-cp[0-9]*/lib/python[0-9.]*/site-packages/numpy/core/include#$NPINC#g" \
    -e "s#/opt/python/cp[0-9]*-cp[0-9]*/include/python[0-9.]*#$PYINC#g" \
    "${unpatched[@]}"
  ! grep -l '/opt/python/' "${unpatched[@]}" || die "unknown /opt/python path left in the files above"
fi

# --- 4. messages: CMake build + install into the venv prefix -----------------------------------
# gen: what needs a configure + build; inst: files CMake only copies (share/vla_ros, lib/vla_ros).
gen_hash="$(hash_paths msg CMakeLists.txt package.xml) $req_hash $VENV"
inst_hash=$(hash_paths launch config scripts/vla_node scripts/sim_node scripts/trajectory_follower scripts/vla)
BUILD=$STATE/build
# Only the venv may provide ROS packages (ignore a sourced /opt/ros or colcon workspace).
cmake_env=(env -u CMAKE_PREFIX_PATH -u COLCON_PREFIX_PATH -u PYTHONPATH AMENT_PREFIX_PATH="$VENV")
cmake_step() {  # name, command...
  local name=$1; shift
  "${cmake_env[@]}" "$@" > "$STATE/cmake-$name.log" 2>&1 \
    || { tail -40 "$STATE/cmake-$name.log"; die "cmake $name failed (log: $STATE/cmake-$name.log)"; }
}
if stamp_ok msgs "$gen_hash" && [ -f "$SITE/vla_ros/msg/__init__.py" ] && [ -f "$BUILD/install_manifest.txt" ]; then
  if stamp_ok msgs-install "$inst_hash"; then
    log "messages: up to date"
  else
    log "messages: up to date; reinstalling launch/, config/, node launchers"
    cmake_step install cmake --install "$BUILD"
  fi
else
  log "messages: building msg/ with CMake into the venv"
  for tool in cmake cc c++ make; do command -v $tool > /dev/null || die "$tool not found (apt-get install cmake build-essential)"; done
  mkdir -p "$BUILD"
  cmake_step configure cmake -S "$ROOT" -B "$BUILD" \
      -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
      -DBUILD_TESTING=OFF -DVLA_ROS_INSTALL_PYTHON_CODE=OFF
  cmake_step build cmake --build "$BUILD" -j"$(nproc)"
  cmake_step install cmake --install "$BUILD"
  stamp_set msgs "$gen_hash"
fi
# The generated empty __init__.py would shadow the checkout's vla_ros (site-packages comes before
# the editable .pth on sys.path). ament's egg-info would make pip treat site-packages/vla_ros as
# an installed distribution and delete it when (re)installing the editable package.
rm -f "$SITE/vla_ros/__init__.py" "$SITE"/vla_ros/__pycache__/__init__.*
rm -rf "$SITE"/vla_ros-*.egg-info
stamp_set msgs-install "$inst_hash"

# --- 5. the package itself, editable ---------------------------------------------------------
edit_hash="$(hash_paths setup.py setup.cfg pyproject.toml) $ROOT"
if stamp_ok editable "$edit_hash" && [ -x "$VENV/bin/vla" ] \
   && grep -qxF "$ROOT" "$SITE"/__editable__.vla_ros-*.pth 2> /dev/null; then
  log "editable install: up to date"
else
  log "editable install: pip install -e $ROOT"
  "${PIP[@]}" install -q --no-deps -e "$ROOT"
  stamp_set editable "$edit_hash"
fi

# --- 6. smoke check (from outside the checkout, so only the venv's sys.path counts) -----------
(cd / && "$PY" - "$ROOT" <<'EOF') || die "smoke check failed"
import os, sys
import vla_ros
from vla_ros.msg import Trajectory
Trajectory()
want = os.path.join(sys.argv[1], "vla_ros", "__init__.py")
if os.path.realpath(vla_ros.__file__) != os.path.realpath(want):
    sys.exit(f"import vla_ros gives {vla_ros.__file__}, expected the checkout's {want}")
EOF
log "ready: $VENV ($((SECONDS - t0)) s)"
