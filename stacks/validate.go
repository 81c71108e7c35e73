package stacks

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// minRefreshInterval keeps ExternalSecrets from hammering Vault: the seed
// settled on 5m, and anything under a minute buys no freshness that matters.
const minRefreshInterval = time.Minute

// quotaResources are the ResourceQuota keys the platform accepts.
var quotaResources = map[string]bool{
	"requests.cpu": true, "limits.cpu": true,
	"requests.memory": true, "limits.memory": true,
	"requests.storage": true, "persistentvolumeclaims": true,
	"pods": true, "services": true, "secrets": true, "configmaps": true,
	"requests.ephemeral-storage": true, "limits.ephemeral-storage": true,
}

var (
	regionPattern    = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)
	accountPattern   = regexp.MustCompile(`^[0-9]{12}$`)
	oidcARNPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$`)
	kmsARNPattern    = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$`)
	psVersionPattern = regexp.MustCompile(`^(latest|v1\.[0-9]+)$`)
	bucketPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// problems collects every invalid value, each naming its key, the value and
// what is allowed.
type problems []string

func (p *problems) addf(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

// Validate checks the whole configuration and reports every problem at once.
func (c *Config) Validate() error {
	var p problems
	c.validateCluster(&p)
	c.validateGuardrails(&p)
	c.validateVault(&p)
	c.validateUnseal(&p)
	c.validateBackup(&p)
	c.validateExternalSecrets(&p)
	dnsLabel(&p, "observability.monitoringNamespace", c.Observability.MonitoringNamespace)
	if len(p) == 0 {
		return nil
	}
	return errors.New("invalid configuration:\n  " + strings.Join(p, "\n  "))
}

func (c *Config) validateCluster(p *problems) {
	if c.Namespace == "" {
		p.addf("namespace", "required: the workload namespace, for example production")
	} else {
		dnsLabel(p, "namespace", c.Namespace)
	}
	if !regionPattern.MatchString(c.Region) {
		p.addf("aws:region", "%q is not an AWS region; set it, for example `pulumi config set aws:region eu-west-1`", c.Region)
	}
	k := c.Kubernetes
	if !oidcARNPattern.MatchString(k.OIDCProviderARN) {
		p.addf("kubernetes.oidcProviderArn", "%q is not an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<issuer>); the IRSA roles of Vault and the snapshot job trust it", k.OIDCProviderARN)
	}
	if u, err := url.Parse(k.OIDCIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
		p.addf("kubernetes.oidcIssuer", "%q is not the cluster's https:// OIDC issuer URL", k.OIDCIssuer)
	}
	if len(k.APIServerCIDRs) == 0 {
		p.addf("kubernetes.apiServerCidrs", "required: the CIDRs of the Kubernetes API, which Vault and ESO must reach through the default-deny network policy")
	}
	cidrs(p, "kubernetes.apiServerCidrs", k.APIServerCIDRs)
	port(p, "kubernetes.apiServerPort", k.APIServerPort)
}

func (c *Config) validateGuardrails(p *problems) {
	g := c.Guardrails
	if g.PodSecurityLevel != "restricted" && g.PodSecurityLevel != "baseline" {
		p.addf("guardrails.podSecurityLevel", "%q is not allowed; use restricted (the seed's target) or baseline", g.PodSecurityLevel)
	}
	if !psVersionPattern.MatchString(g.PodSecurityVersion) {
		p.addf("guardrails.podSecurityVersion", "%q is not a Pod Security version; use v1.<minor> or latest", g.PodSecurityVersion)
	}
	if len(g.Quota) == 0 {
		p.addf("guardrails.quota", "required: the namespace's hard limits (requests.cpu, limits.cpu, requests.memory, limits.memory, pods, requests.storage)")
	}
	for _, name := range sortedKeys(g.Quota) {
		if !quotaResources[name] {
			p.addf("guardrails.quota."+name, "is not a supported quota resource; allowed: %s", strings.Join(sortedKeys(quotaResources), ", "))
		}
	}
	quota := quantities(p, "guardrails.quota", g.Quota)
	for _, r := range []string{"cpu", "memory", "ephemeral-storage"} {
		req, hasReq := quota["requests."+r]
		lim, hasLim := quota["limits."+r]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			p.addf("guardrails.quota.requests."+r, "%s is above limits.%s %s; a request cannot exceed its limit", req.String(), r, lim.String())
		}
	}
	requestsAndLimits(p, "guardrails", kube.Resources{Requests: g.DefaultRequest, Limits: g.DefaultLimit}, "defaultRequest", "defaultLimit")
	awsCIDRs(p, "guardrails.awsCidrs", g.AWSCIDRs)
	seen := map[string]bool{}
	for i, a := range g.ExtraAllows {
		key := fmt.Sprintf("guardrails.extraAllows[%d]", i)
		dnsLabel(p, key+".name", a.Name)
		if seen[a.Name] {
			p.addf(key+".name", "%q is used twice; names must be unique", a.Name)
		}
		seen[a.Name] = true
		if len(a.From) == 0 || len(a.To) == 0 {
			p.addf(key, "from and to must both select pods by label; an empty selector would open the flow to every pod")
		}
		if len(a.Ports) == 0 {
			p.addf(key+".ports", "required: every allow names its ports")
		}
		for j, pt := range a.Ports {
			port(p, fmt.Sprintf("%s.ports[%d].port", key, j), pt.Port)
			if pt.Protocol != "TCP" && pt.Protocol != "UDP" {
				p.addf(fmt.Sprintf("%s.ports[%d].protocol", key, j), "%q is not allowed; use TCP or UDP", pt.Protocol)
			}
		}
	}
}

func (c *Config) validateVault(p *problems) {
	v := c.Vault
	switch {
	case v.Replicas%2 == 0:
		p.addf("vault.replicas", "%d is even; Raft needs an odd number of voters (3 or 5)", v.Replicas)
	case v.Replicas < 3:
		p.addf("vault.replicas", "%d is too few; Raft needs 3 or 5 voters to survive the loss of one", v.Replicas)
	case v.Replicas > 5:
		p.addf("vault.replicas", "%d is too many; more than 5 voters slows every write (use 3 or 5)", v.Replicas)
	}
	chartVersion(p, "vault.chartVersion", v.ChartVersion)
	httpsURL(p, "vault.chartRepo", v.ChartRepo)
	pinnedImage(p, "vault.image", v.Image)
	dnsLabel(p, "vault.serviceAccount", v.ServiceAccount)
	if v.Mlock {
		// DESIGN decision 1 allowed mlock with a baseline namespace, but
		// baseline admits no IPC_LOCK either: only privileged does, and a
		// privileged namespace is no guardrail.
		p.addf("vault.mlock", "true needs the IPC_LOCK capability, which neither the %s level of guardrails.podSecurityLevel nor any level the platform offers (restricted, baseline) admits; keep mlock off, as HashiCorp recommends with Raft storage", c.Guardrails.PodSecurityLevel)
	}
	t := v.TLS
	if t.ValidityHours <= 0 {
		p.addf("vault.tls.validityHours", "%d must be positive", t.ValidityHours)
	}
	if t.EarlyRenewalHours <= 0 || t.EarlyRenewalHours >= t.ValidityHours {
		p.addf("vault.tls.earlyRenewalHours", "%d must be above 0 and below vault.tls.validityHours (%d), or the certificate is re-issued on every update", t.EarlyRenewalHours, t.ValidityHours)
	}
	byo := t.CACertPEM != "" || t.CAKeyPEM != ""
	switch {
	case byo && (t.CACertPEM == "" || t.CAKeyPEM == ""):
		p.addf("vault.tls", "caCertPem and caKeyPem come together: give both (your own CA) or neither (a generated CA)")
	case byo:
		caCertificate(p, "vault.tls.caCertPem", t.CACertPEM)
	case t.CAValidityHours <= t.ValidityHours:
		p.addf("vault.tls.caValidityHours", "%d must be above vault.tls.validityHours (%d): the CA must outlive the certificates it signs", t.CAValidityHours, t.ValidityHours)
	}
	workloadResources(p, "vault.resources", v.Resources)
	quantity(p, "vault.dataStorage", v.DataStorage)
	quantity(p, "vault.auditStorage", v.AuditStorage)
	positive(p, "vault.timeoutSeconds", v.TimeoutSeconds)
}

func (c *Config) validateUnseal(p *problems) {
	u := c.Unseal
	if !strings.HasPrefix(u.AliasName, "alias/") || strings.HasPrefix(u.AliasName, "alias/aws/") || len(u.AliasName) <= len("alias/") {
		p.addf("unseal.aliasName", "%q must start with alias/ and not alias/aws/ (reserved for AWS managed keys)", u.AliasName)
	}
	if u.DeletionWindowDays < 7 || u.DeletionWindowDays > 30 {
		p.addf("unseal.deletionWindowDays", "%d is outside 7..30, the window AWS KMS allows", u.DeletionWindowDays)
	}
	if !accountPattern.MatchString(u.AccountID) {
		p.addf("unseal.accountId", "%q is not a 12-digit AWS account ID; its administrators keep managing the key", u.AccountID)
	}
}

func (c *Config) validateBackup(p *problems) {
	b := c.Backup
	if b.BucketName != "" && !bucketPattern.MatchString(b.BucketName) {
		p.addf("backup.bucketName", "%q is not a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)", b.BucketName)
	}
	if b.Prefix == "" || strings.HasPrefix(b.Prefix, "/") || strings.HasSuffix(b.Prefix, "/") {
		p.addf("backup.prefix", "%q must be a non-empty key prefix without leading or trailing /", b.Prefix)
	}
	if b.RetentionDays < 1 {
		p.addf("backup.retentionDays", "%d must be at least 1 day", b.RetentionDays)
	}
	if b.NoncurrentVersionDays < 1 {
		p.addf("backup.noncurrentVersionDays", "%d must be at least 1 day", b.NoncurrentVersionDays)
	}
	if b.ObjectLockDays < 0 || b.ObjectLockDays > b.RetentionDays {
		p.addf("backup.objectLockDays", "%d must be between 0 (off) and backup.retentionDays (%d)", b.ObjectLockDays, b.RetentionDays)
	}
	if b.KMSKeyARN != "" && !kmsARNPattern.MatchString(b.KMSKeyARN) {
		p.addf("backup.kmsKeyArn", "%q is not a KMS key ARN; leave it empty to create a key", b.KMSKeyARN)
	}
	if _, err := cron.ParseStandard(b.Schedule); err != nil {
		p.addf("backup.schedule", "%q is not a cron schedule (%v); for example \"0 */6 * * *\"", b.Schedule, err)
	}
	dnsLabel(p, "backup.serviceAccount", b.ServiceAccount)
	nonEmpty(p, "backup.vaultRole", b.VaultRole)
	nonEmpty(p, "backup.vaultAuthMount", b.VaultAuthMount)
	pinnedImage(p, "backup.awsCliImage", b.AWSCLIImage)
	workloadResources(p, "backup.resources", b.Resources)
}

func (c *Config) validateExternalSecrets(p *problems) {
	e := c.ExternalSecrets
	chartVersion(p, "externalSecrets.chartVersion", e.ChartVersion)
	httpsURL(p, "externalSecrets.chartRepo", e.ChartRepo)
	if e.Replicas < 1 {
		p.addf("externalSecrets.replicas", "%d must be at least 1", e.Replicas)
	}
	if e.ServiceAccount == "default" {
		p.addf("externalSecrets.serviceAccount", "\"default\" is shared by every pod of the namespace; Vault auth needs a dedicated account such as external-secrets-vault-auth")
	} else {
		dnsLabel(p, "externalSecrets.serviceAccount", e.ServiceAccount)
	}
	workloadResources(p, "externalSecrets.resources.controller", e.Resources.Controller)
	workloadResources(p, "externalSecrets.resources.webhook", e.Resources.Webhook)
	workloadResources(p, "externalSecrets.resources.certController", e.Resources.CertController)
	s := e.Store
	dnsLabel(p, "externalSecrets.store.name", s.Name)
	nonEmpty(p, "externalSecrets.store.path", s.Path)
	if s.Version != "v2" {
		p.addf("externalSecrets.store.version", "%q is not supported; the platform uses the KV v2 engine (v2)", s.Version)
	}
	nonEmpty(p, "externalSecrets.store.authMount", s.AuthMount)
	nonEmpty(p, "externalSecrets.store.role", s.Role)
	refreshInterval(p, "externalSecrets.refreshInterval", e.RefreshInterval)
	if len(e.Secrets) == 0 {
		p.addf("externalSecrets.secrets", "required: at least one ExternalSecret (the seed syncs postgres-credentials)")
	}
	names, targets := map[string]bool{}, map[string]bool{}
	for i, s := range e.Secrets {
		key := fmt.Sprintf("externalSecrets.secrets[%d]", i)
		dnsSubdomain(p, key+".name", s.Name)
		dnsSubdomain(p, key+".target", s.Target)
		if names[s.Name] {
			p.addf(key+".name", "%q is used twice; names must be unique", s.Name)
		}
		if targets[s.Target] {
			p.addf(key+".target", "%q is written by two ExternalSecrets; each owns its Secret", s.Target)
		}
		names[s.Name], targets[s.Target] = true, true
		refreshInterval(p, key+".refreshInterval", s.RefreshInterval)
		vaultKey(p, key+".vaultKey", s.VaultKey)
		if len(s.Data) == 0 {
			p.addf(key+".data", "required: map at least one Vault property to a Secret key")
		}
		for j, d := range s.Data {
			nonEmpty(p, fmt.Sprintf("%s.data[%d].property", key, j), d.Property)
			if errs := validation.IsConfigMapKey(d.SecretKey); len(errs) > 0 {
				p.addf(fmt.Sprintf("%s.data[%d].secretKey", key, j), "%q is not a valid Secret key: %s", d.SecretKey, strings.Join(errs, "; "))
			}
		}
	}
}

func refreshInterval(p *problems, key, value string) {
	d, err := time.ParseDuration(value)
	if err != nil {
		p.addf(key, "%q is not a Go duration; write it like 5m or 1h", value)
		return
	}
	if d < minRefreshInterval {
		p.addf(key, "%s is under the 1m minimum; the seed refreshes every 5m", value)
	}
}

func dnsLabel(p *problems, key, value string) {
	if errs := validation.IsDNS1123Label(value); len(errs) > 0 {
		p.addf(key, "%q is not a DNS label: %s", value, strings.Join(errs, "; "))
	}
}

func dnsSubdomain(p *problems, key, value string) {
	if errs := validation.IsDNS1123Subdomain(value); len(errs) > 0 {
		p.addf(key, "%q is not a valid Kubernetes name: %s", value, strings.Join(errs, "; "))
	}
}

func nonEmpty(p *problems, key, value string) {
	if strings.TrimSpace(value) == "" {
		p.addf(key, "must not be empty")
	}
}

func positive(p *problems, key string, value int) {
	if value <= 0 {
		p.addf(key, "%d must be positive", value)
	}
}

func port(p *problems, key string, value int) {
	if value < 1 || value > 65535 {
		p.addf(key, "%d is not a port (1..65535)", value)
	}
}

func cidrs(p *problems, key string, values []string) {
	for i, v := range values {
		if _, _, err := net.ParseCIDR(v); err != nil {
			p.addf(fmt.Sprintf("%s[%d]", key, i), "%q is not a CIDR such as 10.0.0.0/16", v)
		}
	}
}

// awsCIDRs are where Vault and the snapshot job reach STS, KMS and S3: at
// least one, and 0.0.0.0/0 only alone, since it already allows everything.
func awsCIDRs(p *problems, key string, values []string) {
	if len(values) == 0 {
		p.addf(key, "required: the destinations of STS, KMS and S3 on 443 (0.0.0.0/0, or the ranges of interface VPC endpoints with private DNS for sts, kms and s3); without them the KMS seal and the snapshot upload fail")
		return
	}
	cidrs(p, key, values)
	if len(values) > 1 && slices.Contains(values, "0.0.0.0/0") {
		p.addf(key, "%q lists 0.0.0.0/0 with other ranges, which it already contains; give 0.0.0.0/0 alone or only the VPC endpoints' ranges", values)
	}
}

// vaultKey is a secret's path under the store's mount: segments separated
// by single slashes, none of them "." or "..", which Vault would resolve
// to another path than the one the policy names.
func vaultKey(p *problems, key, value string) {
	if strings.TrimSpace(value) == "" {
		p.addf(key, "must not be empty")
		return
	}
	for _, segment := range strings.Split(value, "/") {
		if segment == "" || segment == "." || segment == ".." {
			p.addf(key, "%q is not a clean path under the store's mount: no leading or trailing /, no empty segments, no . or ..; for example database/postgres", value)
			return
		}
	}
}

func httpsURL(p *problems, key, value string) {
	if u, err := url.Parse(value); err != nil || u.Scheme != "https" || u.Host == "" {
		p.addf(key, "%q is not an https:// URL", value)
	}
}

func chartVersion(p *problems, key, value string) {
	if _, err := semver.StrictNewVersion(value); err != nil {
		p.addf(key, "%q is not a semantic version such as 1.2.3; pin the chart exactly", value)
	}
}

func pinnedImage(p *problems, key, value string) {
	if _, _, err := kube.SplitImage(value); err != nil {
		p.addf(key, "%v", err)
	}
}

func caCertificate(p *problems, key, value string) {
	block, _ := pem.Decode([]byte(value))
	if block == nil {
		p.addf(key, "is not PEM; give the CA certificate as `pulumi config set --secret --path vault.tls.caCertPem < ca.pem`")
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		p.addf(key, "is not an X.509 certificate: %v", err)
		return
	}
	if !cert.IsCA {
		p.addf(key, "the certificate %q is not a CA (basicConstraints CA:FALSE)", cert.Subject.CommonName)
	}
}

func quantity(p *problems, key, value string) (resource.Quantity, bool) {
	q, err := resource.ParseQuantity(value)
	if err != nil {
		p.addf(key, "%q is not a Kubernetes quantity such as 500m, 2, 16Gi", value)
		return q, false
	}
	if q.Sign() < 0 {
		p.addf(key, "%q must not be negative", value)
		return q, false
	}
	return q, true
}

func quantities(p *problems, key string, values map[string]string) map[string]resource.Quantity {
	out := map[string]resource.Quantity{}
	for _, name := range sortedKeys(values) {
		if q, ok := quantity(p, key+"."+name, values[name]); ok {
			out[name] = q
		}
	}
	return out
}

// workloadResources requires cpu and memory requests and limits: the quota
// rejects pods without them (DESIGN decision 5).
func workloadResources(p *problems, key string, r kube.Resources) {
	for _, group := range []struct {
		name   string
		values map[string]string
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for _, res := range []string{"cpu", "memory"} {
			if _, ok := group.values[res]; !ok {
				p.addf(key+"."+group.name+"."+res, "required: the namespace quota admits only pods with cpu and memory requests and limits")
			}
		}
	}
	requestsAndLimits(p, key, r, "requests", "limits")
}

func requestsAndLimits(p *problems, key string, r kube.Resources, reqName, limName string) {
	req := quantities(p, key+"."+reqName, r.Requests)
	lim := quantities(p, key+"."+limName, r.Limits)
	for _, name := range sortedKeys(req) {
		q := req[name]
		if l, ok := lim[name]; ok && q.Cmp(l) > 0 {
			p.addf(key+"."+reqName+"."+name, "%s is above the limit %s; a request cannot exceed its limit", q.String(), l.String())
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
