package stacks

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

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
	oidcARNPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$`)
	psVersionPattern = regexp.MustCompile(`^(latest|v1\.[0-9]+)$`)
)

// Validate checks the whole configuration and reports every problem at once.
func (c *Config) Validate() error {
	var p validate.Problems
	c.validateCluster(&p)
	c.validateGuardrails(&p)
	p = append(p, c.Vault.Validate("vault")...)
	c.validateMlock(&p)
	p = append(p, c.Unseal.Validate("unseal")...)
	p = append(p, c.Backup.Validate("backup")...)
	p = append(p, c.ExternalSecrets.Validate("externalSecrets")...)
	p.DNSLabel("observability.monitoringNamespace", c.Observability.MonitoringNamespace)
	return validate.Err("invalid configuration", p)
}

func (c *Config) validateCluster(p *validate.Problems) {
	if c.Namespace == "" {
		p.Addf("namespace", "required: the workload namespace, for example production")
	} else {
		p.DNSLabel("namespace", c.Namespace)
	}
	if !regionPattern.MatchString(c.Region) {
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
}

func (c *Config) validateGuardrails(p *validate.Problems) {
	g := c.Guardrails
	if g.PodSecurityLevel != "restricted" && g.PodSecurityLevel != "baseline" {
		p.Addf("guardrails.podSecurityLevel", "%q is not allowed; use restricted (the seed's target) or baseline", g.PodSecurityLevel)
	}
	if !psVersionPattern.MatchString(g.PodSecurityVersion) {
		p.Addf("guardrails.podSecurityVersion", "%q is not a Pod Security version; use v1.<minor> or latest", g.PodSecurityVersion)
	}
	if len(g.Quota) == 0 {
		p.Addf("guardrails.quota", "required: the namespace's hard limits (requests.cpu, limits.cpu, requests.memory, limits.memory, pods, requests.storage)")
	}
	for _, name := range validate.SortedKeys(g.Quota) {
		if !quotaResources[name] {
			p.Addf("guardrails.quota."+name, "is not a supported quota resource; allowed: %s", strings.Join(validate.SortedKeys(quotaResources), ", "))
		}
	}
	quota := p.Quantities("guardrails.quota", g.Quota)
	for _, r := range []string{"cpu", "memory", "ephemeral-storage"} {
		req, hasReq := quota["requests."+r]
		lim, hasLim := quota["limits."+r]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			p.Addf("guardrails.quota.requests."+r, "%s is above limits.%s %s; a request cannot exceed its limit", req.String(), r, lim.String())
		}
	}
	p.RequestsAndLimits("guardrails", kube.Resources{Requests: g.DefaultRequest, Limits: g.DefaultLimit}, "defaultRequest", "defaultLimit")
	p.CIDRs("guardrails.awsCidrs", g.AWSCIDRs)
	seen := map[string]bool{}
	for i, a := range g.ExtraAllows {
		key := fmt.Sprintf("guardrails.extraAllows[%d]", i)
		p.DNSLabel(key+".name", a.Name)
		if seen[a.Name] {
			p.Addf(key+".name", "%q is used twice; names must be unique", a.Name)
		}
		seen[a.Name] = true
		if len(a.From) == 0 || len(a.To) == 0 {
			p.Addf(key, "from and to must both select pods by label; an empty selector would open the flow to every pod")
		}
		if len(a.Ports) == 0 {
			p.Addf(key+".ports", "required: every allow names its ports")
		}
		for j, pt := range a.Ports {
			p.Port(fmt.Sprintf("%s.ports[%d].port", key, j), pt.Port)
			if pt.Protocol != "TCP" && pt.Protocol != "UDP" {
				p.Addf(fmt.Sprintf("%s.ports[%d].protocol", key, j), "%q is not allowed; use TCP or UDP", pt.Protocol)
			}
		}
	}
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
