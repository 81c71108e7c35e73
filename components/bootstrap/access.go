package bootstrap

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secrets-platform/secrets-platform/components/validate"
)

// People log in to Vault with their AWS identity: Vault's AWS auth method
// (IAM type) at AWSAuthMount takes a GetCallerIdentity request the caller
// signed and asks STS who signed it. Each access level is a role there,
// bound to IAM role ARNs, with a policy of its own made from what the
// runbooks run at that level, and short-lived tokens.

// Access levels. Each is an AWS-auth role and a policy, both named
// Config.NamePrefix followed by the level.
const (
	// OperatorLevel reads: Raft's peers and autopilot, the audit devices,
	// the configuration the bootstrap applies, the KV metadata (never a
	// value); it saves a snapshot.
	OperatorLevel = "operator"
	// AdminLevel is operator, and may change what the configurator
	// configures, restore a snapshot, step the leader down, remove a Raft
	// peer, find and revoke tokens, rotate a database password at once and
	// write (never read) KV values.
	AdminLevel = "admin"
)

// AccessLevels are the levels, from the least to the most privileged.
var AccessLevels = []string{OperatorLevel, AdminLevel}

// AWSAuthMount is the path of the AWS auth method; the bootstrap owns it.
const AWSAuthMount = "aws"

// AccessRole is the AWS-auth role (and policy) of level: what
// `vault login -method=aws role=...` names.
func (c Config) AccessRole(level string) string { return c.NamePrefix + level }

// roleARN is an IAM role ARN as Vault matches it: Vault turns the
// caller's session ARN (arn:aws:sts::<account>:assumed-role/<name>/<session>)
// into arn:aws:iam::<account>:role/<name>, which carries no path, and
// compares that with the role's list.
var (
	roleARN         = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_-]{1,64}$`)
	roleARNWithPath = regexp.MustCompile(`^(arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/)[A-Za-z0-9+=,.@_/-]+/([A-Za-z0-9+=,.@_-]{1,64})$`)
)

// validateAccess reports the access levels' problems: unknown levels,
// empty lists, ARNs that are not IAM role ARNs Vault can match, and the
// tokens' lifetime.
func (c Config) validateAccess(p *validate.Problems, key func(string) string) {
	for _, level := range validate.SortedKeys(c.Access) {
		path := validate.Join(key("access"), level)
		if !slices.Contains(AccessLevels, level) {
			p.Addf(path, "unknown access level %q; the levels are %s", level, strings.Join(AccessLevels, ", "))
			continue
		}
		arns := c.Access[level]
		if len(arns) == 0 {
			p.Addf(path, "no IAM role ARNs: give at least one, or remove the level")
		}
		for i, arn := range arns {
			item := validate.Index(path, i)
			switch {
			case roleARN.MatchString(arn):
				if slices.Index(arns, arn) != i {
					p.Addf(item, "%q is listed twice", arn)
				}
			case roleARNWithPath.MatchString(arn):
				m := roleARNWithPath.FindStringSubmatch(arn)
				p.Addf(item, "%q has a path: give %s%s; Vault matches the role in the caller's session ARN, which carries no path", arn, m[1], m[3])
			default:
				p.Addf(item, "%q is not an IAM role ARN such as arn:aws:iam::111122223333:role/platform-oncall (people log in with a role they assume; users, sessions and wildcards are not accepted)", arn)
			}
		}
	}
	if d, err := time.ParseDuration(c.AccessTokenTTL); err != nil || d < 5*time.Minute || d > time.Hour {
		p.Addf(key("accessTokenTtl"), "%q must be a Go duration from 5m to 1h, such as 15m", c.AccessTokenTTL)
	}
}

// AWSLogin is where the AWS auth method sends the callers' signed
// GetCallerIdentity requests, and what they must sign.
type AWSLogin struct {
	// Region is the STS region; Vault calls its regional endpoint, which
	// the pods reach through the AWS egress (a VPC endpoint, or AWS's
	// addresses).
	Region string
	// ServerID is the value of the X-Vault-AWS-IAM-Server-ID header every
	// login must sign, so a request signed for this Vault is good for no
	// other (and the reverse).
	ServerID string
}

// STSEndpoint is the regional STS endpoint of the region.
func (l AWSLogin) STSEndpoint() string {
	suffix := "amazonaws.com"
	if strings.HasPrefix(l.Region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://sts." + l.Region + "." + suffix
}

// LoginCommand is the one command a person runs to log in at level: the
// CLI signs for the regional endpoint (AWS_STS_REGIONAL_ENDPOINTS, as
// Vault forwards the request there) and the server ID header.
func (c Config) LoginCommand(l AWSLogin, level string) string {
	return fmt.Sprintf("AWS_STS_REGIONAL_ENDPOINTS=regional vault login -method=aws region=%s header_value=%s role=%s",
		l.Region, l.ServerID, c.AccessRole(level))
}

// loginMetadata are the AWS auth method's token metadata (its
// iam_metadata): Vault's defaults and the session's ARN, so that the audit
// log names the person (the session) behind every request, not only the
// role.
var loginMetadata = []string{"account_id", "auth_type", "client_arn"}

// awsRoleFile prefixes the arguments of an AWS-auth role in the plan:
// aws-role-<name>.args.
const awsRoleFile = "aws-role-"

// accessRole is an access level's policy and the arguments of its
// AWS-auth role (`vault write auth/aws/role/<name>`, one a line).
type accessRole struct {
	policy Policy
	args   string
}

// accessRoles are the roles of the levels Config.Access binds, in the
// order of AccessLevels.
func accessRoles(c Config, s VaultSetup) ([]accessRole, error) {
	ttl, err := time.ParseDuration(c.AccessTokenTTL)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: access token TTL %q: %w", c.AccessTokenTTL, err)
	}
	seconds := strconv.Itoa(int(ttl.Seconds()))
	var roles []accessRole
	for _, level := range AccessLevels {
		arns, ok := c.Access[level]
		if !ok {
			continue
		}
		name := c.AccessRole(level)
		roles = append(roles, accessRole{
			policy: Policy{Name: name, Rules: levelRules(c, s, level)},
			// resolve_aws_unique_ids=false: Vault compares ARNs and never
			// calls IAM, so the pods need STS only (hence no paths).
			args: strings.Join([]string{
				"auth_type=iam",
				"bound_iam_principal_arn=" + strings.Join(arns, ","),
				"resolve_aws_unique_ids=false",
				"token_policies=" + name,
				"token_ttl=" + seconds,
				"token_max_ttl=" + seconds,
			}, "\n") + "\n",
		})
	}
	return roles, nil
}

// levelRules are what a level's policy grants, from the runbooks' commands
// at that level (docs/runbooks/README.md, "Who can do what"). Vault's
// default policy comes with every token: `vault token lookup` of itself.
func levelRules(c Config, s VaultSetup, level string) []Rule {
	prefix, db := c.NamePrefix, c.DatabaseMount()
	read, list := []string{"read"}, []string{"list"}
	operator := []Rule{
		// vault operator raft list-peers / autopilot state / snapshot save
		{Path: "sys/storage/raft/configuration", Capabilities: read},
		{Path: "sys/storage/raft/autopilot/state", Capabilities: read},
		{Path: "sys/storage/raft/snapshot", Capabilities: read},
		// vault audit list: Vault requires sudo to list audit devices.
		{Path: "sys/audit", Capabilities: []string{"read", "sudo"}},
		// What the configurator configures, read back (vault auth list,
		// secrets list, policy read, read auth/.../role/...).
		{Path: "sys/auth", Capabilities: read},
		{Path: "sys/mounts", Capabilities: read},
		{Path: "sys/policies/acl", Capabilities: list},
		{Path: "sys/policies/acl/" + prefix + "*", Capabilities: read},
		{Path: "auth/" + s.AuthMount + "/config", Capabilities: read},
		{Path: "auth/" + s.AuthMount + "/role", Capabilities: list},
		{Path: "auth/" + s.AuthMount + "/role/" + prefix + "*", Capabilities: read},
		{Path: "auth/" + AWSAuthMount + "/config/client", Capabilities: read},
		{Path: "auth/" + AWSAuthMount + "/config/identity", Capabilities: read},
		{Path: "auth/" + AWSAuthMount + "/role", Capabilities: list},
		{Path: "auth/" + AWSAuthMount + "/role/" + prefix + "*", Capabilities: read},
		// Databases: connections and static roles (Vault never returns a
		// password from either).
		{Path: db + "/config", Capabilities: list},
		{Path: db + "/config/*", Capabilities: read},
		{Path: db + "/static-roles", Capabilities: list},
		{Path: db + "/static-roles/*", Capabilities: read},
		// vault kv metadata get: versions and dates, no value.
		{Path: s.KVMount + "/metadata", Capabilities: list},
		{Path: s.KVMount + "/metadata/*", Capabilities: []string{"read", "list"}},
	}
	if level == OperatorLevel {
		return operator
	}
	update, sudo := []string{"update"}, []string{"update", "sudo"}
	return mergeRules(operator, configuratorRules(prefix, s), []Rule{
		// vault operator raft snapshot restore [-force]
		{Path: "sys/storage/raft/snapshot", Capabilities: sudo},
		{Path: "sys/storage/raft/snapshot-force", Capabilities: sudo},
		// vault operator step-down; vault operator raft remove-peer
		{Path: "sys/step-down", Capabilities: sudo},
		{Path: "sys/storage/raft/remove-peer", Capabilities: sudo},
		// Find and revoke tokens (a root token left by break glass).
		{Path: "auth/token/accessors", Capabilities: []string{"list", "sudo"}},
		{Path: "auth/token/lookup-accessor", Capabilities: update},
		{Path: "auth/token/revoke-accessor", Capabilities: update},
		// vault write -f <db>/rotate-role/<role>: a password now.
		{Path: db + "/rotate-role/*", Capabilities: update},
		// vault kv put / patch: a new value, without reading the old one.
		{Path: s.KVMount + "/data/*", Capabilities: []string{"create", "update", "patch"}},
	})
}

// capabilityOrder is the order a merged rule lists its capabilities in.
var capabilityOrder = []string{"create", "read", "update", "patch", "delete", "list", "sudo"}

// mergeRules joins rule lists into one policy's: one rule per path, in
// the order paths first appear, with every capability any list grants it
// (only capabilityOrder's: the levels deny nothing).
func mergeRules(lists ...[]Rule) []Rule {
	var paths []string
	granted := map[string][]string{}
	for _, rules := range lists {
		for _, r := range rules {
			if _, seen := granted[r.Path]; !seen {
				paths = append(paths, r.Path)
			}
			granted[r.Path] = append(granted[r.Path], r.Capabilities...)
		}
	}
	merged := make([]Rule, len(paths))
	for i, p := range paths {
		var caps []string
		for _, c := range capabilityOrder {
			if slices.Contains(granted[p], c) {
				caps = append(caps, c)
			}
		}
		merged[i] = Rule{Path: p, Capabilities: caps}
	}
	return merged
}
