#!/usr/bin/env bash
# Entry point of the automot images (Dockerfile.x86, Dockerfile.jetson).
#
# First start: export the Action Expert to ONNX and build its TensorRT engine for this GPU
# and TensorRT into $AUTOMOT_ENGINE_DIR (a volume, so later starts reuse them; an engine
# built for another GPU or TensorRT is rebuilt, never loaded). Then launch the stack with
# drive.launch.py; arguments given to `docker run` go to `ros2 launch` (e.g. model:=tiny).
#
#   AUTOMOT_ENGINE_DIR  engine volume (default /engines)
#   AUTOMOT_BACKEND     Action Expert backend (default auto: tensorrt > onnxruntime-cuda > ...)
#   AUTOMOT_PRECISION   fp16 (default) or fp32
#   AUTOMOT_MODEL, AUTOMOT_CHECKPOINT   model config and checkpoint (default: drive.yaml's)
#   AUTOMOT_BUILD_ENGINES=0  skip the build step
set -euo pipefail

set +u  # the ROS setup scripts read unset variables
# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /opt/automot/install/setup.bash
set -u

engine_dir="${AUTOMOT_ENGINE_DIR:-/engines}"
backend="${AUTOMOT_BACKEND:-auto}"
precision="${AUTOMOT_PRECISION:-fp16}"
mkdir -p "$engine_dir"

model_args=()
launch_args=(engine_dir:="$engine_dir" backend:="$backend" precision:="$precision")
if [[ -n "${AUTOMOT_MODEL:-}" ]]; then
  model_args+=(--model "$AUTOMOT_MODEL")
  launch_args+=(model:="$AUTOMOT_MODEL")
fi
if [[ -n "${AUTOMOT_CHECKPOINT:-}" ]]; then
  model_args+=(--checkpoint "$AUTOMOT_CHECKPOINT")
  launch_args+=(checkpoint:="$AUTOMOT_CHECKPOINT")
fi

if [[ "${AUTOMOT_BUILD_ENGINES:-1}" != "0" ]]; then
  status=0
  ros2 run automot_ros automot engines build --engine-dir "$engine_dir" --precision "$precision" "${model_args[@]}" || status=$?
  if [[ $status -eq 3 ]]; then
    echo "automot: no TensorRT/GPU in this container (run it with --gpus all); backend $backend decides" >&2
  elif [[ $status -ne 0 ]]; then
    echo "automot: building the engines failed (exit $status)" >&2
    exit "$status"
  fi
fi

exec ros2 launch automot_ros drive.launch.py "${launch_args[@]}" "$@"
