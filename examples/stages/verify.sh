#!/usr/bin/env bash
# Example verify stage: checks that the implementation left a non-empty result file.
# Exit 0 passes; any other exit sends the task back to implementing with this output as feedback.
set -euo pipefail
file="$CAIRN_DATA_DIR/workspace/$CAIRN_TASK_ID/RESULT.md"
if [[ ! -s "$file" ]]; then
  echo "verification failed: $file is missing or empty"
  exit 1
fi
echo "verified: $file has $(wc -l < "$file") lines"
