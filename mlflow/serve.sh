#!/usr/bin/env bash
# Start gantune's MLflow tracking server: runs, registry and proxied artifacts behind one HTTP address.
#
# Defaults come from mlflow/server.env (override them there, in the environment, or with flags):
#   --data DIR                  folder for the default sqlite store and the artifacts   ($GANTUNE_MLFLOW_DATA)
#   --backend-store-uri URI     sqlite:///... (default DIR/mlflow.db) or postgresql://user:pw@host/db
#   --artifacts-destination D   where uploaded artifacts land (default DIR/mlartifacts; s3://... also works)
#   --host HOST                 interface to bind (default 127.0.0.1: loopback only)
#   --port PORT                 default 5000
#   --workers N                 web worker processes (default 2; each imports MLflow, ~10 s of CPU at start)
# Any further arguments are passed to `mlflow server` unchanged. The script execs the server, so its
# process id is the server's: stop it with `kill PID` (add the process group when it was started as
# its own session, since the server runs its web workers as children).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=server.env
source "$here/server.env"

data="$GANTUNE_MLFLOW_DATA"
backend=""
artifacts=""
host="$GANTUNE_MLFLOW_HOST"
port="$GANTUNE_MLFLOW_PORT"
workers="$GANTUNE_MLFLOW_WORKERS"
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --backend-store-uri) backend="$2"; shift 2 ;;
    --artifacts-destination) artifacts="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done

mkdir -p "$data"
data="$(cd "$data" && pwd)"
backend="${backend:-${GANTUNE_MLFLOW_BACKEND_STORE_URI:-sqlite:///$data/mlflow.db}}"
artifacts="${artifacts:-${GANTUNE_MLFLOW_ARTIFACTS:-$data/mlartifacts}}"

# The project's virtualenv when there is one, else whatever `mlflow` is on PATH.
mlflow_bin="${MLFLOW_BIN:-}"
if [[ -z "$mlflow_bin" ]]; then
  if [[ -x "$here/../.venv/bin/mlflow" ]]; then mlflow_bin="$here/../.venv/bin/mlflow"; else mlflow_bin="mlflow"; fi
fi

exec "$mlflow_bin" server \
  --backend-store-uri "$backend" \
  --artifacts-destination "$artifacts" \
  --serve-artifacts \
  --host "$host" \
  --port "$port" \
  --workers "$workers" \
  ${extra[@]+"${extra[@]}"}
