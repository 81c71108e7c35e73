//go:build crds

// The CRD check needs the pinned chart's CRDs, which no registry this
// project may reach serves and which we do not copy into the repository:
// run it where the chart is at hand (README, "Checks against the charts"):
//
//	ESO_CRDS=<the chart's CRD bundle> go test -tags crds ./components/externalsecrets/

package externalsecrets_test

import (
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

// TestCustomResourcesValidateAgainstThePinnedCRDs checks every store and
// ExternalSecret the component registers against the pinned chart's CRDs,
// strict on unknown fields, as the API server would admit them.
func TestCustomResourcesValidateAgainstThePinnedCRDs(t *testing.T) {
	crds := tests.LoadESOCRDs(t)
	{
		mon, _ := run(t, caPEM(t), withDatabaseSecret)
		checked := 0
		for _, r := range mon.Resources() {
			if !strings.HasPrefix(r.Type, "kubernetes:external-secrets.io/") {
				continue
			}
			checked++
			obj := customResource(t, r)
			if problems := crds.Validate(obj); len(problems) > 0 {
				t.Errorf("%s %s is not admitted by the pinned CRD:\n%s", r.Type, r.Name, strings.Join(problems, "\n"))
			}
		}
		if checked != 4 {
			t.Errorf("checked %d custom resources; want 2 stores and 2 ExternalSecrets", checked)
		}
	}

	// The check can fail: a field the CRD does not know, and a wrong value.
	mon, _ := run(t, caPEM(t), withDatabaseSecret)
	store := customResource(t, tests.MustFind(t, mon, secretStoreType, "eso-database-store"))
	tests.Path(store, "spec", "provider", "vault").(map[string]any)["kvVersion"] = "v1"
	tests.Path(store, "spec", "provider", "vault").(map[string]any)["version"] = "v3"
	problems := strings.Join(crds.Validate(store), "\n")
	for _, want := range []string{`spec.provider.vault: unknown field "kvVersion"`, "version"} {
		if !strings.Contains(problems, want) {
			t.Errorf("a store with kvVersion and version v3: problems %q; want one about %q", problems, want)
		}
	}
}

// customResource is a recorded custom resource as the API server gets it.
func customResource(t *testing.T, r recorder.Resource) map[string]any {
	t.Helper()
	obj := map[string]any{}
	for k, v := range r.Inputs {
		obj[string(k)] = tests.Plain(v)
	}
	return obj
}
