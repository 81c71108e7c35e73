package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// The stack-wide policy checks. Each takes what a program registered and
// returns findings, one line per violation naming the resource; an empty
// result passes. They are plain functions so that tests can also feed them
// deliberately broken resources and watch them fail.

// podTemplatePaths says where each workload kind keeps its pod template.
var podTemplatePaths = map[string][]string{
	"kubernetes:core/v1:Pod":                   nil,
	"kubernetes:apps/v1:Deployment":            {"spec", "template"},
	"kubernetes:apps/v1:StatefulSet":           {"spec", "template"},
	"kubernetes:apps/v1:DaemonSet":             {"spec", "template"},
	"kubernetes:apps/v1:ReplicaSet":            {"spec", "template"},
	"kubernetes:batch/v1:Job":                  {"spec", "template"},
	"kubernetes:batch/v1:CronJob":              {"spec", "jobTemplate", "spec", "template"},
	"kubernetes:core/v1:ReplicationController": {"spec", "template"},
}

// chartPodSecurity says where each chart takes pod and container security
// contexts in its values: pairs of (pod context path, container context
// paths...). Setting them replaces the chart's defaults, so these are what
// the chart's pods run with.
var chartPodSecurity = map[string][][]string{
	"vault": {
		{"server.statefulSet.securityContext.pod", "server.statefulSet.securityContext.container"},
	},
	"external-secrets": {
		{"podSecurityContext", "securityContext"},
		{"webhook.podSecurityContext", "webhook.securityContext"},
		{"certController.podSecurityContext", "certController.securityContext"},
	},
}

// chartExtraContainers says where a chart takes whole sidecar containers
// for the pod of a pair (keyed by its pod context path): they run in that
// pod, with their own security contexts.
var chartExtraContainers = map[string]string{
	"server.statefulSet.securityContext.pod": "server.extraContainers",
}

// PodSecurityFindings evaluates every pod template the program creates, and
// every pod the charts it installs will run as configured through their
// values, against the Pod Security Standard level with the admission
// library's evaluator.
func PodSecurityFindings(resources []recorder.Resource, level, version string) []string {
	var out []string
	check := func(what string, meta map[string]any, spec any) {
		var podMeta metav1.ObjectMeta
		var podSpec corev1.PodSpec
		if err := roundTrip(meta, &podMeta); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", what, err))
			return
		}
		if err := roundTrip(spec, &podSpec); err != nil {
			out = append(out, fmt.Sprintf("%s: pod spec does not decode: %v", what, err))
			return
		}
		violations, err := PodSecurityViolations(level, version, podMeta, podSpec)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", what, err))
		}
		for _, v := range violations {
			out = append(out, fmt.Sprintf("%s violates %s: %s", what, level, v))
		}
	}
	for _, r := range resources {
		if path, ok := podTemplatePaths[r.Type]; ok {
			template := Path(PlainMap(r.Inputs), path...)
			meta, _ := Path(template, "metadata").(map[string]any)
			check(r.Type+" "+r.Name, meta, Path(template, "spec"))
			continue
		}
		if r.Type != "kubernetes:helm.sh/v3:Release" {
			continue
		}
		inputs := PlainMap(r.Inputs)
		chart, _ := inputs["chart"].(string)
		values, _ := inputs["values"].(map[string]any)
		for _, pair := range chartPodSecurity[chart] {
			spec := map[string]any{"securityContext": dotted(values, pair[0])}
			var containers []any
			for _, c := range pair[1:] {
				containers = append(containers, map[string]any{"name": "c", "image": "i", "securityContext": dotted(values, c)})
			}
			if path, ok := chartExtraContainers[pair[0]]; ok {
				extra, _ := dotted(values, path).([]any)
				containers = append(containers, extra...)
			}
			spec["containers"] = containers
			check(fmt.Sprintf("helm release %s values %s", r.Name, pair[0]), nil, spec)
		}
	}
	return out
}

// privateKeyMarker is in every PEM private key, whatever its algorithm.
const privateKeyMarker = "PRIVATE KEY-----"

// SecretFindings walks every input of every resource: a value that holds
// PEM private key material or one of the stack's secret config values must
// be a secret, so it is encrypted in state and hidden in previews.
func SecretFindings(resources []recorder.Resource, secretValues []string) []string {
	var out []string
	for _, r := range resources {
		walkPlain(resource.NewObjectProperty(r.Inputs), "", func(path, s string) {
			if strings.Contains(s, privateKeyMarker) {
				out = append(out, fmt.Sprintf("%s %s: %s holds a private key in plain text", r.Type, r.Name, path))
			}
			for _, secret := range secretValues {
				if secret != "" && strings.Contains(s, secret) {
					out = append(out, fmt.Sprintf("%s %s: %s holds a secret config value in plain text", r.Type, r.Name, path))
				}
			}
		})
	}
	return out
}

// walkPlain calls fn for every string that is not inside a secret.
func walkPlain(v resource.PropertyValue, path string, fn func(path, s string)) {
	switch {
	case v.IsSecret():
		return
	case v.IsOutput():
		if v.OutputValue().Secret {
			return
		}
		walkPlain(v.OutputValue().Element, path, fn)
	case v.IsString():
		fn(path, v.StringValue())
	case v.IsObject():
		for k, e := range v.ObjectValue() {
			walkPlain(e, path+"."+string(k), fn)
		}
	case v.IsArray():
		for i, e := range v.ArrayValue() {
			walkPlain(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// TLSFindings checks that Vault is only spoken to over TLS: no value turns
// TLS off, every address of Vault handed to a client is https://, and every
// Vault SecretStore carries the CA that signed Vault's certificate. The one
// exception is loopback: a listener that only 127.0.0.0/8 reaches (the
// restore drill's throwaway Vault, inside its pod) and clients of it.
func TLSFindings(resources []recorder.Resource) []string {
	var out []string
	for _, r := range resources {
		walkPlain(resource.NewObjectProperty(r.Inputs), "", func(path, s string) {
			if strings.Contains(s, "tls_disable") && !strings.Contains(strings.ReplaceAll(s, " ", ""), "tls_disable=false") && !loopbackOnlyPlaintext(s) {
				out = append(out, fmt.Sprintf("%s %s: %s sets tls_disable", r.Type, r.Name, path))
			}
			for _, field := range strings.Fields(s) {
				field = strings.Trim(field, `"',;`)
				if strings.HasPrefix(field, "http://") && strings.Contains(field, ":8200") && !isLoopbackURL(field) {
					out = append(out, fmt.Sprintf("%s %s: %s points a client at %s without TLS", r.Type, r.Name, path, field))
				}
			}
		})
		inputs := PlainMap(r.Inputs)
		if r.Type == "kubernetes:helm.sh/v3:Release" {
			if v := Path(inputs, "values", "global", "tlsDisable"); v == true {
				out = append(out, fmt.Sprintf("helm release %s: global.tlsDisable is true", r.Name))
			}
		}
		kind, _ := inputs["kind"].(string)
		if kind == "SecretStore" || kind == "ClusterSecretStore" {
			vault, ok := Path(inputs, "spec", "provider", "vault").(map[string]any)
			if !ok {
				continue
			}
			if server, _ := vault["server"].(string); !strings.HasPrefix(server, "https://") {
				out = append(out, fmt.Sprintf("%s %s: server %q is not https://", kind, r.Name, server))
			}
			if ca, _ := vault["caBundle"].(string); ca == "" && vault["caProvider"] == nil {
				out = append(out, fmt.Sprintf("%s %s: no caBundle or caProvider: the store cannot verify Vault", kind, r.Name))
			}
		}
	}
	return out
}

// loopbackOnlyPlaintext says whether config is Vault HCL whose every
// listener without TLS binds a loopback address.
func loopbackOnlyPlaintext(config string) bool {
	f, diags := hclwrite.ParseConfig([]byte(config), "config.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return false
	}
	plaintext := 0
	for _, b := range f.Body().Blocks() {
		if b.Type() != "listener" {
			continue
		}
		off, ok := hclValue(b.Body(), "tls_disable")
		if !ok || off.Type() != cty.Bool || off.False() {
			continue
		}
		plaintext++
		addr, ok := hclValue(b.Body(), "address")
		if !ok || addr.Type() != cty.String {
			return false
		}
		host, _, err := net.SplitHostPort(addr.AsString())
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return plaintext > 0
}

// hclValue evaluates the attribute name of body, a literal.
func hclValue(body *hclwrite.Body, name string) (cty.Value, bool) {
	attr := body.GetAttribute(name)
	if attr == nil {
		return cty.NilVal, false
	}
	expr, diags := hclsyntax.ParseExpression(attr.Expr().BuildTokens(nil).Bytes(), name, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

// isLoopbackURL says whether the URL's host is a loopback IP address.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// statefulTypes are resources whose loss loses data: each must be protected
// from `pulumi destroy` and kept in the cloud if removed from the program.
var statefulTypes = map[string]string{
	"aws:kms/key:Key":                          "losing the unseal key bricks Vault; losing the bucket key loses the snapshots",
	"aws:kms/replicaKey:ReplicaKey":            "the unseal key's replica opens the snapshots in the DR region",
	"aws:s3/bucketV2:BucketV2":                 "holds the Raft snapshots",
	"aws:s3/bucket:Bucket":                     "holds data",
	"kubernetes:core/v1:PersistentVolumeClaim": "holds data",
	"aws:rds/instance:Instance":                "holds data",
	"aws:dynamodb/table:Table":                 "holds data",
	"aws:efs/fileSystem:FileSystem":            "holds data",
	"aws:ebs/volume:Volume":                    "holds data",
	"aws:secretsmanager/secret:Secret":         "holds data",
}

// DurabilityFindings checks that every stateful resource is protected and
// retained on delete, and that Vault's volumes outlive a scale-down or a
// delete of its StatefulSet.
func DurabilityFindings(resources []recorder.Resource) []string {
	var out []string
	for _, r := range resources {
		if why, ok := statefulTypes[r.Type]; ok && (!r.Protect || !r.RetainOnDelete) {
			out = append(out, fmt.Sprintf("%s %s (%s): protect=%v retainOnDelete=%v; both must be true", r.Type, r.Name, why, r.Protect, r.RetainOnDelete))
		}
		if r.Type != "kubernetes:helm.sh/v3:Release" {
			continue
		}
		inputs := PlainMap(r.Inputs)
		if inputs["chart"] != "vault" {
			continue
		}
		policy := dotted(inputs["values"].(map[string]any), "server.persistentVolumeClaimRetentionPolicy")
		if Path(policy, "whenDeleted") != "Retain" || Path(policy, "whenScaled") != "Retain" {
			out = append(out, fmt.Sprintf("helm release %s: server.persistentVolumeClaimRetentionPolicy is %v; Vault's Raft volumes must be retained when deleted and when scaled", r.Name, policy))
		}
	}
	return out
}

// policyDocument is the part of an IAM or resource policy the checks read.
type policyDocument struct {
	Statement []struct {
		Sid       string                    `json:"Sid"`
		Effect    string                    `json:"Effect"`
		Principal any                       `json:"Principal"`
		Action    stringOrList              `json:"Action"`
		Resource  stringOrList              `json:"Resource"`
		Condition map[string]map[string]any `json:"Condition"`
	} `json:"Statement"`
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*s = many
	return err
}

// readOnlyPrefixes are the action verbs that change nothing.
var readOnlyPrefixes = []string{"Get", "List", "Describe", "Head"}

// LeastPrivilegeFindings reads every identity policy (role policies) and
// trust policy: an Allow with a write action names its resources (no "*"),
// and every web-identity trust is bound to exactly one service account and
// the STS audience. KMS key policies are exempt from the resource rule: in a
// key policy "*" means the key itself.
func LeastPrivilegeFindings(resources []recorder.Resource) []string {
	var out []string
	for _, r := range resources {
		inputs := PlainMap(r.Inputs)
		var key string
		switch r.Type {
		case "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy":
			key = "policy"
		case "aws:iam/role:Role":
			key = "assumeRolePolicy"
		default:
			continue
		}
		text, _ := inputs[key].(string)
		var doc policyDocument
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			out = append(out, fmt.Sprintf("%s %s: %s is not a JSON policy document: %v", r.Type, r.Name, key, err))
			continue
		}
		for i, st := range doc.Statement {
			what := fmt.Sprintf("%s %s statement %d (%s)", r.Type, r.Name, i, st.Sid)
			if st.Effect != "Allow" {
				continue
			}
			if key == "policy" {
				for _, res := range st.Resource {
					if res != "*" {
						continue
					}
					for _, action := range st.Action {
						if !isReadOnly(action) {
							out = append(out, fmt.Sprintf("%s: %s on resource *", what, action))
						}
					}
				}
				continue
			}
			for _, action := range st.Action {
				if action == "sts:AssumeRoleWithWebIdentity" {
					out = append(out, webIdentityFindings(what, st.Condition)...)
				}
			}
		}
	}
	return out
}

func isReadOnly(action string) bool {
	_, verb, _ := strings.Cut(action, ":")
	if verb == "*" || verb == "" {
		return false
	}
	for _, p := range readOnlyPrefixes {
		if strings.HasPrefix(verb, p) {
			return true
		}
	}
	return false
}

func webIdentityFindings(what string, cond map[string]map[string]any) []string {
	equals := cond["StringEquals"]
	var subs, auds []string
	for k, v := range equals {
		values := anyStrings(v)
		switch {
		case strings.HasSuffix(k, ":sub"):
			subs = append(subs, values...)
		case strings.HasSuffix(k, ":aud"):
			auds = append(auds, values...)
		}
	}
	var out []string
	if len(subs) != 1 || !strings.HasPrefix(subs[0], "system:serviceaccount:") || strings.ContainsAny(subs[0], "*?") {
		out = append(out, fmt.Sprintf("%s: trust is bound to %v; want exactly one system:serviceaccount:<ns>:<name> under StringEquals", what, subs))
	}
	if len(auds) != 1 || auds[0] != "sts.amazonaws.com" {
		out = append(out, fmt.Sprintf("%s: audience %v; want exactly sts.amazonaws.com", what, auds))
	}
	for op := range cond {
		if strings.Contains(op, "Like") {
			out = append(out, fmt.Sprintf("%s: %s condition admits wildcards", what, op))
		}
	}
	return out
}

func anyStrings(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// k8sObjectKey identifies a Kubernetes object: kind, namespace and name.
func k8sObjectKey(r recorder.Resource) (string, bool) {
	if !strings.HasPrefix(r.Type, "kubernetes:") || !r.Custom {
		return "", false
	}
	inputs := PlainMap(r.Inputs)
	if r.Type == "kubernetes:helm.sh/v3:Release" {
		name, _ := inputs["name"].(string)
		ns, _ := inputs["namespace"].(string)
		return "helm release " + ns + "/" + name, true
	}
	name, _ := Path(inputs, "metadata", "name").(string)
	ns, _ := Path(inputs, "metadata", "namespace").(string)
	kind := r.Type[strings.LastIndex(r.Type, ":")+1:]
	if k, ok := inputs["kind"].(string); ok {
		kind = k
	}
	return kind + " " + ns + "/" + name, true
}

// DuplicateObjectFindings reports Kubernetes objects (and Helm releases)
// that two resources would both claim.
func DuplicateObjectFindings(resources []recorder.Resource) []string {
	owners := map[string][]string{}
	for _, r := range resources {
		if key, ok := k8sObjectKey(r); ok {
			owners[key] = append(owners[key], r.Name)
		}
	}
	var out []string
	for key, names := range owners {
		if len(names) > 1 {
			out = append(out, fmt.Sprintf("%s is claimed by %s", key, strings.Join(names, ", ")))
		}
	}
	sort.Strings(out)
	return out
}

func dotted(values map[string]any, path string) any {
	return Path(values, strings.Split(path, ".")...)
}

func roundTrip(in, out any) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}
