package tests

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/internal/configdoc"
)

var update = flag.Bool("update", false, "rewrite the README's config reference from stacks/config.go")

const (
	referenceStart = "<!-- config-reference:start -->\n"
	referenceEnd   = "<!-- config-reference:end -->"
)

// TestREADMEConfigReferenceMatchesTheStructs keeps the README's table equal
// to what the Go structs say. Run with -update to regenerate it.
func TestREADMEConfigReferenceMatchesTheStructs(t *testing.T) {
	rows, err := configdoc.Reference(filepath.Join(RepoRoot(), "stacks", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 40 {
		t.Fatalf("only %d config keys found; the parser lost the structs", len(rows))
	}
	readmePath := filepath.Join(RepoRoot(), "README.md")
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, referenceStart)
	end := strings.Index(readme, referenceEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the %q ... %q markers", referenceStart, referenceEnd)
	}
	want := configdoc.Markdown(rows)
	got := readme[start+len(referenceStart) : end]
	if got == want {
		return
	}
	if *update {
		readme = readme[:start+len(referenceStart)] + want + readme[end:]
		if err := os.WriteFile(readmePath, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's config reference is out of date; run: go test ./tests -run TestREADME -update\nwant:\n%s", want)
}
