#!/bin/sh
# The restore drill's download step (the AWS CLI image): find the newest
# snapshot under the prefix and download it where restore-drill.sh reads
# it, with its S3 URL beside it for the drill's report.
#
# Environment: SNAPSHOT_BUCKET, SNAPSHOT_PREFIX (without a trailing /),
# DRILL_SNAPSHOT (the file to write), DRILL_SNAPSHOT_MAX_BYTES (the most
# the volume it lies on holds; DRILL_SNAPSHOT_SIZE says it as configured),
# AWS_REGION.
set -eu
: "${SNAPSHOT_BUCKET:?}" "${SNAPSHOT_PREFIX:?}" "${DRILL_SNAPSHOT:?}" "${DRILL_SNAPSHOT_MAX_BYTES:?}"

# Newest first by S3's LastModified (ISO 8601, so a text sort is a time
# sort); the CLI pages through every object itself.
newest="$(aws s3api list-objects-v2 --bucket "${SNAPSHOT_BUCKET}" --prefix "${SNAPSHOT_PREFIX}/" \
	--query 'Contents[].[LastModified,Key,Size]' --output text | sort | tail -n 1)"
key="$(printf '%s\n' "${newest}" | cut -f 2)"
size="$(printf '%s\n' "${newest}" | cut -f 3)"
if [ -z "${key}" ] || [ "${key}" = None ]; then
	echo "restore drill FAILED: no snapshot under s3://${SNAPSHOT_BUCKET}/${SNAPSHOT_PREFIX}/" >&2
	exit 1
fi
# The pod's volumes are sized for the configured snapshot size; a larger
# snapshot would fill them and the kubelet would evict the pod mid-run.
case "${size}" in
'' | *[!0-9]*)
	echo "restore drill FAILED: s3://${SNAPSHOT_BUCKET}/${key} has no size in the listing (${size})" >&2
	exit 1
	;;
esac
if [ "${size}" -gt "${DRILL_SNAPSHOT_MAX_BYTES}" ]; then
	echo "restore drill FAILED: s3://${SNAPSHOT_BUCKET}/${key} is ${size} bytes, above backup.drill.snapshotSize ${DRILL_SNAPSHOT_SIZE:-} (${DRILL_SNAPSHOT_MAX_BYTES} bytes), which sizes the drill's volumes: raise it" >&2
	exit 1
fi
aws s3 cp "s3://${SNAPSHOT_BUCKET}/${key}" "${DRILL_SNAPSHOT}" --only-show-errors
printf '%s\n' "s3://${SNAPSHOT_BUCKET}/${key}" >"${DRILL_SNAPSHOT}.source"
echo "downloaded s3://${SNAPSHOT_BUCKET}/${key} ($(wc -c <"${DRILL_SNAPSHOT}") bytes)"
