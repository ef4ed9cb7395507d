#!/usr/bin/env bash
# Example spot-run script: `inv spot-run --script examples/train.sh --files examples/train.py`.
# ec2kit runs it in ~/ec2kit/RUN/ with EC2KIT_RUN, EC2KIT_ATTEMPT and EC2KIT_RESULTS set;
# everything written to $EC2KIT_RESULTS comes home to runs/RUN/.
set -euo pipefail
echo "run $EC2KIT_RUN, attempt $EC2KIT_ATTEMPT, results in $EC2KIT_RESULTS"
# Anything a later attempt resumes from is written whole: beside its name (*.ec2kit-tmp), then renamed.
# ec2kit pulls results while the script runs; a file rewritten in place could be caught half-written.
save() { cat >"$1.ec2kit-tmp" && mv -f "$1.ec2kit-tmp" "$1"; }  # usage: COMMAND | save "$EC2KIT_RESULTS/FILE"
echo "$EC2KIT_ATTEMPT" | save "$EC2KIT_RESULTS/attempt.txt"
exec python3 train.py
