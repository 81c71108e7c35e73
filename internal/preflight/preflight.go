// Package preflight checks, from the deployer's machine and without
// changing anything, what the platform needs from a cluster that the
// program cannot create itself: the kube context the stack names, an API
// server that answers, cluster-admin rights, enough schedulable nodes for
// the voters' required anti-affinity, the storage class and its CSI
// driver, an engine that enforces network policies, the Prometheus
// Operator's API (and a Prometheus, a blackbox exporter and a Grafana
// sidecar that pick up what the stack creates), and no foreign owner of the
// CRDs the external-secrets chart installs.
//
// It talks to the cluster only through kubectl (`config view`, `version`,
// `auth can-i`, `get`), reading `-o json` into k8s.io/api types; the
// Kubectl function is the seam the tests replace. What it cannot see from
// kubectl (AWS rights, VPC endpoints, registries, the state bucket) is the
// README's checklist.
package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Kubectl runs kubectl with args and returns its standard output. A
// non-zero exit is an error carrying kubectl's standard error; the output
// is returned with it (`auth can-i` prints "no" and exits 1).
type Kubectl func(ctx context.Context, args ...string) ([]byte, error)

// Status is the outcome of one check.
type Status string

// The outcomes. Only Missing makes the preflight fail: a Warn names
// something that does not stop `pulumi up` but leaves part of the platform
// blind or at risk.
const (
	OK      Status = "ok"
	Warn    Status = "warn"
	Missing Status = "MISSING"
	Skipped Status = "skipped"
)

// Result is the outcome of one check and what it saw.
type Result struct {
	// Check names the check, for example "storage class".
	Check string
	// Status is the outcome.
	Status Status
	// Detail says what was found, and for anything but OK, what to do.
	Detail string
}

// Object is a Kubernetes object the stack will create, as far as the
// checks need it.
type Object struct {
	// Kind is the object's kind, for example ServiceMonitor.
	Kind string
	// Namespace and Name locate it.
	Namespace, Name string
	// Labels are the labels it is created with.
	Labels map[string]string
}

// Prober is the blackbox exporter the stack's Probe sends its probes to.
type Prober struct {
	// Address is host:port as the Probe names it, for example
	// prometheus-blackbox-exporter.monitoring.svc:9115.
	Address string
	// Module is the exporter module the Probe asks for.
	Module string
}

// Target is what a stack needs from its cluster, derived from the stack's
// validated config and what the program registers (package
// preflight/fromstack).
type Target struct {
	// Stack is the stack's name, for messages.
	Stack string
	// Context is kubernetes.context: the kube context the stack deploys
	// to; "" means the current one.
	Context string
	// Namespace is the platform's namespace, with the labels the program
	// gives it (Prometheus may select namespaces by label).
	Namespace       string
	NamespaceLabels map[string]string
	// StorageClass is vault.storageClass; "" means the cluster's default.
	StorageClass string
	// Voters is vault.replicas: each voter needs a node of its own.
	Voters int
	// PrometheusOperator is observability.prometheusOperator.
	PrometheusOperator bool
	// Monitors are the ServiceMonitors, Probes and PrometheusRules the
	// stack creates (none without the Prometheus Operator).
	Monitors []Object
	// Dashboards are the dashboard ConfigMaps for Grafana's sidecar.
	Dashboards []Object
	// Prober is the blackbox exporter of the stack's Probe; nil without one.
	Prober *Prober
	// ESORelease is the external-secrets Helm release's name, which must
	// own the chart's CRDs if they already exist.
	ESORelease string
}

// Failed reports whether any result is Missing.
func Failed(results []Result) bool {
	return slices.ContainsFunc(results, func(r Result) bool { return r.Status == Missing })
}

// Run runs every check in order and returns their results. It stops early
// (the rest Skipped) when there is no context to use or the API server does
// not answer.
func Run(ctx context.Context, kubectl Kubectl, t Target) []Result {
	c := &checker{ctx: ctx, kubectl: kubectl}
	kctx, res := c.kubeContext(t)
	results := []Result{res}
	if res.Status == Missing {
		return append(results, Result{"cluster checks", Skipped, "no kube context to check with"})
	}
	c.context = kctx
	res = c.apiServer()
	results = append(results, res)
	if res.Status == Missing {
		return append(results, Result{"cluster checks", Skipped, "the API server did not answer"})
	}
	for _, check := range []func(Target) Result{
		c.clusterAdmin,
		c.nodes,
		c.storageClass,
		c.networkPolicy,
		c.namespace,
		c.esoCRDs,
		c.monitoringAPI,
		c.prometheusSelects,
		c.blackboxExporter,
		c.grafanaSidecar,
	} {
		results = append(results, check(t))
	}
	return results
}

// checker runs kubectl against one context.
type checker struct {
	ctx     context.Context
	kubectl Kubectl
	// context is the kube context every cluster call names.
	context string
}

// requestTimeout bounds each call to the API server.
const requestTimeout = "20s"

// run calls kubectl against the checker's context.
func (c *checker) run(args ...string) ([]byte, error) {
	full := append([]string{"--context", c.context, "--request-timeout", requestTimeout}, args...)
	return c.kubectl(c.ctx, full...)
}

// get runs a kubectl command that prints JSON and decodes it into out.
func (c *checker) get(out any, args ...string) error {
	raw, err := c.run(append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("reading `kubectl %s`: %w", strings.Join(args, " "), err)
	}
	return nil
}

// getOptional is get for one named object: found is false when it does not
// exist (--ignore-not-found prints nothing).
func (c *checker) getOptional(out any, args ...string) (found bool, err error) {
	raw, err := c.run(append(args, "--ignore-not-found", "-o", "json")...)
	if err != nil {
		return false, err
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("reading `kubectl %s`: %w", strings.Join(args, " "), err)
	}
	return true, nil
}

// kubeconfig is the part of `kubectl config view -o json` the checks read
// (client-go's clientcmd/api/v1 Config, which this module does not import).
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Contexts       []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// kubeContext finds the context the stack deploys to: the one
// kubernetes.context names (the Kubernetes provider uses exactly that
// name), or, when it names none, the current one.
func (c *checker) kubeContext(t Target) (string, Result) {
	const name = "kube context"
	var cfg kubeconfig
	raw, err := c.kubectl(c.ctx, "config", "view", "-o", "json")
	if err == nil {
		err = json.Unmarshal(raw, &cfg)
	}
	if err != nil {
		return "", Result{name, Missing, fmt.Sprintf("cannot read the kubeconfig: %v", err)}
	}
	var names []string
	for _, ctx := range cfg.Contexts {
		names = append(names, ctx.Name)
	}
	want := t.Context
	if want == "" {
		if cfg.CurrentContext == "" {
			return "", Result{name, Missing, "kubernetes.context is empty and the kubeconfig has no current context: set kubernetes.context to one of " + list(names)}
		}
		return cfg.CurrentContext, Result{name, Warn, fmt.Sprintf("kubernetes.context is empty: the stack deploys to whatever context is current (now %q); name it in Pulumi.%s.yaml", cfg.CurrentContext, t.Stack)}
	}
	for _, ctx := range cfg.Contexts {
		if ctx.Name == want {
			return want, Result{name, OK, fmt.Sprintf("%s (cluster %s, user %s)", want, ctx.Context.Cluster, ctx.Context.User)}
		}
	}
	return "", Result{name, Missing, fmt.Sprintf("kubernetes.context is %q, which the kubeconfig does not have (it has %s): create it, e.g. `aws eks update-kubeconfig --name <cluster> --alias %s`", want, list(names), want)}
}

// list formats names for a message.
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// ID is the name --skip takes for a check: its name, lower case, with
// dashes for spaces ("network-policy").
func ID(check string) string {
	return strings.ReplaceAll(strings.ToLower(check), " ", "-")
}

// Skip marks the results of the checks whose ID is in ids Skipped, for
// what the operator knows better than a heuristic (another network policy
// engine, say). A result that was OK stays OK.
func Skip(results []Result, ids []string) []Result {
	out := slices.Clone(results)
	for i, r := range out {
		if r.Status != OK && slices.Contains(ids, ID(r.Check)) {
			out[i].Status = Skipped
			out[i].Detail = "skipped (--skip " + ID(r.Check) + "): " + r.Detail
		}
	}
	return out
}
