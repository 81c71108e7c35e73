// Package validate holds what every component's Config.Validate shares: the
// Problem it reports, keyed by the full config path of the value, and the
// small checks more than one component makes. A component's own rules stay
// in its package.
package validate

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// Problem is one invalid value: the full config path of its key (for
// example "vault.replicas") and a message naming the value and what is
// allowed.
type Problem struct {
	Path    string
	Message string
}

// String is how a problem is reported: "<path>: <message>".
func (p Problem) String() string { return p.Path + ": " + p.Message }

// Problems collects every problem of a config, so all are reported at once.
type Problems []Problem

// Addf records a problem with the value at path.
func (p *Problems) Addf(path, format string, args ...any) {
	*p = append(*p, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Err is nil without problems, or one error listing them under heading,
// one a line.
func Err(heading string, problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = p.String()
	}
	return errors.New(heading + ":\n  " + strings.Join(lines, "\n  "))
}

// Join is the path of key under path; an empty path is the root.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index is the path of the i-th item of the list at path.
func Index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// Required records the input at path as missing when it is nil: an input
// a component cannot do without, such as another component's output.
func (p *Problems) Required(path string, input any) {
	if input == nil {
		p.Addf(path, "is required")
	}
}

// DNSLabel requires a DNS-1123 label: a namespace or service account name.
func (p *Problems) DNSLabel(path, value string) {
	if errs := validation.IsDNS1123Label(value); len(errs) > 0 {
		p.Addf(path, "%q is not a DNS label: %s", value, strings.Join(errs, "; "))
	}
}

// DNSSubdomain requires a name most Kubernetes objects accept.
func (p *Problems) DNSSubdomain(path, value string) {
	if errs := validation.IsDNS1123Subdomain(value); len(errs) > 0 {
		p.Addf(path, "%q is not a valid Kubernetes name: %s", value, strings.Join(errs, "; "))
	}
}

// NonEmpty requires something other than blanks.
func (p *Problems) NonEmpty(path, value string) {
	if strings.TrimSpace(value) == "" {
		p.Addf(path, "must not be empty")
	}
}

// Positive requires a number above 0.
func (p *Problems) Positive(path string, value int) {
	if value <= 0 {
		p.Addf(path, "%d must be positive", value)
	}
}

// Port requires a TCP or UDP port number.
func (p *Problems) Port(path string, value int) {
	if value < 1 || value > 65535 {
		p.Addf(path, "%d is not a port (1..65535)", value)
	}
}

// CIDRs requires every item to be a CIDR.
func (p *Problems) CIDRs(path string, values []string) {
	for i, v := range values {
		if _, _, err := net.ParseCIDR(v); err != nil {
			p.Addf(Index(path, i), "%q is not a CIDR such as 10.0.0.0/16", v)
		}
	}
}

// HTTPSURL requires an https:// URL with a host.
func (p *Problems) HTTPSURL(path, value string) {
	if u, err := url.Parse(value); err != nil || u.Scheme != "https" || u.Host == "" {
		p.Addf(path, "%q is not an https:// URL", value)
	}
}

// ChartVersion requires an exact semantic version: charts are pinned.
func (p *Problems) ChartVersion(path, value string) {
	if _, err := semver.StrictNewVersion(value); err != nil {
		p.Addf(path, "%q is not a semantic version such as 1.2.3; pin the chart exactly", value)
	}
}

// regionPattern is the shape of an AWS region name: eu-west-1,
// us-gov-west-1, cn-north-1; always lowercase.
var regionPattern = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)

// IsRegion says whether value has the shape of an AWS region name.
func IsRegion(value string) bool { return regionPattern.MatchString(value) }

// PinnedImage requires an image reference with a version tag.
func (p *Problems) PinnedImage(path, value string) {
	if _, _, err := kube.SplitImage(value); err != nil {
		p.Addf(path, "%v", err)
	}
}

// CACertificate requires the PEM of a CA certificate.
func (p *Problems) CACertificate(path, value string) {
	block, _ := pem.Decode([]byte(value))
	if block == nil {
		p.Addf(path, "is not PEM; give the CA certificate as `pulumi config set --secret --path %s < ca.pem`", path)
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		p.Addf(path, "is not an X.509 certificate: %v", err)
		return
	}
	if !cert.IsCA {
		p.Addf(path, "the certificate %q is not a CA (basicConstraints CA:FALSE)", cert.Subject.CommonName)
	}
}

// Quantity requires a non-negative Kubernetes quantity and returns it.
func (p *Problems) Quantity(path, value string) (resource.Quantity, bool) {
	q, err := resource.ParseQuantity(value)
	if err != nil {
		p.Addf(path, "%q is not a Kubernetes quantity such as 500m, 2, 16Gi", value)
		return q, false
	}
	if q.Sign() < 0 {
		p.Addf(path, "%q must not be negative", value)
		return q, false
	}
	return q, true
}

// Quantities checks every value of a map of quantities and returns the
// valid ones by key.
func (p *Problems) Quantities(path string, values map[string]string) map[string]resource.Quantity {
	out := map[string]resource.Quantity{}
	for _, name := range SortedKeys(values) {
		if q, ok := p.Quantity(path+"."+name, values[name]); ok {
			out[name] = q
		}
	}
	return out
}

// WorkloadResources requires cpu and memory requests and limits: the quota
// rejects pods without them (DESIGN decision 5).
func (p *Problems) WorkloadResources(path string, r kube.Resources) {
	for _, group := range []struct {
		name   string
		values map[string]string
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for _, res := range []string{"cpu", "memory"} {
			if _, ok := group.values[res]; !ok {
				p.Addf(path+"."+group.name+"."+res, "required: the namespace quota admits only pods with cpu and memory requests and limits")
			}
		}
	}
	p.RequestsAndLimits(path, r, "requests", "limits")
}

// RequestsAndLimits checks the quantities of r and that no request exceeds
// its limit; reqKey and limKey are their keys under path.
func (p *Problems) RequestsAndLimits(path string, r kube.Resources, reqKey, limKey string) {
	req := p.Quantities(path+"."+reqKey, r.Requests)
	lim := p.Quantities(path+"."+limKey, r.Limits)
	for _, name := range SortedKeys(req) {
		q := req[name]
		if l, ok := lim[name]; ok && q.Cmp(l) > 0 {
			p.Addf(path+"."+reqKey+"."+name, "%s is above the limit %s; a request cannot exceed its limit", q.String(), l.String())
		}
	}
}

// SortedKeys are the keys of m in order, so problems come out stably.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
