#!/bin/sh
# The restore drill's download step (the AWS CLI image): find the newest
# snapshot under the prefix and download it where restore-drill.sh reads
# it, with its S3 URL beside it for the drill's report.
#
# Environment: SNAPSHOT_BUCKET, SNAPSHOT_PREFIX (without a trailing /),
# DRILL_SNAPSHOT (the file to write), AWS_REGION.
set -eu
: "${SNAPSHOT_BUCKET:?}" "${SNAPSHOT_PREFIX:?}" "${DRILL_SNAPSHOT:?}"

# Newest first by S3's LastModified (ISO 8601, so a text sort is a time
# sort); the CLI pages through every object itself.
newest="$(aws s3api list-objects-v2 --bucket "${SNAPSHOT_BUCKET}" --prefix "${SNAPSHOT_PREFIX}/" \
	--query 'Contents[].[LastModified,Key]' --output text | sort | tail -n 1)"
key="$(printf '%s\n' "${newest}" | cut -f 2)"
if [ -z "${key}" ] || [ "${key}" = None ]; then
	echo "restore drill FAILED: no snapshot under s3://${SNAPSHOT_BUCKET}/${SNAPSHOT_PREFIX}/" >&2
	exit 1
fi
aws s3 cp "s3://${SNAPSHOT_BUCKET}/${key}" "${DRILL_SNAPSHOT}" --only-show-errors
printf '%s\n' "s3://${SNAPSHOT_BUCKET}/${key}" >"${DRILL_SNAPSHOT}.source"
echo "downloaded s3://${SNAPSHOT_BUCKET}/${key} ($(wc -c <"${DRILL_SNAPSHOT}") bytes)"
