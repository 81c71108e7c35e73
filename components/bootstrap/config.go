package bootstrap

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/robfig/cron/v3"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Limits of `vault operator init`: Shamir's scheme in Vault splits into at
// most 10 shares, and KMS encrypts at most 4 KiB, which the init output of
// 10 shares stays well under.
const (
	maxShares = 10
	// Audience is the audience of every service-account token that logs in
	// to Vault: the Kubernetes-auth roles require it, and the clients (ESO,
	// the snapshot job, the bootstrap itself) request it.
	Audience = "vault"
)

// Config is VaultBootstrap's plain settings: the stack's `bootstrap` group.
// The json tags are its keys; each field's comment ends with its default,
// which DefaultConfig states.
type Config struct {
	// AutoInit lets the Job initialise an uninitialised Vault. With false,
	// an operator runs the init ceremony of install-and-init.md and the Job
	// only configures and checks. Default: true.
	AutoInit bool `json:"autoInit"`
	// RecoveryShares is how many recovery key shares init creates (1-10).
	// Default: 5.
	RecoveryShares int `json:"recoveryShares,omitempty"`
	// RecoveryThreshold is how many shares recover Vault (generate-root).
	// Default: 3.
	RecoveryThreshold int `json:"recoveryThreshold,omitempty"`
	// PGPKeys are the recovery holders' OpenPGP public keys, base64 (gpg
	// --export | base64 -w0), one per share, in share order. Public: they
	// may live in stack config. Set, init encrypts each share to its holder
	// (PGP mode); empty, the whole init output is encrypted with the
	// recovery KMS key (KMS mode). Default: none (KMS mode).
	PGPKeys []string `json:"pgpKeys,omitempty"`
	// BreakGlassPrincipals are the IAM principals (role or user ARNs) the
	// recovery key's policy lets decrypt the init object. Empty leaves it to
	// the account's IAM policies (its administrators). Default: none.
	BreakGlassPrincipals []string `json:"breakGlassPrincipals,omitempty"`
	// NamePrefix starts the name of every policy, Kubernetes-auth role and
	// audit device the bootstrap manages; it removes only names with it.
	// Default: secrets-platform-.
	NamePrefix string `json:"namePrefix,omitempty"`
	// TokenTTL is the lifetime of the Vault tokens of the Kubernetes-auth
	// roles (a Go duration, 1m to 1h). Default: 10m.
	TokenTTL string `json:"tokenTtl,omitempty"`
	// GateTimeoutSeconds is how long the health gate waits for every voter
	// to be initialised, unsealed and healthy before the Job fails.
	// Default: 300.
	GateTimeoutSeconds int `json:"gateTimeoutSeconds,omitempty"`
	// TimeoutSeconds is the Job's deadline (activeDeadlineSeconds) and how
	// long `pulumi up` waits for it (customTimeouts). At least 3 x
	// gateTimeoutSeconds + 300, so that the Job fails with its own message
	// before it is killed: its three waits for Vault, and its AWS calls and
	// container starts; with databases, also a wait of gateTimeoutSeconds
	// for each one's one-time admin password (a stack rule). Default: 1500
	// (the minimum of 1200, and one database).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// ServiceAccount is the Job's service account, the configurator's
	// identity in Vault. Default: vault-bootstrap.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Resources are each of the Job's containers' requests and limits.
	// Default: requests cpu 50m, memory 64Mi; limits cpu 200m, memory 128Mi.
	Resources kube.Resources `json:"resources"`
	// KeyDeletionWindowDays is the recovery key's deletion window (not a
	// stack key). Default: 30.
	KeyDeletionWindowDays int `json:"-"`
	// ReconcileSchedule is when the reconcile CronJob applies the current
	// revision's configuration again as the configurator, correcting and
	// logging drift (UTC, cron). Default: */15 * * * *.
	ReconcileSchedule string `json:"reconcileSchedule,omitempty"`
	// Access binds Vault's access levels (operator, admin) to the IAM roles
	// whose sessions may log in at that level with `vault login
	// -method=aws`: a list of role ARNs without their path per level, such
	// as arn:aws:iam::111122223333:role/platform-oncall. What each level
	// may do is in docs/runbooks/README.md, "Who can do what".
	// Default: none (nobody logs in with AWS).
	Access map[string][]string `json:"access,omitempty"`
	// AccessTokenTTL is the lifetime of the tokens of an AWS login (a Go
	// duration, 5m to 1h); they cannot be renewed past it. Default: 15m.
	AccessTokenTTL string `json:"accessTokenTtl,omitempty"`
}

// The Job's time: its steps wait for Vault three times, each up to
// gateTimeoutSeconds (every voter answering, in the survey step; the active
// voter unsealed, then the health gate, in the configure step), and call
// AWS four times (the preflight's and the publish step's encrypt and
// upload), each call bounded by the settings below. A Job whose deadline
// comes first is killed without a word in its log, so timeoutSeconds must
// cover them all.
const (
	gateWaits = 3
	// awsConnectTimeout and awsReadTimeout bound each attempt of an AWS CLI
	// request (--cli-connect-timeout, --cli-read-timeout; 60 s each by
	// default), awsMaxAttempts the attempts (AWS_MAX_ATTEMPTS, the first
	// included; 3 by default in the standard retry mode).
	awsConnectTimeout = 5
	awsReadTimeout    = 15
	awsMaxAttempts    = 2
	// awsMaxBackoff is the longest the standard retry mode sleeps before a
	// retry.
	awsMaxBackoff = 20
	awsCalls      = 4
	// containerStarts allows 12 s for each of the pod's five containers to
	// start from an image already on the node.
	containerStarts = 5 * 12
)

// jobOverheadSeconds is what the Job may spend besides its waits for
// Vault: its AWS calls at their bounds, and its containers' starts (300).
const jobOverheadSeconds = awsCalls*(awsMaxAttempts*(awsConnectTimeout+awsReadTimeout)+(awsMaxAttempts-1)*awsMaxBackoff) + containerStarts

// JobSeconds is the longest the Job may take before it fails by itself, with
// intakeWaits databases awaiting their one-time admin password (each up to
// gateTimeoutSeconds).
func (c Config) JobSeconds(intakeWaits int) int {
	return (gateWaits+intakeWaits)*c.GateTimeoutSeconds + jobOverheadSeconds
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{
		AutoInit:              true,
		RecoveryShares:        5,
		RecoveryThreshold:     3,
		NamePrefix:            "secrets-platform-",
		TokenTTL:              "10m",
		GateTimeoutSeconds:    300,
		TimeoutSeconds:        1500,
		ServiceAccount:        "vault-bootstrap",
		KeyDeletionWindowDays: 30,
		ReconcileSchedule:     "*/15 * * * *",
		AccessTokenTTL:        "15m",
		Resources: kube.Resources{
			Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
			Limits:   map[string]string{"cpu": "200m", "memory": "128Mi"},
		},
	}
}

// PGPMode says init encrypts the shares to their holders' PGP keys.
func (c Config) PGPMode() bool { return len(c.PGPKeys) > 0 }

var (
	prefixPattern    = regexp.MustCompile(`^[a-z][a-z0-9-]*-$`)
	principalPattern = regexp.MustCompile(`^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[A-Za-z0-9+=,.@_/:-]+$`)
)

// Validate reports every invalid setting, keyed by its config path under
// path (for example "bootstrap").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	if c.RecoveryShares < 1 || c.RecoveryShares > maxShares {
		p.Addf(key("recoveryShares"), "%d is outside 1..%d, the shares Vault can split into", c.RecoveryShares, maxShares)
	}
	switch {
	case c.RecoveryThreshold < 1 || c.RecoveryThreshold > c.RecoveryShares:
		p.Addf(key("recoveryThreshold"), "%d must be between 1 and %s (%d)", c.RecoveryThreshold, key("recoveryShares"), c.RecoveryShares)
	case c.RecoveryShares > 1 && c.RecoveryThreshold == 1:
		p.Addf(key("recoveryThreshold"), "1 with %d shares: Vault requires a threshold of at least 2 when there is more than one share", c.RecoveryShares)
	}
	if c.PGPMode() && len(c.PGPKeys) != c.RecoveryShares {
		p.Addf(key("pgpKeys"), "%d keys for %d recovery shares: give one public key per share, or none for KMS mode", len(c.PGPKeys), c.RecoveryShares)
	}
	for i, k := range c.PGPKeys {
		if err := publicKey(k); err != nil {
			p.Addf(validate.Index(key("pgpKeys"), i), "%s: want a base64 OpenPGP public key (gpg --export <id> | base64 -w0)", err)
		}
	}
	for i, arn := range c.BreakGlassPrincipals {
		if !principalPattern.MatchString(arn) {
			p.Addf(validate.Index(key("breakGlassPrincipals"), i), "%q is not an IAM principal ARN such as arn:aws:iam::111122223333:role/vault-break-glass", arn)
		}
	}
	if !prefixPattern.MatchString(c.NamePrefix) {
		p.Addf(key("namePrefix"), "%q must be lowercase letters, digits and hyphens, start with a letter and end with -", c.NamePrefix)
	}
	if d, err := time.ParseDuration(c.TokenTTL); err != nil || d < time.Minute || d > time.Hour {
		p.Addf(key("tokenTtl"), "%q must be a Go duration from 1m to 1h, such as 10m", c.TokenTTL)
	}
	p.Positive(key("gateTimeoutSeconds"), c.GateTimeoutSeconds)
	if need := c.JobSeconds(0); c.TimeoutSeconds < need {
		fix := fmt.Sprintf("raise it to %d or more", need)
		if gate := (c.TimeoutSeconds - jobOverheadSeconds) / gateWaits; gate > 0 {
			fix += fmt.Sprintf(", or lower %s to %d or less", key("gateTimeoutSeconds"), gate)
		}
		p.Addf(key("timeoutSeconds"), "%d is under %d, what the Job may take before it fails with its own message: %d waits for Vault of up to %s (%d) each, and %ds for its AWS calls and container starts (a Job killed at its deadline says nothing); %s",
			c.TimeoutSeconds, need, gateWaits, key("gateTimeoutSeconds"), c.GateTimeoutSeconds, jobOverheadSeconds, fix)
	}
	p.DNSLabel(key("serviceAccount"), c.ServiceAccount)
	p.WorkloadResources(key("resources"), c.Resources)
	if _, err := cron.ParseStandard(c.ReconcileSchedule); err != nil {
		p.Addf(key("reconcileSchedule"), "%q is not a cron schedule (%v); for example \"*/15 * * * *\"", c.ReconcileSchedule, err)
	}
	c.validateAccess(&p, key)
	if c.KeyDeletionWindowDays < 7 || c.KeyDeletionWindowDays > 30 {
		p.Addf(key("keyDeletionWindowDays"), "%d is outside 7..30, the window AWS KMS allows", c.KeyDeletionWindowDays)
	}
	return p
}

// publicKey checks that b64 is one OpenPGP public key that can encrypt, in
// the form `vault operator init -recovery-pgp-keys` reads from a file.
func publicKey(b64 string) error {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("not base64 (%w)", err)
	}
	entities, err := openpgp.ReadKeyRing(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("not an OpenPGP key (%w)", err)
	}
	if len(entities) != 1 {
		return fmt.Errorf("%d keys in one item", len(entities))
	}
	if entities[0].PrivateKey != nil {
		return fmt.Errorf("a private key; give only the public key")
	}
	if _, ok := entities[0].EncryptionKey(time.Now()); !ok {
		return fmt.Errorf("a key with no valid encryption subkey")
	}
	return nil
}
