//go:build integration

// Package integration runs what the program renders against real Vault
// servers on loopback: the Raft HCL of the vault component, the certificates
// the pulumi-tls resources issue (real PEMs made by the recording mocks) and
// the snapshot CronJob's own script. Every input comes from the production
// stack run under internal/recorder; only what cannot exist outside a
// cluster is rewritten (paths, addresses, the KMS seal, service
// registration).
//
// The tests need the Vault binary: `make vault` builds it into
// bin/tools/vault, or VAULT_BIN names another one. Run them with
// `make integration`.
package integration
