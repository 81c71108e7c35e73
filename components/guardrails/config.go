package guardrails

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Config is NamespaceGuardrails' plain settings: the stack's `guardrails`
// group. The json tags are its keys; each field's comment ends with its
// default, which DefaultConfig states.
type Config struct {
	// PodSecurityLevel is enforced, audited and warned: restricted or
	// baseline. Default: restricted.
	PodSecurityLevel string `json:"podSecurityLevel,omitempty"`
	// PodSecurityVersion pins the Pod Security Standards version: v1.<minor>
	// or latest. Default: v1.33.
	PodSecurityVersion string `json:"podSecurityVersion,omitempty"`
	// Quota is the ResourceQuota's hard limits (required). Default: none.
	Quota map[string]string `json:"quota"`
	// DefaultRequest is the LimitRange's default container request: with a
	// cpu or memory quota, a pod that sets no requests is rejected unless
	// the LimitRange fills them in. Default: cpu 100m, memory 128Mi.
	DefaultRequest map[string]string `json:"defaultRequest,omitempty"`
	// DefaultLimit is the LimitRange's default container limit. Default:
	// cpu 500m, memory 512Mi.
	DefaultLimit map[string]string `json:"defaultLimit,omitempty"`
	// AWSCIDRs are the destinations Vault (STS, KMS) and the snapshot job
	// (STS, S3) may reach on 443: 0.0.0.0/0 alone, or private ranges, which
	// work only with interface VPC endpoints with private DNS for sts, kms
	// and s3 (an S3 gateway endpoint routes to S3's public prefix list, so
	// it needs S3's published ranges). Default: 0.0.0.0/0.
	AWSCIDRs []string `json:"awsCidrs,omitempty"`
	// ExtraAllows are further allowed flows between workloads. Default: none.
	ExtraAllows []Allow `json:"extraAllows,omitempty"`
}

// Allow is a flow between two sets of pods in the namespace. It becomes two
// policies: egress on the client pods and ingress on the server pods.
type Allow struct {
	// Name names the two policies it becomes.
	Name string `json:"name"`
	// From selects the client pods by label.
	From map[string]string `json:"from"`
	// To selects the server pods by label.
	To map[string]string `json:"to"`
	// Ports are the server's ports.
	Ports []Port `json:"ports"`
}

// Port is a port and its protocol.
type Port struct {
	// Port is the port number.
	Port int `json:"port"`
	// Protocol is TCP or UDP. Default: TCP.
	Protocol string `json:"protocol,omitempty"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{
		PodSecurityLevel:   LevelRestricted,
		PodSecurityVersion: "v1.33",
		DefaultRequest:     map[string]string{"cpu": "100m", "memory": "128Mi"},
		DefaultLimit:       map[string]string{"cpu": "500m", "memory": "512Mi"},
		AWSCIDRs:           []string{"0.0.0.0/0"},
	}
}

// quotaResources are the ResourceQuota keys the platform accepts.
var quotaResources = map[string]bool{
	"requests.cpu": true, "limits.cpu": true,
	"requests.memory": true, "limits.memory": true,
	"requests.storage": true, "persistentvolumeclaims": true,
	"pods": true, "services": true, "secrets": true, "configmaps": true,
	"requests.ephemeral-storage": true, "limits.ephemeral-storage": true,
}

var psVersionPattern = regexp.MustCompile(`^(latest|v1\.[0-9]+)$`)

// Validate reports every invalid setting, keyed by its config path under
// path (for example "guardrails").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	if c.PodSecurityLevel != LevelRestricted && c.PodSecurityLevel != LevelBaseline {
		p.Addf(key("podSecurityLevel"), "%q is not allowed; use restricted (the seed's target) or baseline", c.PodSecurityLevel)
	}
	if !psVersionPattern.MatchString(c.PodSecurityVersion) {
		p.Addf(key("podSecurityVersion"), "%q is not a Pod Security version; use v1.<minor> or latest", c.PodSecurityVersion)
	}
	c.validateQuota(&p, path)
	awsCIDRs(&p, key("awsCidrs"), c.AWSCIDRs)
	seen := map[string]bool{}
	for i, a := range c.ExtraAllows {
		item := validate.Index(key("extraAllows"), i)
		p.DNSLabel(item+".name", a.Name)
		if seen[a.Name] {
			p.Addf(item+".name", "%q is used twice; names must be unique", a.Name)
		}
		seen[a.Name] = true
		if len(a.From) == 0 || len(a.To) == 0 {
			p.Addf(item, "from and to must both select pods by label; an empty selector would open the flow to every pod")
		}
		if len(a.Ports) == 0 {
			p.Addf(item+".ports", "required: every allow names its ports")
		}
		for j, pt := range a.Ports {
			p.Port(fmt.Sprintf("%s.ports[%d].port", item, j), pt.Port)
			if pt.Protocol != "" && pt.Protocol != "TCP" && pt.Protocol != "UDP" {
				p.Addf(fmt.Sprintf("%s.ports[%d].protocol", item, j), "%q is not allowed; use TCP or UDP", pt.Protocol)
			}
		}
	}
	return p
}

// validateQuota checks the quota's keys and quantities, and that the
// LimitRange gives every pod what the quota counts.
func (c Config) validateQuota(p *validate.Problems, path string) {
	key := func(k string) string { return validate.Join(path, k) }
	if len(c.Quota) == 0 {
		p.Addf(key("quota"), "required: the namespace's hard limits (requests.cpu, limits.cpu, requests.memory, limits.memory, pods, requests.storage)")
	}
	for _, name := range validate.SortedKeys(c.Quota) {
		if !quotaResources[name] {
			p.Addf(key("quota."+name), "is not a supported quota resource; allowed: %s", strings.Join(validate.SortedKeys(quotaResources), ", "))
		}
	}
	quota := p.Quantities(key("quota"), c.Quota)
	for _, r := range []string{"cpu", "memory", "ephemeral-storage"} {
		req, hasReq := quota["requests."+r]
		lim, hasLim := quota["limits."+r]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			p.Addf(key("quota.requests."+r), "%s is above limits.%s %s; a request cannot exceed its limit", req.String(), r, lim.String())
		}
		_, defaultRequest := c.DefaultRequest[r]
		_, defaultLimit := c.DefaultLimit[r]
		// A LimitRange without defaultRequest uses the default limit as
		// the request; a pod the quota counts but that sets nothing is
		// rejected.
		if (has(c.Quota, r) || has(c.Quota, "requests."+r)) && !defaultRequest && !defaultLimit {
			p.Addf(key("defaultRequest"), "must set %s (or defaultLimit must): %s limits requests of %s", r, key("quota"), r)
		}
		if has(c.Quota, "limits."+r) && !defaultLimit {
			p.Addf(key("defaultLimit"), "must set %s: %s limits limits.%s", r, key("quota"), r)
		}
	}
	p.RequestsAndLimits(path, kube.Resources{Requests: c.DefaultRequest, Limits: c.DefaultLimit}, "defaultRequest", "defaultLimit")
}

func has(m map[string]string, key string) bool {
	_, ok := m[key]
	return ok
}

// awsCIDRs are the AWS destinations: 0.0.0.0/0 only alone, since it
// already contains every other range. None means no AWS egress; the
// platform, whose seal needs KMS, requires some (package stacks).
func awsCIDRs(p *validate.Problems, path string, values []string) {
	p.CIDRs(path, values)
	if len(values) > 1 && slices.Contains(values, "0.0.0.0/0") {
		p.Addf(path, "%q lists 0.0.0.0/0 with other ranges, which it already contains; give 0.0.0.0/0 alone or only the VPC endpoints' ranges", values)
	}
}
