package observability_test

import (
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/observability"
)

// The break-glass alert exists exactly while vault.breakGlass is on, and
// then fires: the expression is true with no series at all, so neither a
// missing metric nor a scrape failure can silence it.
func TestBreakGlassAlertExistsOnlyWhileTheSettingIsOn(t *testing.T) {
	if _, ok := rulesOf(t, build(t, "observability", newArgs()))[observability.AlertVaultBreakGlassOpen]; ok {
		t.Errorf("%s exists with break glass off: it would fire forever", observability.AlertVaultBreakGlassOpen)
	}

	args := newArgs()
	args.BreakGlass = true
	rules := rulesOf(t, build(t, "observability", args))
	r, ok := rules[observability.AlertVaultBreakGlassOpen]
	if !ok {
		t.Fatalf("break glass on, but no %s alert", observability.AlertVaultBreakGlassOpen)
	}
	parse(t, "alert "+r.Alert, r.Expr)
	if r.Expr != "vector(1)" {
		t.Errorf("expression %q: want vector(1), which is true while the rule exists", r.Expr)
	}
	if r.For != "" {
		t.Errorf("for %q: it should fire as soon as the setting is applied", r.For)
	}
	if r.Labels["namespace"] != namespace || r.Labels["release"] != "vault" {
		t.Errorf("labels %v: an alert from vector(1) must carry the namespace and release itself", r.Labels)
	}
	if !strings.Contains(r.Annotations["description"], "vault.breakGlass") {
		t.Errorf("description does not say which setting to turn off: %s", r.Annotations["description"])
	}
	// Its runbook section exists.
	anchors := runbookAnchors(t)
	ref := strings.TrimPrefix(r.Annotations["runbook_url"], observability.DefaultRunbookBaseURL+"/")
	file, anchor, _ := strings.Cut(ref, "#")
	if !anchors[file][anchor] {
		t.Errorf("runbook_url %s: docs/runbooks/%s has no heading #%s", r.Annotations["runbook_url"], file, anchor)
	}
	// The other alerts are unchanged by the setting.
	if len(rules) != len(rulesOf(t, build(t, "observability", newArgs())))+1 {
		t.Errorf("break glass added %d rules, want 1", len(rules)-len(rulesOf(t, build(t, "observability", newArgs()))))
	}
}
