package stacks

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// workload is one kind of pod the platform runs in the namespace, with how
// many of it run at once.
type workload struct {
	name string
	pods int64
	// containers are the resources of the pod's containers, which run side
	// by side, so the pod needs their sum.
	containers []kube.Resources
	// storage is what each pod claims through PersistentVolumeClaims.
	storage []string
}

// workloads lists what the platform runs in the namespace. Pods that the
// charts add beyond these do not exist: the Vault agent injector is off and
// ESO runs its three deployments.
func (c *Config) workloads() []workload {
	e := c.ExternalSecrets
	ws := []workload{
		{name: "vault", pods: int64(c.Vault.Replicas),
			containers: []kube.Resources{c.Vault.Resources, c.Vault.TLSReloader.Resources},
			storage:    []string{c.Vault.DataStorage, c.Vault.AuditStorage}},
		{name: "external-secrets controller", pods: int64(e.Replicas), containers: []kube.Resources{e.Resources.Controller}},
		{name: "external-secrets webhook", pods: int64(e.Replicas), containers: []kube.Resources{e.Resources.Webhook}},
		{name: "external-secrets cert controller", pods: 1, containers: []kube.Resources{e.Resources.CertController}},
		// concurrencyPolicy Forbid: one snapshot pod at a time. Its init and
		// main containers share the same resources, and a pod's effective
		// request is the larger of its init containers and its containers.
		{name: "raft snapshot job", pods: 1, containers: []kube.Resources{c.Backup.Resources}},
		// The bootstrap Job's pod runs its steps one after another, all
		// with the same resources. While a new revision runs, the previous
		// one's pod has finished, and finished pods use no quota.
		{name: "vault bootstrap job", pods: 1, containers: []kube.Resources{c.Bootstrap.Resources}},
		// The reconcile CronJob (Forbid: one pod at a time), its two steps
		// with the bootstrap's resources; it may run beside a bootstrap Job.
		{name: "vault reconcile job", pods: 1, containers: []kube.Resources{c.Bootstrap.Resources}},
	}
	if d := c.Backup.Drill; d.Enabled {
		// Forbid as well, and its schedule may meet the snapshot job's:
		// counted beside it. Its download and restore steps share one set
		// of resources, as the snapshot job's do.
		ws = append(ws, workload{name: "restore drill job", pods: 1, containers: []kube.Resources{d.Resources}})
	}
	return ws
}

// CheckCapacity fails when what the platform runs does not fit the
// namespace's quota, naming the totals, the quota and what makes them up,
// so an over-quota config fails at preview instead of leaving pods pending.
func CheckCapacity(cfg *Config) error {
	totals := map[string]resource.Quantity{}
	var parts []string
	add := func(key string, q resource.Quantity, times int64) {
		t := totals[key]
		for i := int64(0); i < times; i++ {
			t.Add(q)
		}
		totals[key] = t
	}
	for _, w := range cfg.workloads() {
		var cpu, mem resource.Quantity
		for _, c := range w.containers {
			req, err := c.Requirements()
			if err != nil {
				return fmt.Errorf("capacity of %s: %w", w.name, err)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				add("requests."+string(r), req.Requests[r], w.pods)
				add("limits."+string(r), req.Limits[r], w.pods)
			}
			cpu.Add(req.Requests[corev1.ResourceCPU])
			mem.Add(req.Requests[corev1.ResourceMemory])
		}
		add("pods", *resource.NewQuantity(1, resource.DecimalSI), w.pods)
		for _, s := range w.storage {
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return fmt.Errorf("capacity of %s: storage %q: %w", w.name, s, err)
			}
			add("requests.storage", q, w.pods)
		}
		parts = append(parts, fmt.Sprintf("%d x %s (requests cpu %s, memory %s)", w.pods, w.name, cpu.String(), mem.String()))
	}

	var over []string
	for _, key := range validate.SortedKeys(totals) {
		limit, ok := cfg.Guardrails.Quota[key]
		if !ok {
			continue
		}
		hard, err := resource.ParseQuantity(limit)
		if err != nil {
			return fmt.Errorf("guardrails.quota.%s: %w", key, err)
		}
		if used := totals[key]; used.Cmp(hard) > 0 {
			over = append(over, fmt.Sprintf("%s: the platform needs %s but guardrails.quota.%s is %s", key, used.String(), key, hard.String()))
		}
	}
	if len(over) == 0 {
		return nil
	}
	sort.Strings(over)
	return fmt.Errorf("the platform does not fit the namespace quota of %q:\n  %s\nwhat it runs: %s",
		cfg.Namespace, strings.Join(over, "\n  "), strings.Join(parts, "; "))
}
