// Command render runs the real program offline, under a recording mock
// monitor with the stack's real configuration and no credentials, and writes
// what it would ask Pulumi to create.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"sigs.k8s.io/yaml"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

const usage = `Usage: go run ./cmd/render --stack <name> --out <dir> [--project-dir <dir>]

Renders the desired state of a stack without a cloud or a cluster: the real
program runs against a mock Pulumi engine with the config of
Pulumi.<stack>.yaml, and this writes

  tree.txt            every resource: type, name, parent (indented), protection
  helm/<release>.yaml the values given to each Helm release
  manifests/*.yaml    the Kubernetes objects the program manages directly
  iam/*.json          the IAM, KMS key and bucket policy documents
  vault/*.hcl         the Vault policies the bootstrap Job writes
  vault/database/     the database engine's connections and static roles
                      it writes (vault write arguments; no password)

This is desired state, not a preview: nothing is compared with what runs,
computed cloud values (ARNs, IDs) are placeholders, and values given as
secrets appear as [secret]. Encrypted config values cannot be decrypted here
and are replaced by test values. Use 'pulumi preview' for the diff against
the live stack. Exits non-zero with the error when the config is invalid.

Flags:
`

func main() {
	stack := flag.String("stack", "", "stack name: reads Pulumi.<stack>.yaml")
	out := flag.String("out", "", "directory to write the render to (created)")
	projectDir := flag.String("project-dir", ".", "directory holding Pulumi.yaml and the stack files")
	flag.Usage = func() {
		_, _ = fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *stack == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := render(*projectDir, *stack, *out); err != nil {
		fmt.Fprintf(os.Stderr, "render %s: %v\n", *stack, err)
		os.Exit(1)
	}
}

func render(projectDir, stack, out string) error {
	cfg, err := recorder.LoadStackFile(projectDir, stack)
	if err != nil {
		return err
	}
	// Fixed certificate dates (keys are seeded by resource name anyway):
	// two renders of one commit are byte for byte the same.
	mon := recorder.NewMonitor(stack)
	mon.Clock = recorder.RenderClock
	if err := mon.Run(cfg, stacks.Run); err != nil {
		return err
	}
	files := map[string][]byte{"tree.txt": []byte(mon.Tree())}
	for _, r := range mon.Resources() {
		if err := renderResource(r, files); err != nil {
			return fmt.Errorf("%s %s: %w", r.Type, r.Name, err)
		}
	}
	for name, content := range files {
		path := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("rendered %d resources of stack %s into %s (desired state, not a preview)\n", len(mon.Resources()), stack, out)
	return nil
}

// policyInputs are the inputs that hold a JSON policy document, by type.
var policyInputs = map[string]string{
	"aws:iam/role:Role":                "assumeRolePolicy",
	"aws:iam/rolePolicy:RolePolicy":    "policy",
	"aws:iam/policy:Policy":            "policy",
	"aws:kms/key:Key":                  "policy",
	"aws:kms/replicaKey:ReplicaKey":    "policy",
	"aws:s3/bucketPolicy:BucketPolicy": "policy",
}

func renderResource(r recorder.Resource, files map[string][]byte) error {
	inputs := redacted(resource.NewObjectProperty(r.Inputs)).(map[string]any)
	switch {
	case r.Type == "kubernetes:helm.sh/v3:Release":
		values, _ := inputs["values"].(map[string]any)
		doc, err := yaml.Marshal(values)
		if err != nil {
			return err
		}
		files["helm/"+r.Name+".yaml"] = doc
	case strings.HasPrefix(r.Type, "kubernetes:") && r.Custom:
		doc, err := yaml.Marshal(inputs)
		if err != nil {
			return err
		}
		files["manifests/"+fileName(r)+".yaml"] = doc
		// The Vault policies of the bootstrap's ConfigMap (policy-<name>.hcl),
		// as Vault will be told them.
		if r.Type == "kubernetes:core/v1:ConfigMap" {
			data, _ := inputs["data"].(map[string]any)
			for key, text := range data {
				if name, ok := strings.CutPrefix(key, "policy-"); ok && strings.HasSuffix(name, ".hcl") {
					text, _ := text.(string)
					files["vault/"+name] = []byte(text)
				}
				// The database engine's connections and static roles, as
				// `vault write` arguments (no password: it never is in them).
				if strings.HasPrefix(key, "database-") || strings.HasPrefix(key, "static-role-") || key == "rotation.sql" {
					text, _ := text.(string)
					files["vault/database/"+key] = []byte(text)
				}
			}
		}
	}
	if key, ok := policyInputs[r.Type]; ok {
		text, _ := inputs[key].(string)
		if text == "" {
			return nil
		}
		var doc any
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			return fmt.Errorf("%s is not JSON: %w", key, err)
		}
		pretty, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		files["iam/"+fileName(r)+".json"] = append(pretty, '\n')
	}
	return nil
}

// fileName is <kind>-<resource name>, from a token such as
// kubernetes:core/v1:Secret.
func fileName(r recorder.Resource) string {
	kind := r.Type[strings.LastIndex(r.Type, ":")+1:]
	return strings.ToLower(kind) + "-" + r.Name
}

// redacted turns recorded properties into plain values with every secret
// replaced, so nothing secret reaches the files reviewers read.
func redacted(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return "[secret]"
	case v.IsOutput():
		if !v.OutputValue().Known {
			return "[unknown]"
		}
		return redacted(v.OutputValue().Element)
	case v.IsComputed():
		return "[unknown]"
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = redacted(e)
		}
		return out
	case v.IsArray():
		out := make([]any, 0, len(v.ArrayValue()))
		for _, e := range v.ArrayValue() {
			out = append(out, redacted(e))
		}
		return out
	case v.IsNull():
		return nil
	}
	return v.V
}
