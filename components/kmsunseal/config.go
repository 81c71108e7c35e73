package kmsunseal

import (
	"regexp"
	"strings"

	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Config is KMSUnseal's plain settings: the stack's `unseal` group. The
// json tags are its keys; each field's comment ends with its default, which
// DefaultConfig states.
type Config struct {
	// AliasName is the key's alias; "" is alias/<stack>-<component name>,
	// alias/<stack>-vault-unseal in the platform. Default: "".
	AliasName string `json:"aliasName,omitempty"`
	// DeletionWindowDays is the key's deletion window, 7 to 30; the longest
	// gives the most time to notice and cancel a deletion. Default: 30.
	DeletionWindowDays int `json:"deletionWindowDays,omitempty"`
	// AccountID is the AWS account that owns the key; its IAM policies decide
	// who administers it (required). Default: none.
	AccountID string `json:"accountId"`
	// KeyARN makes the seal use an existing key instead of creating one: in
	// a stack standing up the platform in the DR region, the replica of the
	// primary stack's unseal key (docs/runbooks/disaster-recovery.md); its
	// key policy, not this program, must grant the new Vault role. Default:
	// "" (a multi-region key is created).
	KeyARN string `json:"keyArn,omitempty"`
	// Tags are added to the key and the role. Default: none.
	Tags map[string]string `json:"tags,omitempty"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{DeletionWindowDays: 30}
}

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	keyARNPattern  = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-)?[0-9a-f-]+$`)
)

// Validate reports every invalid setting, keyed by its config path under
// path (for example "unseal").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	if a := c.AliasName; a != "" && (!strings.HasPrefix(a, "alias/") || strings.HasPrefix(a, "alias/aws/") || len(a) <= len("alias/")) {
		p.Addf(key("aliasName"), "%q must start with alias/ and not alias/aws/ (reserved for AWS managed keys)", a)
	}
	if c.DeletionWindowDays < 7 || c.DeletionWindowDays > 30 {
		p.Addf(key("deletionWindowDays"), "%d is outside 7..30, the window AWS KMS allows", c.DeletionWindowDays)
	}
	if c.KeyARN != "" && !keyARNPattern.MatchString(c.KeyARN) {
		p.Addf(key("keyArn"), "%q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); leave it empty to create the key", c.KeyARN)
	}
	if c.KeyARN != "" && c.AliasName != "" {
		p.Addf(key("aliasName"), "%q names an alias to create, but %s uses an existing key, which keeps its own aliases", c.AliasName, key("keyArn"))
	}
	if !accountPattern.MatchString(c.AccountID) {
		p.Addf(key("accountId"), "%q is not a 12-digit AWS account ID; its administrators keep managing the key", c.AccountID)
	}
	return p
}

// aliasName is the configured alias, or the one derived from the stack and
// the component's name.
func (c Config) aliasName(stack, name string) string {
	if c.AliasName != "" {
		return c.AliasName
	}
	return "alias/" + stack + "-" + name
}
