#!/usr/bin/env bash
# Compare fastbp at two commits with the asv suite, in the current Python
# environment (no virtualenvs, no builds): each commit's fastbp/ is exported to
# a temporary directory and put first on the benchmarks' path (ASV_PYTHONPATH);
# the benchmarks themselves are those of the working tree.
#
#   bench/compare_commits.sh HEAD~1 HEAD                  # whole suite
#   bench/compare_commits.sh main HEAD -b TimeEpoch       # asv run options follow
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
if [ $# -lt 2 ]; then
    echo "usage: $0 BASE_COMMIT NEW_COMMIT [asv run options]" >&2
    exit 2
fi
base=$(git rev-parse --verify "$1^{commit}")
new=$(git rev-parse --verify "$2^{commit}")
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
asv machine --yes > /dev/null
for commit in "$base" "$new"; do
    mkdir "$tmp/$commit"
    git archive "$commit" fastbp | tar -x -C "$tmp/$commit"
    ASV_PYTHONPATH="$tmp/$commit" asv run --python=same --set-commit-hash "$commit" "$@"
done
asv compare --split --factor 1.1 "$base" "$new"
