package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// volumeClaims are every persistent volume claim mon's program asks for,
// by where it is declared, with its storage class ("" for none): the
// claim templates of the Helm releases' values (any enabled object with a
// size and a mount path or access mode, as the vault chart's dataStorage
// and auditStorage are), PersistentVolumeClaims, and StatefulSets'
// templates.
func volumeClaims(t *testing.T, mon *recorder.Monitor) map[string]string {
	t.Helper()
	claims := map[string]string{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			_, sized := v["size"]
			_, mode := v["accessMode"]
			_, mounted := v["mountPath"]
			if enabled, _ := v["enabled"].(bool); enabled && sized && (mode || mounted) {
				class, _ := v["storageClass"].(string)
				claims[where] = class
			}
			for k, child := range v {
				walk(where+"."+k, child)
			}
		case []any:
			for _, child := range v {
				walk(where+"[]", child)
			}
		}
	}
	for _, r := range mon.ByType(releaseType) {
		walk("release "+r.Name+": values", HelmValues(t, r))
	}
	for _, r := range mon.ByType("kubernetes:core/v1:PersistentVolumeClaim") {
		var pvc corev1.PersistentVolumeClaim
		Decode(t, r.Inputs, &pvc)
		claims["PersistentVolumeClaim "+r.Name] = deref(pvc.Spec.StorageClassName)
	}
	for _, r := range mon.ByType("kubernetes:apps/v1:StatefulSet") {
		var sts appsv1.StatefulSet
		Decode(t, r.Inputs, &sts)
		for _, c := range sts.Spec.VolumeClaimTemplates {
			claims["StatefulSet "+r.Name+": "+c.Name] = deref(c.Spec.StorageClassName)
		}
	}
	return claims
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestExampleStacksNameAStorageClassForEveryClaim: EKS clusters created
// since 1.30 have no default StorageClass, so a claim without a class stays
// Pending and the voters never start. Both committed stacks must work as
// they are.
func TestExampleStacksNameAStorageClassForEveryClaim(t *testing.T) {
	for _, stack := range []string{"production", "staging"} {
		t.Run(stack, func(t *testing.T) {
			t.Parallel()
			claims := volumeClaims(t, runStack(t, stack))
			if len(claims) < 2 {
				t.Fatalf("found %d volume claims (%v); Vault's data and audit volumes alone are two", len(claims), claims)
			}
			var where []string
			for w := range claims {
				where = append(where, w)
			}
			sort.Strings(where)
			for _, w := range where {
				if claims[w] == "" {
					t.Errorf("%s names no storage class: its claims would stay Pending on a cluster without a default class (vault.storageClass in Pulumi.%s.yaml)", w, stack)
				}
			}
		})
	}
}

// trackerReference is prose that points at this project's issue tracker
// ("issue 15", "Issue #7"), which a reader of the repository does not have.
var trackerReference = regexp.MustCompile(`(?i)\bissues? #?[0-9]+`)

// TestDocsSayWhatNotWhichIssue: the README, the runbooks and the stack
// files describe features by what they are, never by a tracker number.
func TestDocsSayWhatNotWhichIssue(t *testing.T) {
	root := RepoRoot()
	files := []string{"README.md", "Pulumi.production.yaml", "Pulumi.staging.yaml"}
	runbooks, err := filepath.Glob(filepath.Join(root, "docs", "*", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range runbooks {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v; the runbooks moved", files)
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if m := trackerReference.FindString(line); m != "" {
				t.Errorf("%s:%d names a tracker number (%q): say what the feature is instead: %s", f, i+1, m, strings.TrimSpace(line))
			}
		}
	}
}
