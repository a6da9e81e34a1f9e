#!/usr/bin/env bash
# Build the repo as a ROS 2 package with colcon (as a ROS user would) in a temporary workspace,
# then import vla_ros and vla_ros.msg from that workspace's install/.
#
#   bash scripts/colcon_check.sh          # or: make colcon (runs scripts/setup.sh first)
#   KEEP_WS=1 bash scripts/colcon_check.sh   # keep the workspace for inspection
#
# Uses colcon and the ROS wheels from the venv (scripts/setup.sh has patched their CMake files).
# Only the package's files are copied (git: tracked + untracked-not-ignored), so .venv/, build/ etc.
# of the checkout never reach the workspace.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac
PY=$VENV/bin/python
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE   # see scripts/setup.sh
log() { printf '[colcon] %s\n' "$*"; }
die() { printf '[colcon] ERROR: %s\n' "$*" >&2; exit 1; }
[ -x "$VENV/bin/colcon" ] || die "no colcon in $VENV (run scripts/setup.sh first)"
t0=$SECONDS

WS=$(mktemp -d "${TMPDIR:-/tmp}/vla_ros_colcon.XXXXXX")
if [ "${KEEP_WS:-0}" = 1 ]; then log "workspace kept: $WS"; else trap 'rm -rf "$WS"' EXIT; fi
PKG=$WS/src/vla_ros
mkdir -p "$PKG"

log "copying the package into $PKG"
if git -C "$ROOT" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
     | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
     | tar --null -T - -cf -) | tar -C "$PKG" -xf -
else
  tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./install \
      --exclude=./log --exclude='__pycache__' --exclude='*.egg-info' -cf - . | tar -C "$PKG" -xf -
fi
[ -f "$PKG/package.xml" ] || die "package.xml did not reach the workspace"

log "colcon build (log: $WS/colcon-build.log)"
cd "$WS"
# Only the venv provides the ROS underlay (ignore a sourced /opt/ros or other workspace). colcon warns
# that $VENV has no local_setup.* files: expected, the venv needs no sourcing.
if ! env -u CMAKE_PREFIX_PATH -u COLCON_PREFIX_PATH -u PYTHONPATH AMENT_PREFIX_PATH="$VENV" \
    "$VENV/bin/colcon" --log-base "$WS/log" build --base-paths src \
      --build-base "$WS/build" --install-base "$WS/install" --event-handlers console_direct- \
      --cmake-args -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
      > "$WS/colcon-build.log" 2>&1; then
  tail -40 "$WS/colcon-build.log"
  find "$WS/log" -name 'stdout_stderr.log' -exec tail -40 {} \; 2> /dev/null || true
  die "colcon build failed"
fi
grep -E '^Summary' "$WS/colcon-build.log" | sed 's/^/[colcon] /'

log "checking the install (sourcing install/setup.sh, from outside the checkout)"
# The setup files are not `set -u` clean. (setup.sh: colcon-bash, for setup.bash, is not installed.)
set +u
export PATH="$VENV/bin:$PATH"  # python3 for the installed scripts' shebangs (a ROS machine: /usr/bin/python3)
# shellcheck disable=SC1091
COLCON_CURRENT_PREFIX=$WS/install . "$WS/install/setup.sh"
set -u
cd /
"$PY" - "$WS/install" <<'EOF'
import os, sys
install = os.path.realpath(sys.argv[1])
import vla_ros
import vla_ros.msg
from vla_ros.msg import Trajectory
from rclpy.serialization import deserialize_message, serialize_message
from ament_index_python.packages import get_package_prefix, get_package_share_directory
msg = Trajectory(command="check", status=Trajectory.STATUS_STOP_NO_COMMAND)
assert deserialize_message(serialize_message(msg), Trajectory) == msg
for mod in (vla_ros, vla_ros.msg):
    assert os.path.realpath(mod.__file__).startswith(install + os.sep), f"{mod.__name__} from {mod.__file__}"
assert vla_ros.__version__, "install/ holds the generated empty __init__.py, not the package's own"
prefix = os.path.realpath(get_package_prefix("vla_ros"))
assert prefix.startswith(install + os.sep), prefix
for name in ("vla_node", "sim_node", "trajectory_follower", "vla"):
    assert os.access(os.path.join(prefix, "lib", "vla_ros", name), os.X_OK), name
assert os.access(os.path.join(prefix, "bin", "vla"), os.X_OK), "bin/vla"
assert os.path.isfile(os.path.join(get_package_share_directory("vla_ros"), "package.xml"))
print(f"[colcon] ok: vla_ros {vla_ros.__version__} and vla_ros.msg.Trajectory from {os.path.dirname(vla_ros.__file__)}")
EOF
# The `vla` CLI from install/bin (on PATH after sourcing; its shebang finds the venv's python3 as a ROS
# user's finds /usr/bin/python3): `vla launch` describes the nodes from the install's share/vla_ros.
vla_bin=$(command -v vla)
case $vla_bin in "$WS"/install/*/bin/vla | "$WS"/install/bin/vla) ;; *) die "vla on PATH is $vla_bin, not install's" ;; esac
dry=$(vla launch --dry-run follower:=true) || die "vla launch --dry-run failed"
want="-m vla_ros.ros.trajectory_follower .*--params-file $WS/install/.*share/vla_ros/config/vla.yaml"
printf '%s\n' "$dry" | grep -q -- "$want" || die "vla launch --dry-run did not describe the installed nodes: $dry"
log "ok: $vla_bin launch --dry-run follower:=true describes vla_node and trajectory_follower from install/share"
log "done ($((SECONDS - t0)) s)"
