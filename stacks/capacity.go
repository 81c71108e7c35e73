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
func (c *Config) workloads() ([]workload, error) {
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
		// with the same resources, and so does the rollout Job's (the copy
		// of the Vault CLI, then its script). The rollout Job starts only
		// once the bootstrap's has finished, and finished pods use no
		// quota: one pod, the larger of the two.
		{name: "vault bootstrap or rollout job", pods: 1, containers: []kube.Resources{larger(c.Bootstrap.Resources, c.Rollout.Resources)}},
		// The snapshot Job the rollout runs from the CronJob's template:
		// the CronJob's Forbid keeps a scheduled run from starting beside
		// it, not it from starting beside a scheduled run.
		{name: "raft snapshot job of the rollout", pods: 1, containers: []kube.Resources{c.Backup.Resources}},
		// The reconcile CronJob (Forbid: one pod at a time), its two steps
		// with the bootstrap's resources; it may run beside a bootstrap Job.
		{name: "vault reconcile job", pods: 1, containers: []kube.Resources{c.Bootstrap.Resources}},
	}
	if d := c.Backup.Drill; d.Enabled {
		// Forbid as well, and its schedule may meet the snapshot job's:
		// counted beside it. Its download and restore steps share one set
		// of resources, as the snapshot job's do, with the ephemeral
		// storage its volumes are sized for.
		r, err := d.ContainerResources()
		if err != nil {
			return nil, fmt.Errorf("capacity of the restore drill: %w", err)
		}
		ws = append(ws, workload{name: "restore drill job", pods: 1, containers: []kube.Resources{r}})
	}
	return ws, nil
}

// ephemeralStorage is the resource name of a container's node disk.
const ephemeralStorage = corev1.ResourceEphemeralStorage

// withLimitRangeDefaults is what admission makes of a container's
// resources in the namespace: the LimitRange fills in a limit and a
// request it does not set (a missing default request is the default
// limit), and a request missing beside a limit is the limit. Only
// ephemeral storage is filled in: every workload sets cpu and memory.
func withLimitRangeDefaults(r corev1.ResourceRequirements, g guardrailsDefaults) corev1.ResourceRequirements {
	out := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for k, v := range r.Requests {
		out.Requests[k] = v
	}
	for k, v := range r.Limits {
		out.Limits[k] = v
	}
	if _, set := out.Limits[ephemeralStorage]; !set {
		if q, ok := g.limit(); ok {
			out.Limits[ephemeralStorage] = q
		}
	}
	if _, set := out.Requests[ephemeralStorage]; !set {
		if q, ok := g.request(); ok {
			out.Requests[ephemeralStorage] = q
		} else if q, ok := out.Limits[ephemeralStorage]; ok {
			out.Requests[ephemeralStorage] = q
		}
	}
	return out
}

// guardrailsDefaults are the LimitRange's container defaults.
type guardrailsDefaults struct{ defaultRequest, defaultLimit map[string]string }

func (g guardrailsDefaults) request() (resource.Quantity, bool) {
	if v, ok := g.defaultRequest[string(ephemeralStorage)]; ok {
		q, err := resource.ParseQuantity(v)
		return q, err == nil
	}
	// The API server defaults a LimitRange's missing defaultRequest to
	// its default limit.
	return g.limit()
}

func (g guardrailsDefaults) limit() (resource.Quantity, bool) {
	v, ok := g.defaultLimit[string(ephemeralStorage)]
	if !ok {
		return resource.Quantity{}, false
	}
	q, err := resource.ParseQuantity(v)
	return q, err == nil
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
	workloads, err := cfg.workloads()
	if err != nil {
		return err
	}
	defaults := guardrailsDefaults{cfg.Guardrails.DefaultRequest, cfg.Guardrails.DefaultLimit}
	// Ephemeral storage is named in the summary only where the quota
	// counts it.
	_, countsRequests := cfg.Guardrails.Quota["requests."+string(ephemeralStorage)]
	_, countsLimits := cfg.Guardrails.Quota["limits."+string(ephemeralStorage)]
	countsDisk := countsRequests || countsLimits
	for _, w := range workloads {
		var cpu, mem, disk resource.Quantity
		for _, c := range w.containers {
			req, err := c.Requirements()
			if err != nil {
				return fmt.Errorf("capacity of %s: %w", w.name, err)
			}
			req = withLimitRangeDefaults(req, defaults)
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, ephemeralStorage} {
				add("requests."+string(r), req.Requests[r], w.pods)
				add("limits."+string(r), req.Limits[r], w.pods)
			}
			cpu.Add(req.Requests[corev1.ResourceCPU])
			mem.Add(req.Requests[corev1.ResourceMemory])
			disk.Add(req.Requests[ephemeralStorage])
		}
		add("pods", *resource.NewQuantity(1, resource.DecimalSI), w.pods)
		for _, s := range w.storage {
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return fmt.Errorf("capacity of %s: storage %q: %w", w.name, s, err)
			}
			add("requests.storage", q, w.pods)
		}
		part := fmt.Sprintf("%d x %s (requests cpu %s, memory %s", w.pods, w.name, cpu.String(), mem.String())
		if !disk.IsZero() && countsDisk {
			part += ", ephemeral-storage " + disk.String()
		}
		parts = append(parts, part+")")
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

// validateDrillSnapshotSize relates the drill's expected snapshot to the
// voters' Raft volume: a snapshot holds what that volume holds, so a
// larger expectation only sizes the drill's volumes for data that cannot
// exist.
func (c *Config) validateDrillSnapshotSize(p *validate.Problems) {
	d := c.Backup.Drill
	if !d.Enabled {
		return
	}
	snapshot, err1 := resource.ParseQuantity(d.SnapshotSize)
	data, err2 := resource.ParseQuantity(c.Vault.DataStorage)
	if err1 != nil || err2 != nil {
		return // their own groups report them
	}
	if snapshot.Cmp(data) > 0 {
		p.Addf("backup.drill.snapshotSize", "%s is above vault.dataStorage %s, the Raft volume a snapshot is taken of", snapshot.String(), data.String())
	}
}

// larger is, for each request and limit, the larger of a's and b's: what a
// pod that runs either needs.
func larger(a, b kube.Resources) kube.Resources {
	pick := func(x, y map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range []map[string]string{x, y} {
			for k, v := range m {
				q, err := resource.ParseQuantity(v)
				if err != nil {
					out[k] = v // reported by validation; kept so the check names it
					continue
				}
				if cur, ok := out[k]; ok {
					if c, err := resource.ParseQuantity(cur); err == nil && c.Cmp(q) >= 0 {
						continue
					}
				}
				out[k] = v
			}
		}
		return out
	}
	return kube.Resources{Requests: pick(a.Requests, b.Requests), Limits: pick(a.Limits, b.Limits)}
}
