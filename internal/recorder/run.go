package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"

	"github.com/secrets-platform/secrets-platform/internal/configkeys"
)

// StackConfig is a stack's configuration as the Pulumi engine hands it to a
// program: fully qualified keys ("secrets-platform:vault") to strings, with
// objects and arrays JSON-encoded.
type StackConfig struct {
	Values map[string]string
	// SecretKeys lists the keys whose value was given as a secret.
	SecretKeys []string
}

// TestSecretValue is what a `secure:` value in a stack file is replaced
// with when the file is read without the stack's secrets provider. Its path
// is part of it so that a leak can be traced to its key.
func TestSecretValue(path string) string {
	return "test-secret-value-for-" + path
}

// LoadStackFile reads Pulumi.<stack>.yaml from dir. Encrypted values
// (`secure: ...`) cannot be decrypted here; each is replaced with
// TestSecretValue(path) and its top-level key is marked secret, as the
// engine would mark it.
func LoadStackFile(dir, stack string) (StackConfig, error) {
	path := filepath.Join(dir, "Pulumi."+stack+".yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return StackConfig{}, fmt.Errorf("reading stack file: %w", err)
	}
	var file struct {
		Config map[string]any `json:"config"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		return StackConfig{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	cfg := StackConfig{Values: map[string]string{}}
	for key, value := range file.Config {
		if !strings.Contains(key, ":") {
			key = Project + ":" + key
		}
		value, hadSecret := replaceSecure(value, key)
		if err := cfg.Set(key, value); err != nil {
			return StackConfig{}, err
		}
		if hadSecret {
			cfg.SecretKeys = append(cfg.SecretKeys, key)
		}
	}
	sort.Strings(cfg.SecretKeys)
	return cfg, nil
}

// Set stores a value the way the engine does: strings as they are, anything
// else JSON-encoded.
func (c StackConfig) Set(key string, value any) error {
	if s, ok := value.(string); ok {
		c.Values[key] = s
		return nil
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encoding config %s: %w", key, err)
	}
	c.Values[key] = string(encoded)
	return nil
}

// SecretValues returns the test values that stand for the stack's secrets.
func (c StackConfig) SecretValues() []string {
	var out []string
	for _, key := range c.SecretKeys {
		collectSecretValues(c.Values[key], &out)
	}
	return out
}

func collectSecretValues(encoded string, out *[]string) {
	var v any
	if json.Unmarshal([]byte(encoded), &v) != nil {
		v = encoded
	}
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			if strings.HasPrefix(t, TestSecretValue("")) {
				*out = append(*out, t)
			}
		case map[string]any:
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
}

func replaceSecure(v any, path string) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		if _, ok := t["secure"]; ok && len(t) == 1 {
			return TestSecretValue(path), true
		}
		found := false
		out := map[string]any{}
		for k, e := range t {
			r, had := replaceSecure(e, path+"."+k)
			out[k], found = r, found || had
		}
		return out, found
	case []any:
		found := false
		out := make([]any, len(t))
		for i, e := range t {
			r, had := replaceSecure(e, fmt.Sprintf("%s[%d]", path, i))
			out[i], found = r, found || had
		}
		return out, found
	}
	return v, false
}

// account is the AWS account the config names (unseal.accountId), ""
// when it names none.
func (c StackConfig) account() string {
	raw, ok := c.Values[accountConfigKey]
	if !ok {
		return ""
	}
	var group struct {
		AccountID string `json:"accountId"`
	}
	// A malformed group is the program's to report, with its key.
	_ = json.Unmarshal([]byte(raw), &group)
	return group.AccountID
}

// Run executes program under a new recording monitor with the given
// config, and returns the monitor with everything the program registered.
func Run(stack string, cfg StackConfig, program pulumi.RunFunc) (*Monitor, error) {
	mon := NewMonitor(stack)
	return mon, mon.Run(cfg, program)
}

// RunComponent executes program for a stack called "test" with no config:
// how tests build components in isolation, and see their errors.
func RunComponent(program pulumi.RunFunc) (*Monitor, error) {
	return Run("test", StackConfig{Values: map[string]string{}}, program)
}

// Run executes program under this monitor, for instance after FailOn. The
// program learns the stack's keys from its context (configkeys), as the
// engine's environment variable would tell it, but per run, so tests can
// run in parallel.
func (m *Monitor) Run(cfg StackConfig, program pulumi.RunFunc) error {
	m.mu.Lock()
	m.account = cfg.account()
	m.mu.Unlock()
	keys := slices.Sorted(maps.Keys(cfg.Values))
	ctx, err := pulumi.NewContext(configkeys.WithKeys(context.Background(), keys), pulumi.RunInfo{
		Project:          Project,
		Stack:            m.stack,
		Config:           cfg.Values,
		ConfigSecretKeys: cfg.SecretKeys,
		Mocks:            m,
	})
	if err != nil {
		return err
	}
	defer func() { _ = ctx.Close() }()
	return pulumi.RunWithContext(ctx, program)
}
