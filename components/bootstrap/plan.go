package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Rule grants capabilities on one Vault path (a `path` block of a policy).
type Rule struct {
	// Path is the API path, without /v1/; a trailing * is a prefix.
	Path string
	// Capabilities are Vault's: create, read, update, patch, delete, list, sudo.
	Capabilities []string
}

// Client is a workload that logs in to Vault with a token of its service
// account: it gets a Kubernetes-auth role and a policy, both named Name.
type Client struct {
	// Name of the role and the policy; it starts with Config.NamePrefix.
	Name string
	// ServiceAccount and Namespace are the only identity the role accepts.
	ServiceAccount, Namespace string
	// Rules are what the client's own policy grants; none and Policies
	// set: the role has no policy of its own.
	Rules []Rule
	// Policies are further policies the role's tokens carry, each written
	// and pruned on its own: one per ExternalSecret of a database role.
	Policies []Policy
}

// Policy is a named Vault ACL policy.
type Policy struct {
	// Name starts with Config.NamePrefix.
	Name string
	// Rules are what it grants, and nothing else.
	Rules []Rule
}

// policyNames are the policies of the client's tokens.
func (c Client) policyNames() []string {
	var names []string
	if len(c.Rules) > 0 || len(c.Policies) == 0 {
		names = append(names, c.Name)
	}
	for _, p := range c.Policies {
		names = append(names, p.Name)
	}
	return names
}

// VaultSetup is what the bootstrap configures in Vault besides its own
// identity: where secrets are read from, where clients log in, and who they
// are.
type VaultSetup struct {
	// KVMount is the path of the KV v2 engine the SecretStore reads.
	KVMount string
	// AuthMount is the path of the Kubernetes auth method.
	AuthMount string
	// Clients are the workloads that log in to Vault.
	Clients []Client
	// Databases are the Postgres databases whose credentials Vault's
	// database engine owns (at Config.DatabaseMount).
	Databases []DatabaseConfig
}

// Names of the files of the bootstrap's ConfigMap.
const (
	scriptFile   = "bootstrap.sh"
	policyPrefix = "policy-" // policy-<name>.hcl
	roleFile     = "role-"   // role-<name>.args
	pgpKeyPrefix = "pgp-"    // pgp-<i>.key
)

// ConfiguratorName follows Config.NamePrefix in the name of the bootstrap's
// own role and policy.
const ConfiguratorName = "configurator"

// ConfiguratorRole is the name of the bootstrap's own role and policy.
func (c Config) ConfiguratorRole() string { return c.NamePrefix + ConfiguratorName }

// plan is everything one revision of the Job applies: the files it reads
// from its ConfigMap and its plain settings. Its hash names the Job, so a
// change of either, and nothing else, runs a new Job.
type plan struct {
	Files    map[string]string `json:"files"`
	Settings map[string]string `json:"settings"`
}

// planInput is what a plan is made from.
type planInput struct {
	Config
	Setup VaultSetup
	// Namespace and ServiceAccount are the Job's: the configurator's identity.
	Namespace string
	// Voters are the addresses of the voters the gate checks, by pod name.
	Voters []Voter
	// AuditFile is the file audit device's path on the servers.
	AuditFile string
	// KubernetesHost is the API server address Vault reviews tokens with.
	KubernetesHost string
	// Login is where the AWS auth method checks logins.
	Login AWSLogin
}

// Voter is one Vault server the gate checks.
type Voter struct {
	// Name is the pod's name, which messages name.
	Name string
	// Address is its API address, reachable before it is ready.
	Address string
}

// newPlan renders the Vault-side configuration: a policy (HCL) and a role
// (arguments of `vault write`) per client and for the configurator, and the
// settings the script reads from its environment.
func newPlan(in planInput) (plan, error) {
	ttl, err := time.ParseDuration(in.TokenTTL)
	if err != nil {
		return plan{}, fmt.Errorf("bootstrap: token TTL %q: %w", in.TokenTTL, err)
	}
	dbs := ResolveDatabases(in.Setup.Databases)
	files, err := databaseFiles(dbs)
	if err != nil {
		return plan{}, err
	}
	files[scriptFile] = Script
	clients := append([]Client{{
		Name:           in.ConfiguratorRole(),
		ServiceAccount: in.ServiceAccount,
		Namespace:      in.Namespace,
		Rules:          append(configuratorRules(in.NamePrefix, in.Setup), databaseRules(in.Config, in.Setup.KVMount)...),
	}}, in.Setup.Clients...)
	if len(dbs) > 0 {
		clients = append(clients, Client{
			Name:           in.IntakeRole(),
			ServiceAccount: in.IntakeServiceAccount(),
			Namespace:      in.Namespace,
			Rules:          intakeRules(in.Config, in.Setup.KVMount),
		})
	}
	var dbNames []string
	for _, d := range dbs {
		dbNames = append(dbNames, d.Name)
		files[databasePrefix+d.Name+".intake"] = in.IntakeCommand(in.Namespace, in.Setup.KVMount, in.Setup.AuthMount, d.Name) + "\n"
	}
	addPolicy := func(p Policy) error {
		if !strings.HasPrefix(p.Name, in.NamePrefix) {
			return fmt.Errorf("bootstrap: policy %q does not start with the name prefix %q", p.Name, in.NamePrefix)
		}
		if _, dup := files[policyPrefix+p.Name+".hcl"]; dup {
			return fmt.Errorf("bootstrap: two clients or policies are called %q", p.Name)
		}
		files[policyPrefix+p.Name+".hcl"] = string(PolicyHCL(p.Rules))
		return nil
	}
	for i, c := range clients {
		if !strings.HasPrefix(c.Name, in.NamePrefix) {
			return plan{}, fmt.Errorf("bootstrap: client %q does not start with the name prefix %q", c.Name, in.NamePrefix)
		}
		if _, dup := files[roleFile+c.Name+".args"]; dup {
			return plan{}, fmt.Errorf("bootstrap: two clients are called %q", c.Name)
		}
		if len(c.Rules) > 0 || len(c.Policies) == 0 {
			if err := addPolicy(Policy{Name: c.Name, Rules: c.Rules}); err != nil {
				return plan{}, err
			}
		}
		for _, p := range c.Policies {
			if err := addPolicy(p); err != nil {
				return plan{}, err
			}
		}
		roleTTL := ttl
		if i == 0 {
			// The configurator's token lasts the whole Job, gate included.
			roleTTL = time.Duration(in.TimeoutSeconds) * time.Second
		}
		files[roleFile+c.Name+".args"] = roleArgs(c, roleTTL)
	}
	access, err := accessRoles(in.Config, in.Setup)
	if err != nil {
		return plan{}, err
	}
	for _, r := range access {
		if err := addPolicy(r.policy); err != nil {
			return plan{}, err
		}
		files[awsRoleFile+r.policy.Name+".args"] = r.args
	}
	for i, key := range in.PGPKeys {
		files[fmt.Sprintf("%s%d.key", pgpKeyPrefix, i)] = key
	}

	voters := make([]string, len(in.Voters))
	for i, v := range in.Voters {
		voters[i] = v.Name + "=" + v.Address
	}
	settings := map[string]string{
		"AUTO_INIT":          strconv.FormatBool(in.AutoInit),
		"RECOVERY_SHARES":    strconv.Itoa(in.RecoveryShares),
		"RECOVERY_THRESHOLD": strconv.Itoa(in.RecoveryThreshold),
		"PGP_KEYS":           strconv.Itoa(len(in.PGPKeys)),
		"NAME_PREFIX":        in.NamePrefix,
		"CONFIGURATOR_ROLE":  in.ConfiguratorRole(),
		"KV_MOUNT":           in.Setup.KVMount,
		"AUTH_MOUNT":         in.Setup.AuthMount,
		"KUBERNETES_HOST":    in.KubernetesHost,
		"AUDIT_FILE":         in.AuditFile,
		"VOTERS":             strings.Join(voters, " "),
		"GATE_TIMEOUT":       strconv.Itoa(in.GateTimeoutSeconds),
		// The bounds of every AWS CLI call, which Config.Validate counts.
		"AWS_CONNECT_TIMEOUT": strconv.Itoa(awsConnectTimeout),
		"AWS_READ_TIMEOUT":    strconv.Itoa(awsReadTimeout),
		"AWS_MAX_ATTEMPTS":    strconv.Itoa(awsMaxAttempts),
		"DATABASE_MOUNT":      in.DatabaseMount(),
		"DATABASES":           strings.Join(dbNames, " "),
		"INTAKE_PREFIX":       in.IntakeRole(),
		"AWS_AUTH_MOUNT":      AWSAuthMount,
		"AWS_STS_ENDPOINT":    in.Login.STSEndpoint(),
		"AWS_STS_REGION":      in.Login.Region,
		"AWS_AUTH_SERVER_ID":  in.Login.ServerID,
		"AWS_AUTH_METADATA":   strings.Join(loginMetadata, ","),
	}
	return plan{Files: files, Settings: settings}, nil
}

// hash is a short digest of the plan, for the Job's name.
func (p plan) hash() string {
	raw, _ := json.Marshal(p) // maps marshal with sorted keys
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])[:10]
}

// configuratorRules are what the bootstrap itself may do once root is
// revoked: manage the names with its prefix, the auth methods and the KV
// mount it configures, and read the health of Raft. Vault requires sudo to
// list and enable audit devices and to enable auth methods.
func configuratorRules(prefix string, s VaultSetup) []Rule {
	return []Rule{
		{Path: "sys/audit", Capabilities: []string{"read", "sudo"}},
		{Path: "sys/audit/" + prefix + "*", Capabilities: []string{"create", "update", "sudo"}},
		{Path: "sys/auth", Capabilities: []string{"read"}},
		{Path: "sys/auth/" + s.AuthMount, Capabilities: []string{"create", "read", "update", "sudo"}},
		{Path: "auth/" + s.AuthMount + "/config", Capabilities: []string{"create", "read", "update"}},
		{Path: "auth/" + s.AuthMount + "/role", Capabilities: []string{"list"}},
		{Path: "auth/" + s.AuthMount + "/role/" + prefix + "*", Capabilities: []string{"create", "read", "update", "delete"}},
		{Path: "sys/mounts", Capabilities: []string{"read"}},
		{Path: "sys/mounts/" + s.KVMount, Capabilities: []string{"create", "read", "update"}},
		{Path: "sys/policies/acl", Capabilities: []string{"list"}},
		{Path: "sys/policies/acl/" + prefix + "*", Capabilities: []string{"create", "read", "update", "delete"}},
		{Path: "sys/storage/raft/autopilot/state", Capabilities: []string{"read"}},
		// The AWS auth method of the access levels: also without any, to
		// remove the roles of levels that left the config.
		{Path: "sys/auth/" + AWSAuthMount, Capabilities: []string{"create", "read", "update", "sudo"}},
		{Path: "auth/" + AWSAuthMount + "/config/client", Capabilities: []string{"create", "read", "update"}},
		{Path: "auth/" + AWSAuthMount + "/config/identity", Capabilities: []string{"create", "read", "update"}},
		{Path: "auth/" + AWSAuthMount + "/role", Capabilities: []string{"list"}},
		{Path: "auth/" + AWSAuthMount + "/role/" + prefix + "*", Capabilities: []string{"create", "read", "update", "delete"}},
	}
}

// PolicyHCL writes rules as a Vault ACL policy, one path block each.
func PolicyHCL(rules []Rule) []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	for i, r := range rules {
		if i > 0 {
			body.AppendNewline()
		}
		caps := make([]cty.Value, len(r.Capabilities))
		for j, c := range r.Capabilities {
			caps[j] = cty.StringVal(c)
		}
		body.AppendNewBlock("path", []string{r.Path}).Body().
			SetAttributeValue("capabilities", cty.ListVal(caps))
	}
	return f.Bytes()
}

// roleArgs are the `vault write auth/<mount>/role/<name>` arguments, one a
// line: bound to exactly one service account in one namespace, for tokens
// minted for Audience, with the client's policy alone (and Vault's default,
// which lets a token look itself up and revoke itself).
func roleArgs(c Client, ttl time.Duration) string {
	seconds := strconv.Itoa(int(ttl.Seconds()))
	return strings.Join([]string{
		"bound_service_account_names=" + c.ServiceAccount,
		"bound_service_account_namespaces=" + c.Namespace,
		"audience=" + Audience,
		"token_policies=" + strings.Join(c.policyNames(), ","),
		"token_ttl=" + seconds,
		"token_max_ttl=" + seconds,
	}, "\n") + "\n"
}
