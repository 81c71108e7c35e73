package bootstrap_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
)

// testPublicKey is a new holder's OpenPGP public key, base64, as gpg
// --export | base64 -w0 gives it.
func testPublicKey(t *testing.T) string {
	t.Helper()
	e, err := openpgp.NewEntity("holder", "", "holder@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pub.Bytes())
}

// testPrivateKey is a holder's private key, base64: never what pgpKeys takes.
func testPrivateKey(t *testing.T) string {
	t.Helper()
	e, err := openpgp.NewEntity("holder", "", "holder@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var priv bytes.Buffer
	if err := e.SerializePrivate(&priv, nil); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(priv.Bytes())
}

func TestConfigNamesTheKeyTheValueAndWhatIsAllowed(t *testing.T) {
	public := testPublicKey(t)
	cases := []struct {
		name string
		edit func(*bootstrap.Config)
		want string
	}{
		{"more than 10 shares", func(c *bootstrap.Config) { c.RecoveryShares = 11 },
			"bootstrap.recoveryShares: 11 is outside 1..10"},
		{"threshold above shares", func(c *bootstrap.Config) { c.RecoveryShares, c.RecoveryThreshold = 3, 4 },
			"bootstrap.recoveryThreshold: 4 must be between 1 and bootstrap.recoveryShares (3)"},
		{"threshold 1 of many", func(c *bootstrap.Config) { c.RecoveryThreshold = 1 },
			"bootstrap.recoveryThreshold: 1 with 5 shares"},
		{"fewer PGP keys than shares", func(c *bootstrap.Config) { c.PGPKeys = []string{public, public} },
			"bootstrap.pgpKeys: 2 keys for 5 recovery shares"},
		{"not base64", func(c *bootstrap.Config) {
			c.RecoveryShares, c.RecoveryThreshold, c.PGPKeys = 1, 1, []string{"holder@example.com"}
		},
			"bootstrap.pgpKeys[0]: not base64"},
		{"not an OpenPGP key", func(c *bootstrap.Config) {
			c.RecoveryShares, c.RecoveryThreshold, c.PGPKeys = 1, 1, []string{base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----"))}
		}, "bootstrap.pgpKeys[0]: not an OpenPGP key"},
		{"a private key", func(c *bootstrap.Config) {
			c.RecoveryShares, c.RecoveryThreshold, c.PGPKeys = 1, 1, []string{testPrivateKey(t)}
		},
			"bootstrap.pgpKeys[0]: a private key; give only the public key"},
		{"break-glass not an ARN", func(c *bootstrap.Config) { c.BreakGlassPrincipals = []string{"admins"} },
			`bootstrap.breakGlassPrincipals[0]: "admins" is not an IAM principal ARN`},
		{"prefix without hyphen", func(c *bootstrap.Config) { c.NamePrefix = "platform" },
			`bootstrap.namePrefix: "platform" must be lowercase`},
		{"TTL of a day", func(c *bootstrap.Config) { c.TokenTTL = "24h" },
			`bootstrap.tokenTtl: "24h" must be a Go duration from 1m to 1h`},
		// Three waits of 300 s and 300 s of AWS calls and container starts:
		// the 900 s this key defaulted to left the Job killed mid-gate.
		{"deadline the waits alone consume", func(c *bootstrap.Config) { c.TimeoutSeconds = 900 },
			"bootstrap.timeoutSeconds: 900 is under 1200, what the Job may take before it fails with its own message: 3 waits for Vault of up to bootstrap.gateTimeoutSeconds (300) each, and 300s for its AWS calls and container starts (a Job killed at its deadline says nothing); raise it to 1200 or more, or lower bootstrap.gateTimeoutSeconds to 200 or less"},
		{"longer gate, same deadline", func(c *bootstrap.Config) { c.GateTimeoutSeconds = 401 },
			"bootstrap.timeoutSeconds: 1500 is under 1503"},
		{"deadline under the overhead alone", func(c *bootstrap.Config) { c.TimeoutSeconds, c.GateTimeoutSeconds = 300, 10 },
			"bootstrap.timeoutSeconds: 300 is under 330, what the Job may take before it fails with its own message: 3 waits for Vault of up to bootstrap.gateTimeoutSeconds (10) each, and 300s for its AWS calls and container starts (a Job killed at its deadline says nothing); raise it to 330 or more"},
	}
	for _, tc := range cases {
		c := bootstrap.DefaultConfig()
		tc.edit(&c)
		var got []string
		for _, p := range c.Validate("bootstrap") {
			got = append(got, p.String())
		}
		if !strings.Contains(strings.Join(got, "\n"), tc.want) {
			t.Errorf("%s: problems %q do not say %q", tc.name, got, tc.want)
		}
	}

	c := bootstrap.DefaultConfig()
	c.RecoveryShares, c.RecoveryThreshold, c.PGPKeys = 1, 1, []string{public}
	if p := c.Validate("bootstrap"); len(p) != 0 {
		t.Errorf("one share for one valid public key: %v", p)
	}
	if p := bootstrap.DefaultConfig().Validate("bootstrap"); len(p) != 0 {
		t.Errorf("the defaults are invalid: %v", p)
	}
	// The bound is inclusive, and a shorter gate leaves room.
	c = bootstrap.DefaultConfig()
	c.TimeoutSeconds, c.GateTimeoutSeconds = 900, 200
	if p := c.Validate("bootstrap"); len(p) != 0 {
		t.Errorf("a 900 s deadline over three 200 s waits: %v", p)
	}
}
