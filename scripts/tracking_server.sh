#!/usr/bin/env bash
# A team's MLflow tracking server: runs, metrics and the Model Registry in PostgreSQL,
# artifacts (plots, reports, models) in an S3 bucket, proxied through the server so that
# clients need only MLFLOW_TRACKING_URI=http://<host>:<port>, no storage credentials.
#
# Settings come from the environment, never the command line (which `ps` shows to every
# user of the machine); the password and the keys are printed nowhere:
#   MLFLOW_BACKEND_STORE_URI      postgresql://user:password@host:5432/database   (required)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://bucket/prefix                              (required)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the bucket's keys (or ~/.aws, an instance role)
#   MLFLOW_S3_ENDPOINT_URL        an S3 API other than AWS's (MinIO, Ceph, a local server)
#   MLFLOW_HOST                   the interface to listen on (default 127.0.0.1: this machine)
#   MLFLOW_PORT                   default 5000
# Further arguments go to `mlflow server` (e.g. --workers 2, --allowed-hosts mlflow.example.org).
# See docs/scale-out.md.
set -euo pipefail

fail() {
  echo "tracking_server.sh: $*" >&2
  exit 2
}

uri="${MLFLOW_BACKEND_STORE_URI:-}"
case "$uri" in
  postgresql://?*) uri="postgresql+psycopg2://${uri#postgresql://}" ;; # psycopg2, installed
  postgresql+psycopg2://?*) ;;
  "") fail "MLFLOW_BACKEND_STORE_URI is not set; allowed: postgresql://user:password@host:5432/database; export it before starting the server" ;;
  *) fail "MLFLOW_BACKEND_STORE_URI must start with postgresql:// (a team store), got ${uri%%://*}://...; export a PostgreSQL URL" ;;
esac
destination="${MLFLOW_ARTIFACTS_DESTINATION:-}"
case "$destination" in
  s3://?*) ;;
  "") fail "MLFLOW_ARTIFACTS_DESTINATION is not set; allowed: s3://bucket/prefix; export it before starting the server" ;;
  *) fail "MLFLOW_ARTIFACTS_DESTINATION must start with s3://, got '$destination'; export s3://bucket/prefix" ;;
esac
command -v mlflow >/dev/null 2>&1 || fail "mlflow is not on PATH; run 'source .venv/bin/activate' (make creates .venv) first"

export MLFLOW_BACKEND_STORE_URI="$uri"
export MLFLOW_HOST="${MLFLOW_HOST:-127.0.0.1}" MLFLOW_PORT="${MLFLOW_PORT:-5000}"
# The URL as printed: user, host and database, the password replaced by ***.
shown="$(sed -E 's#^([^:/]+://[^:@/]+):[^@]*@#\1:***@#' <<<"$uri")"
echo "tracking_server.sh: runs in $shown, artifacts in $destination (proxied by the server);" \
  "clients: export MLFLOW_TRACKING_URI=http://$MLFLOW_HOST:$MLFLOW_PORT" >&2
exec mlflow server --serve-artifacts "$@"
