package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

// CRDSchemas are the openAPIV3Schema of each served version of each CRD,
// by "<group>/<version>/<kind>".
type CRDSchemas map[string]map[string]any

// LoadESOCRDs reads the CRDs of the pinned external-secrets chart (2.9.0)
// from the file ESO_CRDS names: its CRD bundle, as `helm template` renders
// templates/crds, or the release's deploy/crds/bundle.yaml. Without it the
// test fails: it never skips.
func LoadESOCRDs(t testing.TB) CRDSchemas {
	t.Helper()
	path := os.Getenv("ESO_CRDS")
	if path == "" {
		t.Fatal("ESO_CRDS is not set: point it at the CRD bundle of the pinned external-secrets chart (README, \"Checks against the charts\")")
	}
	raw, err := os.ReadFile(path) // #nosec G304 G703 -- the CRD bundle the test is pointed at
	if err != nil {
		t.Fatalf("the external-secrets CRDs: %v; set ESO_CRDS to the CRD bundle of the pinned chart (helm pull external-secrets --repo https://charts.external-secrets.io --version 2.9.0, then helm template it with installCRDs)", err)
	}
	out := CRDSchemas{}
	for _, doc := range strings.Split(string(raw), "\n---") {
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Served bool   `json:"served"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &crd); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Served {
				out[crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Kind] = v.Schema.OpenAPIV3Schema
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no CustomResourceDefinition", path)
	}
	return out
}

// Validate checks a custom resource (apiVersion, kind, metadata, spec...)
// the way the API server does with fieldValidation=Strict: every field the
// schema does not know is an error (it would be pruned), and the values
// must satisfy the schema (types, enums, required fields, patterns). It
// returns every problem; none means the object is admitted.
func (s CRDSchemas) Validate(obj map[string]any) []string {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	schema, ok := s[apiVersion+"/"+kind]
	if !ok {
		return []string{fmt.Sprintf("no served CRD version for %s %s", apiVersion, kind)}
	}
	var problems []string
	// ObjectMeta is the API server's, not the CRD's, to validate.
	body := map[string]any{}
	for k, v := range obj {
		if k != "metadata" {
			body[k] = v
		}
	}
	unknownFields(schema, body, "", &problems)
	raw, err := json.Marshal(schema)
	if err != nil {
		return []string{err.Error()}
	}
	var openAPI spec.Schema
	if err := json.Unmarshal(raw, &openAPI); err != nil {
		return []string{err.Error()}
	}
	// Through JSON, as the API server sees the object.
	data, err := json.Marshal(body)
	if err != nil {
		return []string{err.Error()}
	}
	var plain any
	if err := json.Unmarshal(data, &plain); err != nil {
		return []string{err.Error()}
	}
	if res := validate.NewSchemaValidator(&openAPI, nil, "", strfmt.Default).Validate(plain); res != nil {
		for _, e := range res.Errors {
			problems = append(problems, e.Error())
		}
	}
	slices.Sort(problems)
	return problems
}

// unknownFields reports the fields of value that schema neither lists nor
// admits (additionalProperties, x-kubernetes-preserve-unknown-fields).
func unknownFields(schema map[string]any, value any, path string, problems *[]string) {
	if preserve, _ := schema["x-kubernetes-preserve-unknown-fields"].(bool); preserve {
		return
	}
	switch v := value.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		additional, hasAdditional := schema["additionalProperties"]
		for key, child := range v {
			if p, ok := props[key].(map[string]any); ok {
				unknownFields(p, child, path+"."+key, problems)
				continue
			}
			switch a := additional.(type) {
			case map[string]any:
				unknownFields(a, child, path+"."+key, problems)
				continue
			case bool:
				if a {
					continue
				}
			}
			if hasAdditional || props != nil || schema["type"] == "object" {
				*problems = append(*problems, fmt.Sprintf("%s: unknown field %q", strings.TrimPrefix(path, "."), key))
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, child := range v {
				unknownFields(items, child, fmt.Sprintf("%s[%d]", path, i), problems)
			}
		}
	}
}
