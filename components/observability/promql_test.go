// Every PromQL expression the component ships is checked with Prometheus's
// own parser. The parser is imported only here, so its weight stays out of
// the program's build.

package observability_test

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql is Prometheus's parser with its default options: the functions
// and syntax a stock Prometheus accepts, no experimental ones.
var promql = parser.NewParser(parser.Options{})

// parse parses expr with Prometheus's own parser and checks that every
// series selector in it is limited to the platform's namespace.
func parse(t *testing.T, what, expr string) {
	t.Helper()
	node, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", what, err, expr)
		return
	}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "namespace" && m.Type == labels.MatchEqual && m.Value == namespace {
				return nil
			}
		}
		t.Errorf("%s: selector %s is not limited to namespace %q", what, vs, namespace)
		return nil
	})
}

func TestEveryAlertExpressionParses(t *testing.T) {
	rules := rulesOf(t, build(t, "observability", newArgs()))
	if len(rules) < len(requiredAlerts) {
		t.Fatalf("only %d alerts", len(rules))
	}
	for name, r := range rules {
		parse(t, "alert "+name, r.Expr)
	}
}

func TestEveryDashboardQueryParses(t *testing.T) {
	dashboards := dashboardsOf(t, build(t, "observability", newArgs()))
	if len(dashboards) == 0 {
		t.Fatal("no dashboards")
	}
	n := 0
	for cmName, d := range dashboards {
		for _, p := range allPanels(d.Panels) {
			for _, q := range p.Targets {
				parse(t, cmName+" panel "+p.Title, q.Expr)
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no queries in the dashboards")
	}
}
