#!/bin/sh
# PID 1 of the pod the integration tests run (pod_test.go), standing in for
# the pause container of a pod with shareProcessNamespace: it does nothing,
# reaps the orphans the namespace hands it (the shell's wait reaps every
# child), and exits on SIGINT or SIGTERM.
trap 'exit 0' INT TERM
while :; do
	sleep 3600 &
	wait $!
done
