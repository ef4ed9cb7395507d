#!/usr/bin/env bash
# Train the example classifier on an instance: `inv spot-run --script examples/classifier.sh --files examples`
# (or a sweep: add `--grid-file examples/classifier-grid.toml`; each run's LR/HIDDEN arrive as variables).
# classifier.py uses PyTorch when the instance has it, else plain Python. It writes metrics.csv and a checkpoint
# into $EC2KIT_RESULTS every epoch and resumes from that checkpoint on a later attempt (--retries N).
set -euo pipefail
echo "run $EC2KIT_RUN, attempt $EC2KIT_ATTEMPT, results in $EC2KIT_RESULTS"
exec python3 classifier.py --epochs "${EPOCHS:-30}"
