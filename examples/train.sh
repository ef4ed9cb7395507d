#!/usr/bin/env bash
# Example spot-run script: `inv spot-run --script examples/train.sh --files examples/train.py`.
# ec2kit runs it in ~/ec2kit/RUN/ with EC2KIT_RUN, EC2KIT_ATTEMPT and EC2KIT_RESULTS set;
# everything written to $EC2KIT_RESULTS comes home to runs/RUN/.
set -euo pipefail
echo "run $EC2KIT_RUN, attempt $EC2KIT_ATTEMPT, results in $EC2KIT_RESULTS"
exec python3 train.py
