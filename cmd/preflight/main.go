// Command preflight checks, read-only, what a stack needs from its cluster
// before `pulumi up`, and prints what is missing.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/secrets-platform/secrets-platform/internal/preflight"
	"github.com/secrets-platform/secrets-platform/internal/preflight/fromstack"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

const usage = `Usage: go run ./cmd/preflight --stack <name> [--kubeconfig <path>] [--skip <check>,...]

Checks, without changing anything, what the stack needs from its cluster
that the program cannot create: the kube context kubernetes.context names,
an API server that answers, cluster-admin rights, a node per voter, the
storage class and the EBS CSI driver, a network policy engine, what already
runs in the namespace, the external-secrets CRDs' owner, the Prometheus
Operator's API and a Prometheus that selects the stack's monitors, the
blackbox exporter and Grafana's dashboard sidecar.

The stack's config is read and validated as 'pulumi up' would, and the
program runs offline (as cmd/render runs it) to learn the labels and names
it will create. The cluster is read with kubectl (on PATH) only. AWS-side
prerequisites (IAM and KMS rights, VPC endpoints, the state bucket) are not
checked: see the README's "Deploying for real".

Exits 1 when something required is MISSING, 0 otherwise (warnings
included). Heuristic checks can be overruled with --skip, e.g.
--skip network-policy when another engine enforces NetworkPolicy.

Flags:
`

func main() {
	stack := flag.String("stack", "", "stack name: reads Pulumi.<stack>.yaml")
	projectDir := flag.String("project-dir", ".", "directory holding Pulumi.yaml and the stack files")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig to use instead of the stack's kubernetes.kubeconfig (or kubectl's default)")
	skip := flag.String("skip", "", "comma-separated checks to skip, by id (e.g. network-policy)")
	flag.Usage = func() {
		_, _ = fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *stack == "" {
		flag.Usage()
		os.Exit(2)
	}
	failed, err := run(*projectDir, *stack, *kubeconfig, *skip)
	if err != nil {
		fmt.Fprintf(os.Stderr, "preflight %s: %v\n", *stack, err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

func run(projectDir, stack, kubeconfigFlag, skip string) (failed bool, err error) {
	target, cfg, err := fromstack.Load(projectDir, stack)
	if err != nil {
		return false, err
	}
	kubeconfig, cleanup, err := kubeconfigPath(kubeconfigFlag, cfg.Kubernetes.Kubeconfig)
	if err != nil {
		return false, err
	}
	defer cleanup()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results := preflight.Run(ctx, execKubectl(kubeconfig), target)
	if skip != "" {
		results = preflight.Skip(results, strings.Split(skip, ","))
	}

	fmt.Printf("preflight of stack %s (read-only)\n\n", stack)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, r := range results {
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\n", r.Status, preflight.ID(r.Check), r.Detail)
	}
	if err := w.Flush(); err != nil {
		return false, err
	}
	if preflight.Failed(results) {
		fmt.Println("\nSomething required is MISSING; README, \"Deploying for real\", says how to provide each.")
		return true, nil
	}
	fmt.Println("\nNothing required is missing. The AWS side (README, \"Deploying for real\") is not checked here.")
	return false, nil
}

// kubeconfigPath returns the kubeconfig file kubectl should use: the flag's,
// else the stack's kubernetes.kubeconfig (a path, or contents written to a
// private temporary file), else "" for kubectl's own default.
func kubeconfigPath(flagValue, stackValue string) (path string, cleanup func(), err error) {
	cleanup = func() {}
	switch {
	case flagValue != "":
		return flagValue, cleanup, nil
	case stackValue == "":
		return "", cleanup, nil
	case strings.HasPrefix(stackValue, recorder.TestSecretValue("")):
		return "", cleanup, errors.New("kubernetes.kubeconfig is a secret, which preflight does not decrypt: pass --kubeconfig <path>")
	}
	if _, statErr := os.Stat(stackValue); statErr == nil {
		return stackValue, cleanup, nil
	}
	f, err := os.CreateTemp("", "preflight-kubeconfig-*")
	if err != nil {
		return "", cleanup, err
	}
	cleanup = func() { _ = os.Remove(f.Name()) }
	if _, err := f.WriteString(stackValue); err != nil {
		_ = f.Close()
		cleanup()
		return "", func() {}, err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", func() {}, err
	}
	return f.Name(), cleanup, nil
}

// execKubectl runs the kubectl on PATH, with --kubeconfig when one is given.
func execKubectl(kubeconfig string) preflight.Kubectl {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		if kubeconfig != "" {
			args = append([]string{"--kubeconfig", kubeconfig}, args...)
		}
		var stderr bytes.Buffer
		// The arguments are the checks' own read-only commands.
		cmd := exec.CommandContext(ctx, "kubectl", args...) //nolint:gosec // G204: fixed commands, names from the stack's config

		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
}
