package stacks

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

var (
	oidcARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$`)
)

// problems are every invalid value of the configuration, each keyed by its
// path: the components' own and the rules that relate them.
func (c *Config) problems() validate.Problems {
	var p validate.Problems
	c.validateCluster(&p)
	p = append(p, c.Guardrails.Validate("guardrails")...)
	p = append(p, c.Vault.Validate("vault")...)
	c.validateMlock(&p)
	c.validateAWSEgress(&p)
	p = append(p, c.Unseal.Validate("unseal")...)
	p = append(p, c.Backup.Validate("backup")...)
	c.validateDrillSnapshotSize(&p)
	p = append(p, c.ExternalSecrets.Validate("externalSecrets")...)
	p = append(p, c.Observability.Validate("observability")...)
	p = append(p, c.Bootstrap.Validate("bootstrap")...)
	p = append(p, c.Rollout.Validate("rollout")...)
	c.validateVaultClients(&p)
	c.validateRollout(&p)
	p = append(p, bootstrap.ValidateDatabases("databases", c.Databases)...)
	c.validateDatabaseDelivery(&p)
	c.validateDR(&p)
	return p
}

// validateDR relates the DR region to the primary one and to the groups
// that replicate into it.
func (c *Config) validateDR(p *validate.Problems) {
	d := c.DR
	switch {
	case d.Region == "":
		if d.ReplicationTimeControl {
			p.Addf("dr.replicationTimeControl", "true needs dr.region, the region to replicate to")
		}
	case !validate.IsRegion(d.Region):
		p.Addf("dr.region", "%q is not an AWS region: a lowercase name such as eu-central-1, or empty for no DR region", d.Region)
	case d.Region == c.Region:
		p.Addf("dr.region", "%q is aws:region itself; a copy in the same region does not survive its loss: choose another region, such as eu-central-1 for eu-west-1", d.Region)
	}
	if d.Region != "" && c.Unseal.KeyARN != "" {
		p.Addf("dr.region", "%q asks for a replica of the unseal key, but unseal.keyArn uses an existing key; a DR stack sets unseal.keyArn and leaves dr.region empty", d.Region)
	}
	*p = append(*p, c.Backup.ValidateReplica("backup", d.Region)...)
}

func (c *Config) validateCluster(p *validate.Problems) {
	if c.Namespace == "" {
		p.Addf("namespace", "required: the workload namespace, for example production")
	} else {
		p.DNSLabel("namespace", c.Namespace)
	}
	if !validate.IsRegion(c.Region) {
		p.Addf("aws:region", "%q is not an AWS region; set it, for example `pulumi config set aws:region eu-west-1`", c.Region)
	}
	k := c.Kubernetes
	if !oidcARNPattern.MatchString(k.OIDCProviderARN) {
		p.Addf("kubernetes.oidcProviderArn", "%q is not an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<issuer>); the IRSA roles of Vault and the snapshot job trust it", k.OIDCProviderARN)
	}
	if u, err := url.Parse(k.OIDCIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
		p.Addf("kubernetes.oidcIssuer", "%q is not the cluster's https:// OIDC issuer URL", k.OIDCIssuer)
	}
	if len(k.APIServerCIDRs) == 0 {
		p.Addf("kubernetes.apiServerCidrs", "required: the CIDRs of the Kubernetes API, which Vault and ESO must reach through the default-deny network policy")
	}
	p.CIDRs("kubernetes.apiServerCidrs", k.APIServerCIDRs)
	p.Port("kubernetes.apiServerPort", k.APIServerPort)
	apiServerClusterIP(p, "kubernetes.apiServerClusterIP", k.APIServerClusterIP)
}

// apiServerClusterIP is required whatever the dataplane, which the program
// cannot see: under the AWS VPC CNI, pods' calls to the API match only an
// ipBlock that holds the Service's ClusterIP.
func apiServerClusterIP(p *validate.Problems, key, value string) {
	const how = "the `kubernetes` Service's ClusterIP, one address (kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'; on EKS the first address of the service range, e.g. 172.20.0.1 or 10.100.0.1)"
	if value == "" {
		p.Addf(key, "required: %s; under the AWS VPC CNI's network policies, pods reach the API only through it", how)
		return
	}
	if _, err := netip.ParseAddr(value); err == nil && !strings.Contains(value, "%") {
		return
	}
	if _, err := netip.ParsePrefix(value); err == nil {
		p.Addf(key, "%q is a CIDR; give %s", value, how)
		return
	}
	p.Addf(key, "%q is not an IP address; give %s", value, how)
}

// validateMlock relates two groups: no level guardrails offer admits the
// IPC_LOCK capability mlock needs.
func (c *Config) validateMlock(p *validate.Problems) {
	if c.Vault.Mlock {
		// DESIGN decision 1 allowed mlock with a baseline namespace, but
		// baseline admits no IPC_LOCK either: only privileged does, and a
		// privileged namespace is no guardrail.
		p.Addf("vault.mlock", "true needs the IPC_LOCK capability, which neither the %s level of guardrails.podSecurityLevel nor any level the platform offers (restricted, baseline) admits; keep mlock off, as HashiCorp recommends with Raft storage", c.Guardrails.PodSecurityLevel)
	}
}

// validateAWSEgress relates guardrails to the AWS the other components use:
// Vault's seal (STS, KMS) and the snapshot upload (STS, S3) need egress.
func (c *Config) validateAWSEgress(p *validate.Problems) {
	if len(c.Guardrails.AWSCIDRs) == 0 {
		p.Addf("guardrails.awsCidrs", "required: the destinations of STS, KMS and S3 on 443 (0.0.0.0/0, or the ranges of interface VPC endpoints with private DNS for sts, kms and s3); without them the KMS seal and the snapshot upload fail")
	}
}

// validateVaultClients relates the Vault identities of ESO and the snapshot
// job to the bootstrap that creates them: one Kubernetes auth method, not
// at the AWS auth method's path, and role names the bootstrap recognises as
// its own (it removes only those) that are not an access level's.
func (c *Config) validateVaultClients(p *validate.Problems) {
	prefix := c.Bootstrap.NamePrefix
	for _, r := range []struct{ key, role string }{
		{"externalSecrets.store.role", c.ExternalSecrets.Store.Role},
		{"backup.vaultRole", c.Backup.VaultRole},
		{"rollout.vaultRole", c.Rollout.VaultRole},
	} {
		if !strings.HasPrefix(r.role, prefix) {
			p.Addf(r.key, "%q must start with bootstrap.namePrefix (%q): the bootstrap creates this role and manages only names with its prefix", r.role, prefix)
		}
		for _, level := range bootstrap.AccessLevels {
			if r.role == c.Bootstrap.AccessRole(level) {
				p.Addf(r.key, "%q is the policy of the %s access level (bootstrap.access); name the client's role otherwise", r.role, level)
			}
		}
	}
	if c.ExternalSecrets.Store.AuthMount == bootstrap.AWSAuthMount {
		p.Addf("externalSecrets.store.authMount", "%q is where the bootstrap mounts the AWS auth method people log in with (bootstrap.access); mount the Kubernetes auth method at another path, such as kubernetes", bootstrap.AWSAuthMount)
	}
	if c.Backup.VaultRole == c.ExternalSecrets.Store.Role {
		p.Addf("backup.vaultRole", "%q is also externalSecrets.store.role; each client needs its own role and policy", c.Backup.VaultRole)
	}
	if own := c.Bootstrap.ConfiguratorRole(); c.Backup.VaultRole == own || c.ExternalSecrets.Store.Role == own {
		p.Addf("bootstrap.namePrefix", "%q+%q is the bootstrap's own role; name the clients' roles otherwise", prefix, bootstrap.ConfiguratorName)
	}
	if c.Backup.VaultAuthMount != c.ExternalSecrets.Store.AuthMount {
		p.Addf("backup.vaultAuthMount", "%q differs from externalSecrets.store.authMount (%q): the bootstrap configures one Kubernetes auth method for both", c.Backup.VaultAuthMount, c.ExternalSecrets.Store.AuthMount)
	}
}

// validateRollout relates the rollout's waits to what bounds them: its Job's
// deadline must cover the snapshot and every voter's wait (else `pulumi up`
// gives up with no message from the script), and each voter's wait must
// end before the Vault token it logged in with for that voter expires.
func (c *Config) validateRollout(p *validate.Problems) {
	r := c.Rollout
	if r.VaultRole == c.Backup.VaultRole || r.VaultRole == c.ExternalSecrets.Store.Role || r.VaultRole == c.Bootstrap.ConfiguratorRole() {
		p.Addf("rollout.vaultRole", "%q is another client's role (backup.vaultRole, externalSecrets.store.role or the bootstrap's own); each client needs its own role and policy", r.VaultRole)
	}
	waits := c.Backup.ActiveDeadlineSeconds + rolloutSnapshotMargin + c.Vault.Replicas*r.VoterTimeoutSeconds
	if r.TimeoutSeconds <= waits {
		p.Addf("rollout.timeoutSeconds", "%d must exceed the waits of the rollout: the snapshot (backup.activeDeadlineSeconds %d + %d) plus vault.replicas (%d) times rollout.voterTimeoutSeconds (%d), %d in all",
			r.TimeoutSeconds, c.Backup.ActiveDeadlineSeconds, rolloutSnapshotMargin, c.Vault.Replicas, r.VoterTimeoutSeconds, waits)
	}
	if ttl, err := time.ParseDuration(c.Bootstrap.TokenTTL); err == nil && time.Duration(r.VoterTimeoutSeconds)*time.Second >= ttl {
		p.Addf("rollout.voterTimeoutSeconds", "%d must be shorter than bootstrap.tokenTtl (%s): the rollout logs in once per voter and its token must outlast the wait", r.VoterTimeoutSeconds, c.Bootstrap.TokenTTL)
	}
}

// minRefreshesPerRotation is how many ESO refreshes a rotation period must
// span at least. After each rotation the delivered Secret holds a password
// Postgres refuses until ESO's next refresh (up to one interval); with a
// period of a few intervals that stale window stays a small share of it.
const minRefreshesPerRotation = 3

// validateDatabaseDelivery relates the ExternalSecrets that deliver static
// roles to the databases: the role must exist, one ExternalSecret
// per role, and its rotation period must span a few of the ExternalSecret's
// refresh intervals.
func (c *Config) validateDatabaseDelivery(p *validate.Problems) {
	e := c.ExternalSecrets
	type staticRole struct {
		key            string // its config path
		name, rotation string
	}
	roles := map[string]staticRole{}
	var known []string
	for i, d := range bootstrap.ResolveDatabases(c.Databases) {
		for j, r := range d.StaticRoles {
			roles[r.Name] = staticRole{fmt.Sprintf("databases[%d].staticRoles[%d]", i, j), r.Name, r.RotationPeriod}
			known = append(known, r.Name)
		}
	}
	// Each database adds a wait of up to gateTimeoutSeconds for its one-time
	// admin password; below its own minimum the bootstrap group reports it.
	b := c.Bootstrap
	if n := len(c.Databases); n > 0 && b.TimeoutSeconds >= b.JobSeconds(0) && b.TimeoutSeconds < b.JobSeconds(n) {
		p.Addf("bootstrap.timeoutSeconds", "%d is under %d with %d database(s): the Job may also wait up to bootstrap.gateTimeoutSeconds (%d) for each database's one-time admin password", b.TimeoutSeconds, b.JobSeconds(n), n, b.GateTimeoutSeconds)
	}
	deliveredBy := map[string]string{}
	for i, s := range e.Secrets {
		if s.StaticRole == "" {
			continue
		}
		key := validate.Index("externalSecrets.secrets", i)
		role, ok := roles[s.StaticRole]
		if !ok {
			p.Addf(key+".staticRole", "%q is not a static role of databases[].staticRoles (they are: %s)", s.StaticRole, orNone(known))
			continue
		}
		if other, dup := deliveredBy[role.name]; dup {
			p.Addf(key+".staticRole", "%q is already delivered by ExternalSecret %q; one ExternalSecret per static role (consumers share its Secret)", role.name, other)
		}
		deliveredBy[role.name] = s.Name
		refresh := s.RefreshInterval
		if refresh == "" {
			refresh = e.RefreshInterval
		}
		r, err1 := time.ParseDuration(refresh)
		period, err2 := time.ParseDuration(role.rotation)
		if err1 != nil || err2 != nil {
			continue // reported by their groups
		}
		if period < minRefreshesPerRotation*r {
			p.Addf(role.key+".rotationPeriod",
				"%s is under %d refresh intervals (%s) of ExternalSecret %q, which delivers it: after each rotation Postgres refuses the delivered password until ESO's next refresh, up to %s later, so a shorter period leaves consumers with a refused password for much of it; use at least %s, or refresh more often",
				role.rotation, minRefreshesPerRotation, refresh, s.Name, refresh, minRefreshesPerRotation*r)
		}
	}
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
