#!/usr/bin/env bash
# End-to-end run on a local kind cluster: cluster -> KFP + Training Operator (or Trainer) -> images -> MinIO + S3
# secret -> a generated dataset -> the pipeline with CPU smoke parameters -> its metrics.
#
#   scripts/kind-e2e.sh [--quick] [--trainjob] [--check] [--keep]
#
#   (default)  builds the tools and runtime images (Docker, network, ~20 GB of disk: CUDA base, torch, the ops)
#              and trains SeqFormer for a few CPU iterations as a one-worker PyTorchJob
#   --trainjob installs Kubeflow Trainer v2 (manifests/platform/trainer, trainer-runtimes) instead of the Training
#              Operator and trains as a one-node TrainJob (train_launcher=trainjob)
#   --quick    builds only the tools image and also loads it under the runtime image's name; mask-gen runs the
#              motion backend, training is skipped (train_launcher=local, no SeqFormer runtime in that image)
#   --check    only check the prerequisites (exit 0 when all are present, 3 otherwise, naming what is missing)
#   --keep     keep the cluster afterwards (it is deleted on success otherwise; always kept on failure)
#
# Needs: docker (a running daemon), kind (>= 0.27, for the v1.32 node image), kubectl, and PYTHON (default
# python3) with wsovvis[pipeline] installed (the project venv). Environment: KIND_CLUSTER (default wsovvis-e2e),
# E2E_MIN_AP50 (default 0.5, the pseudo tubes' class-agnostic AP50 against the generated GT; the model, after a few
# CPU iterations, must have a finite AP), E2E_TIMEOUT (seconds for the run, default 3600), TORCH_CUDA_ARCH_LIST
# (runtime image), WSOVVIS_* image names (wsovvis/images.py).
# Modelled on the kind CI of KFP (.github/resources/scripts/deploy-kfp.sh: cluster-scoped resources, wait for the
# Application CRD, platform-agnostic, wait for pods) and the Training Operator (server-side apply of the
# standalone overlay); GPUs are faked by patching the worker's status capacity, so GPU requests schedule while the
# pods run on CPU.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
CLUSTER=${KIND_CLUSTER:-wsovvis-e2e}
NAMESPACE=kubeflow
MIN_AP50=${E2E_MIN_AP50:-0.5}
RUN_TIMEOUT=${E2E_TIMEOUT:-3600}
BUCKET=s3://wsovvis-e2e
FAKE_GPUS=4
QUICK=0 CHECK_ONLY=0 KEEP=0
LAUNCHER=pytorchjob  # the job kind the full run trains as: pytorchjob (Training Operator v1) or trainjob (Trainer v2)
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --check) CHECK_ONLY=1 ;;
    --keep) KEEP=1 ;;
    --trainjob) LAUNCHER=trainjob ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see $0 --help)" >&2; exit 2 ;;
  esac
done

log() { printf '\n== %s\n' "$*"; }

check_prerequisites() {
  local missing=()
  for tool in docker kind kubectl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if command -v docker >/dev/null && ! docker info >/dev/null 2>&1; then missing+=("a running Docker daemon"); fi
  (cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" -c 'import kfp, pipelines.pipeline_cli' 2>/dev/null) ||
    missing+=("$PYTHON with wsovvis[pipeline]")
  if [ ${#missing[@]} -gt 0 ]; then
    local IFS=,
    echo "kind-e2e: missing: ${missing[*]}" | sed 's/,/, /g' >&2
    return 3
  fi
}

check_prerequisites || exit $?
[ "$CHECK_ONLY" = 0 ] || { echo "kind-e2e: prerequisites present"; exit 0; }
EXPECT_MODEL=$((1 - QUICK))  # --quick trains nothing

KUBECTL=(kubectl --context "kind-$CLUSTER")
PORT_FORWARD_PID=
cleanup() {
  local status=$?
  [ -z "$PORT_FORWARD_PID" ] || kill "$PORT_FORWARD_PID" 2>/dev/null || true
  if [ "$status" -eq 0 ] && [ "$KEEP" = 0 ]; then
    kind delete cluster --name "$CLUSTER"
  else
    echo "kind-e2e: cluster kind-$CLUSTER kept (delete: kind delete cluster --name $CLUSTER)" >&2
  fi
}
trap cleanup EXIT

log "cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config "$ROOT/manifests/kind/cluster.yaml" --wait 180s
fi

log "fake GPUs on the labelled worker nodes (scheduling only)"
for node in $("${KUBECTL[@]}" get nodes -l wsovvis.io/fake-gpu=true -o name); do
  "${KUBECTL[@]}" patch "$node" --subresource=status --type=json \
    -p "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$FAKE_GPUS\"}]"
  "${KUBECTL[@]}" wait "$node" --for=jsonpath='{.status.allocatable.nvidia\.com/gpu}'="$FAKE_GPUS" --timeout=60s
done

log "Kubeflow Pipelines and the $LAUNCHER controller"
"${KUBECTL[@]}" apply -k "$ROOT/manifests/platform/kfp-cluster-scoped"
"${KUBECTL[@]}" wait crd/applications.app.k8s.io --for condition=established --timeout=60s
"${KUBECTL[@]}" apply -k "$ROOT/manifests/platform/kfp"
if [ "$LAUNCHER" = trainjob ]; then
  "${KUBECTL[@]}" apply --server-side -k "$ROOT/manifests/platform/trainer"
  "${KUBECTL[@]}" wait crd/trainjobs.trainer.kubeflow.org crd/clustertrainingruntimes.trainer.kubeflow.org \
    --for condition=established --timeout=60s
  "${KUBECTL[@]}" -n kubeflow-system wait deployment/kubeflow-trainer-controller-manager --for=condition=Available \
    --timeout=600s
  # the runtimes go through Trainer's validating webhook, which answers a little after its Deployment is Available
  for attempt in $(seq 1 10); do
    "${KUBECTL[@]}" apply --server-side -k "$ROOT/manifests/platform/trainer-runtimes" && break
    [ "$attempt" -lt 10 ] || exit 1
    sleep 10
  done
else
  "${KUBECTL[@]}" apply --server-side -k "$ROOT/manifests/platform/training-operator"
  "${KUBECTL[@]}" wait crd/pytorchjobs.kubeflow.org --for condition=established --timeout=60s
fi

log "images"
eval "$(cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" -m wsovvis.images)"
if [ "$QUICK" = 1 ]; then
  CONTAINER_ENGINE=docker PYTHON="$PYTHON" "$ROOT/scripts/build-images.sh" tools
  docker tag "$TOOLS_IMAGE" "$RUNTIME_IMAGE"
else
  CONTAINER_ENGINE=docker PYTHON="$PYTHON" "$ROOT/scripts/build-images.sh" tools runtime
fi
kind load docker-image --name "$CLUSTER" "$TOOLS_IMAGE" "$RUNTIME_IMAGE"

log "object store and its credentials"
"${KUBECTL[@]}" -n "$NAMESPACE" get secret wsovvis-s3 >/dev/null 2>&1 ||
  "${KUBECTL[@]}" -n "$NAMESPACE" create secret generic wsovvis-s3 \
    --from-literal=accesskey=wsovvis-e2e --from-literal=secretkey="$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')"
"${KUBECTL[@]}" apply -k "$ROOT/manifests/object-store"
"${KUBECTL[@]}" apply -k "$ROOT/manifests/rbac"

log "waiting for the platform (up to 15 minutes)"
"${KUBECTL[@]}" -n "$NAMESPACE" wait deployment --all --for=condition=Available --timeout=900s

# Run a command in the tools image inside the cluster, with the S3 settings the pipeline's pods get.
in_cluster() {
  local name=$1 script=$2
  "${KUBECTL[@]}" -n "$NAMESPACE" delete pod "$name" --ignore-not-found >/dev/null
  "${KUBECTL[@]}" -n "$NAMESPACE" apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  restartPolicy: Never
  containers:
    - name: tools
      image: $TOOLS_IMAGE
      command: ["sh", "-c", $(printf '%s' "$script" | "$PYTHON" -c 'import json, sys; print(json.dumps(sys.stdin.read()))')]
      env:
        - {name: AWS_ACCESS_KEY_ID, valueFrom: {secretKeyRef: {name: wsovvis-s3, key: accesskey}}}
        - {name: AWS_SECRET_ACCESS_KEY, valueFrom: {secretKeyRef: {name: wsovvis-s3, key: secretkey}}}
        - {name: AWS_ENDPOINT_URL, valueFrom: {configMapKeyRef: {name: wsovvis-s3, key: endpoint}}}
EOF
  if ! "${KUBECTL[@]}" -n "$NAMESPACE" wait "pod/$name" --for=jsonpath='{.status.phase}'=Succeeded --timeout=600s; then
    "${KUBECTL[@]}" -n "$NAMESPACE" logs "pod/$name" >&2 || true
    return 1
  fi
  "${KUBECTL[@]}" -n "$NAMESPACE" logs "pod/$name"
  "${KUBECTL[@]}" -n "$NAMESPACE" delete pod "$name" >/dev/null
}

# What the helper pods run (functions, so tests can run them against a local S3 server).
data_command() {
  printf '%s' "python3 -c 'from wsovvis import storage; storage.ensure_bucket(\"$BUCKET\")' \
&& wsovvis synth --out $BUCKET/data --num_videos 4 --min_frames 8 --max_frames 12"
}

# The evaluations' metrics.json files under the work root, told apart by the results they scored (metrics.json
# records them): the pseudo tubes (convert's output) must reach MIN_AP50 against the generated GT; with EXPECT_MODEL=1
# the trained model's evaluation (results from the train step) must be there with a finite, non-negative AP.
metrics_command() {
  cat <<EOF
python3 - <<'PY'
import json
import math
from wsovvis import jsonio, storage

work = '$BUCKET/work'
found = [storage.join(work, p) for p in storage.walk_files(work) if p.split('/')[-1] == 'metrics.json']
assert found, 'no metrics.json under $BUCKET/work'
pseudo, model = [], []
for uri in found:
    metrics = jsonio.read_json(uri)
    print(uri, json.dumps({k: metrics.get(k) for k in ('results', 'AP', 'AP50', 'AP75', 'AR10')}))
    if metrics['results'].startswith(work + '/convert/'):
        pseudo.append(metrics)
    elif metrics['results'].startswith(work + '/train/'):
        model.append(metrics)
assert pseudo, 'no evaluation of the pseudo tubes (results under $BUCKET/work/convert/)'
for metrics in pseudo:
    assert metrics['AP50'] >= $MIN_AP50, f"pseudo tubes: AP50 {metrics['AP50']:.3f} < $MIN_AP50"
    print(f"kind-e2e: pseudo tubes AP50 {metrics['AP50']:.3f} >= $MIN_AP50")
if '$EXPECT_MODEL' == '1':
    assert model, 'no evaluation of the trained model (results under $BUCKET/work/train/)'
    for metrics in model:
        ap = metrics.get('AP')
        assert isinstance(ap, (int, float)) and math.isfinite(ap) and ap >= 0, f'model: AP {ap!r} is not a finite AP'
        print(f'kind-e2e: model AP {ap:.3f}')
PY
EOF
}

# The pipeline's parameters, one NAME=VALUE per line. One training process on CPU: the first pod alone
# (train_workers=0) with gpus_per_worker=0, which the PyTorchJob (or TrainJob, with --trainjob) runs as one process
# per pod. --quick skips training (train_launcher=local: its image has no SeqFormer runtime) and so has no model to
# evaluate.
run_params() {
  printf '%s\n' "frames_root=$BUCKET/data/frames" "work_root=$BUCKET/work" "train_gt_json=$BUCKET/data/gt.json" \
    num_shards=2 mask_backend=motion mask_device=cpu "train_namespace=$NAMESPACE" train_workers=0 gpus_per_worker=0
  if [ "$QUICK" = 1 ]; then
    printf '%s\n' train_launcher=local
  else
    printf '%s\n' "train_launcher=$LAUNCHER" "val_frames_root=$BUCKET/data/frames" "val_gt_json=$BUCKET/data/gt.json" \
      'd2_opts=["MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "1", "SOLVER.CHECKPOINT_PERIOD", "4"]'
  fi
}

log "a tiny generated dataset in $BUCKET"
in_cluster wsovvis-e2e-data "$(data_command)"

log "submit the pipeline"
"${KUBECTL[@]}" -n "$NAMESPACE" port-forward svc/ml-pipeline 8888:8888 >/dev/null 2>&1 &
PORT_FORWARD_PID=$!
for _ in $(seq 1 30); do
  curl -sf http://127.0.0.1:8888/apis/v2beta1/healthz >/dev/null && break
  sleep 2
done
PARAMS=()
while IFS= read -r param; do PARAMS+=(--param "$param"); done < <(run_params)
# compiled here, so the spec names the images just built (wsovvis/images.py, read at compile time)
SPEC=$(mktemp --suffix=.yaml)
(cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" -m pipelines pipeline compile --out "$SPEC")
SUBMITTED=$(cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" -m pipelines pipeline submit --host http://127.0.0.1:8888 \
  --spec "$SPEC" --experiment wsovvis-e2e --run_name "e2e-$(date +%Y%m%d-%H%M%S)" "${PARAMS[@]}")
echo "$SUBMITTED"
RUN_ID=$(echo "$SUBMITTED" | awk '/^run /{print $2}')
[ -n "$RUN_ID" ] || { echo "kind-e2e: could not read the run id from: $SUBMITTED" >&2; exit 1; }

log "waiting for run $RUN_ID (up to ${RUN_TIMEOUT}s)"
STATE=$("$PYTHON" - "$RUN_ID" "$RUN_TIMEOUT" <<'PY'
import sys
import kfp

run = kfp.Client(host="http://127.0.0.1:8888").wait_for_run_completion(sys.argv[1], timeout=int(sys.argv[2]))
print(run.state)
PY
)
echo "run state: $STATE"
if [ "$STATE" != SUCCEEDED ]; then
  "${KUBECTL[@]}" -n "$NAMESPACE" get "pods,${LAUNCHER}s" -o wide >&2 || true
  exit 1
fi

log "metrics"
in_cluster wsovvis-e2e-metrics "$(metrics_command)"
log "passed"
