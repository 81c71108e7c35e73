//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/components/rollout"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

// rolloutJob is the VaultRollout Job's script container, its script (from
// the ConfigMap it mounts) and the Role its service account is bound to.
type rolloutJob struct {
	namespace, serviceAccount string
	container                 corev1.Container
	script                    string
	role                      rbacv1.Role
}

// rolloutJobOf reads the rollout Job, its script and its Role from the
// recorded registrations.
func rolloutJobOf(t *testing.T, mon *recorder.Monitor) rolloutJob {
	t.Helper()
	job := componentJob(t, mon, "rollout")
	spec := job.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("the rollout Job runs %d containers; want one, the script", len(spec.Containers))
	}
	j := rolloutJob{namespace: job.Namespace, serviceAccount: spec.ServiceAccountName, container: spec.Containers[0]}
	c := j.container
	if len(c.Command) != 2 || c.Command[0] != "/bin/sh" {
		t.Fatalf("the rollout container runs %q; want /bin/sh <script>", c.Command)
	}
	var ok bool
	if j.script, ok = configMapFiles(t, mon, job.Namespace, spec)[c.Command[1]]; !ok {
		t.Fatalf("the rollout runs %s, which no mounted ConfigMap holds", c.Command[1])
	}
	if j.script != rollout.Script {
		t.Fatal("the mounted script is not rollout.sh")
	}
	var roles []rbacv1.Role
	for _, r := range mon.ByType("kubernetes:rbac.authorization.k8s.io/v1:Role") {
		var role rbacv1.Role
		tests.Decode(t, r.Inputs, &role)
		roles = append(roles, role)
	}
	for _, r := range mon.ByType("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding") {
		var b rbacv1.RoleBinding
		tests.Decode(t, r.Inputs, &b)
		if len(b.Subjects) != 1 || b.Subjects[0].Name != j.serviceAccount || b.Subjects[0].Namespace != j.namespace {
			continue
		}
		for _, role := range roles {
			if role.Name == b.RoleRef.Name && role.Namespace == j.namespace {
				j.role = role
			}
		}
	}
	if len(j.role.Rules) == 0 {
		t.Fatalf("no Role is bound to the rollout's service account %s", j.serviceAccount)
	}
	return j
}

// podRevision is one pod template of the voters' StatefulSet: the HCL its
// pods start with (before nodeConfig's rewrite) and their seal.
type podRevision struct {
	config []byte
	seal   transitSeal
}

// kubePod is what the stand-in API keeps of a voter's pod.
type kubePod struct {
	uid, revision string
	terminating   bool
}

// kubeEvent is one thing the API did, for the test to read back.
type kubeEvent struct {
	at   time.Time
	what string
	// healthyBefore says, for a delete, whether every voter was running,
	// unsealed and healthy in autopilot when it was asked for.
	healthyBefore string
}

// kubeAPI stands in for the Kubernetes API and the controllers behind it,
// answering the stand-in kubectl: the voters' StatefulSet (its generation,
// observed generation and update revision), their pods (revision labels,
// uids), deleting a pod (the kubelet's termination of that voter: SIGTERM,
// a graceful shutdown; then the StatefulSet controller's new pod on the
// update revision, started with that revision's HCL), and the snapshot Job
// from the CronJob's template (a real Raft snapshot of the leader). Every
// call is checked against the rollout's rendered Role first.
type kubeAPI struct {
	t   *testing.T
	c   *cluster
	srv *httptest.Server
	ns  string
	job rolloutJob

	mu                   sync.Mutex
	generation, observed int64
	update               string
	revisions            map[string]podRevision
	pods                 map[string]*kubePod
	jobs                 map[string]*batchv1.Job
	events               []kubeEvent
	cronJob, statefulSet string
	snapshotDir          string
	// terminations are the voters being terminated and restarted.
	terminations sync.WaitGroup
	// snapshotFails makes the snapshot Job fail, as an upload the bucket
	// refuses would.
	snapshotFails bool
}

// newKubeAPI starts the stand-in with every voter's pod on revision first.
func newKubeAPI(t *testing.T, c *cluster, r *rendered, first string, rev podRevision) *kubeAPI {
	t.Helper()
	api := &kubeAPI{
		t: t, c: c, ns: r.namespace, job: r.rollout,
		generation: 1, observed: 1, update: first,
		revisions: map[string]podRevision{first: rev}, pods: map[string]*kubePod{}, jobs: map[string]*batchv1.Job{},
		cronJob: containerEnv(r.rollout.container, "SNAPSHOT_CRONJOB"), statefulSet: containerEnv(r.rollout.container, "STATEFULSET"),
		snapshotDir: t.TempDir(),
	}
	for _, n := range c.nodes {
		api.pods[n.name] = &kubePod{uid: randomHex(t, 8), revision: first}
	}
	api.srv = httptest.NewServer(http.HandlerFunc(api.serve))
	t.Cleanup(func() {
		api.srv.Close()
		api.terminations.Wait()
	})
	return api
}

// setTemplate deploys a new pod template: the generation moves at once,
// the controller observes it (and its update revision) a moment later.
func (api *kubeAPI) setTemplate(name string, rev podRevision) {
	api.mu.Lock()
	defer api.mu.Unlock()
	api.revisions[name] = rev
	api.generation++
	gen := api.generation
	time.AfterFunc(1500*time.Millisecond, func() {
		api.mu.Lock()
		defer api.mu.Unlock()
		api.observed, api.update = gen, name
	})
}

// record appends an event.
func (api *kubeAPI) record(e kubeEvent) {
	api.mu.Lock()
	defer api.mu.Unlock()
	e.at = time.Now()
	api.events = append(api.events, e)
}

// eventsSince returns the events after the first n.
func (api *kubeAPI) eventsSince(n int) []kubeEvent {
	api.mu.Lock()
	defer api.mu.Unlock()
	return slices.Clone(api.events[n:])
}

// allowed says whether the rendered Role grants verb on the named object.
// A create carries no name: rules with resourceNames never match it.
func (api *kubeAPI) allowed(group, resource, verb, name string) bool {
	for _, r := range api.job.role.Rules {
		if !slices.Contains(r.APIGroups, group) || !slices.Contains(r.Resources, resource) || !slices.Contains(r.Verbs, verb) {
			continue
		}
		if len(r.ResourceNames) == 0 || (name != "" && slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

// serve answers one kubectl call: its arguments, one a line.
func (api *kubeAPI) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	args := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	out, err := api.kubectl(args)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, err)
		return
	}
	_, _ = w.Write(out)
}

// kubectlKinds maps kubectl's resource names to their group and plural.
var kubectlKinds = map[string][2]string{
	"statefulset": {"apps", "statefulsets"}, "pod": {"", "pods"}, "job": {"batch", "jobs"},
}

// kubectl does what kubectl would for the calls the script makes, and
// fails on any other, so the test notices a call it does not cover.
func (api *kubeAPI) kubectl(args []string) ([]byte, error) {
	unsupported := func() ([]byte, error) {
		api.t.Errorf("the stand-in kubectl does not support: kubectl %s", strings.Join(args, " "))
		return nil, fmt.Errorf("stand-in kubectl: unsupported call: %q", args)
	}
	forbidden := func(verb, resource, name string) ([]byte, error) {
		api.t.Errorf("the rollout's Role does not allow %s %s %q, which the script asked for", verb, resource, name)
		return nil, fmt.Errorf("Error from server (Forbidden): %s %q is forbidden: cannot %s", resource, name, verb)
	}
	nsFlag := func(i int) bool { return len(args) > i+1 && args[i] == "-n" && args[i+1] == api.ns }
	switch {
	case len(args) == 8 && args[0] == "get" && nsFlag(3) && args[5] == "--ignore-not-found" && args[6] == "-o" && args[7] == "json":
		kind, ok := kubectlKinds[args[1]]
		if !ok {
			return unsupported()
		}
		if !api.allowed(kind[0], kind[1], "get", args[2]) {
			return forbidden("get", kind[1], args[2])
		}
		obj := api.object(args[1], args[2])
		if obj == nil {
			return nil, nil // --ignore-not-found: no output
		}
		return json.Marshal(obj)
	case len(args) == 6 && args[0] == "delete" && args[1] == "pod" && nsFlag(3) && args[5] == "--wait=false":
		if !api.allowed("", "pods", "delete", args[2]) {
			return forbidden("delete", "pods", args[2])
		}
		return api.deletePod(args[2])
	case len(args) == 6 && args[0] == "create" && args[1] == "job" && nsFlag(3) && strings.HasPrefix(args[5], "--from=cronjob/"):
		cron := strings.TrimPrefix(args[5], "--from=cronjob/")
		if !api.allowed("batch", "cronjobs", "get", cron) {
			return forbidden("get", "cronjobs", cron)
		}
		if !api.allowed("batch", "jobs", "create", "") {
			return forbidden("create", "jobs", "")
		}
		if cron != api.cronJob {
			return nil, fmt.Errorf("Error from server (NotFound): cronjobs.batch %q not found", cron)
		}
		return api.createSnapshotJob(args[2])
	}
	return unsupported()
}

// object is the API's answer for one object, nil if it does not exist.
func (api *kubeAPI) object(kind, name string) any {
	api.mu.Lock()
	defer api.mu.Unlock()
	switch kind {
	case "statefulset":
		if name != api.statefulSet {
			return nil
		}
		return &appsv1.StatefulSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: api.ns, Generation: api.generation},
			Status:     appsv1.StatefulSetStatus{ObservedGeneration: api.observed, UpdateRevision: api.update},
		}
	case "pod":
		p, ok := api.pods[name]
		if !ok {
			return nil
		}
		pod := &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: api.ns, UID: types.UID(p.uid), Labels: map[string]string{
				"app.kubernetes.io/name": "vault", "component": "server",
				"controller-revision-hash": p.revision, "statefulset.kubernetes.io/pod-name": name,
			}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if p.terminating {
			now := metav1.Now()
			pod.DeletionTimestamp = &now
		}
		return pod
	case "job":
		return api.jobs[name]
	}
	return nil
}

// node is the voter whose pod is name.
func (api *kubeAPI) node(name string) *node {
	for _, n := range api.c.nodes {
		if n.name == name {
			return n
		}
	}
	api.t.Errorf("no voter %s", name)
	return nil
}

// clusterHealth says whether every voter runs, is unsealed, and autopilot
// (asked on the leader) reports the cluster and every server healthy.
func (api *kubeAPI) clusterHealth() string {
	for _, n := range api.c.nodes {
		if h, err := api.c.health(n); err != nil || h.Sealed {
			return fmt.Sprintf("%s sealed or down (%v)", n.name, err)
		}
	}
	leader, err := api.c.leaderOnce()
	if err != nil {
		return err.Error()
	}
	var state struct {
		Data struct {
			Healthy bool
			Voters  []string
			Servers map[string]struct{ Healthy bool }
		}
	}
	if _, err := getJSON(api.c.https, leader.url()+"/v1/sys/storage/raft/autopilot/state", api.c.rootToken, &state); err != nil {
		return err.Error()
	}
	if !state.Data.Healthy || len(state.Data.Voters) != len(api.c.nodes) {
		return fmt.Sprintf("autopilot healthy %v, voters %v", state.Data.Healthy, state.Data.Voters)
	}
	return "healthy"
}

// deletePod marks the pod terminating and, as the kubelet and the
// StatefulSet controller would, stops its Vault gracefully, creates the
// new pod on the update revision and starts Vault with that revision.
func (api *kubeAPI) deletePod(name string) ([]byte, error) {
	health := api.clusterHealth()
	api.mu.Lock()
	p, ok := api.pods[name]
	if !ok {
		api.mu.Unlock()
		return nil, fmt.Errorf("Error from server (NotFound): pods %q not found", name)
	}
	already := p.terminating
	p.terminating = true
	api.mu.Unlock()
	api.record(kubeEvent{what: "delete " + name, healthyBefore: health})
	if already {
		return []byte(fmt.Sprintf("pod %q deleted\n", name)), nil
	}
	n := api.node(name)
	api.terminations.Add(1)
	go func() {
		defer api.terminations.Done()
		// The kubelet's SIGTERM; Vault's graceful shutdown (a leader hands
		// over leadership). stop kills it only after stopTimeout.
		n.proc.stop(api.t, syscall.SIGTERM)
		api.record(kubeEvent{what: "terminated " + name})
		api.mu.Lock()
		rev := api.update
		r := api.revisions[rev]
		api.pods[name] = &kubePod{uid: randomHex(api.t, 8), revision: rev}
		api.mu.Unlock()
		config, err := nodeConfig(r.config, n.root, n, api.c.nodes, r.seal)
		if err != nil {
			api.t.Errorf("the HCL of revision %s for %s: %v", rev, name, err)
			return
		}
		if err := os.WriteFile(n.config, config, 0o600); err != nil {
			api.t.Errorf("writing %s: %v", n.config, err)
			return
		}
		api.c.start(n)
		api.record(kubeEvent{what: "started " + name + " on " + rev})
	}()
	return []byte(fmt.Sprintf("pod %q deleted\n", name)), nil
}

// createSnapshotJob runs the snapshot CronJob's template: a Raft snapshot
// of the leader, saved as the job's save step would; the Job succeeds
// when the snapshot is written.
func (api *kubeAPI) createSnapshotJob(name string) ([]byte, error) {
	api.mu.Lock()
	if _, dup := api.jobs[name]; dup {
		api.mu.Unlock()
		return nil, fmt.Errorf("Error from server (AlreadyExists): jobs.batch %q already exists", name)
	}
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: api.ns},
		Status:     batchv1.JobStatus{Active: 1},
	}
	api.jobs[name] = job
	api.mu.Unlock()
	api.record(kubeEvent{what: "snapshot " + name})
	go func() {
		status := batchv1.JobStatus{Succeeded: 1}
		leader, err := api.c.leaderOnce()
		api.mu.Lock()
		if api.snapshotFails {
			err = fmt.Errorf("upload: AccessDenied")
		}
		api.mu.Unlock()
		if err == nil {
			_, err = api.c.cli(leader, api.c.rootToken).run("", "operator", "raft", "snapshot", "save", filepath.Join(api.snapshotDir, name+".snap"))
		}
		if err != nil {
			status = batchv1.JobStatus{Failed: 1, Conditions: []batchv1.JobCondition{{
				Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: err.Error(),
			}}}
		}
		api.mu.Lock()
		job.Status = status
		api.mu.Unlock()
		api.record(kubeEvent{what: "snapshot done " + name})
	}()
	return []byte("job.batch/" + name + " created\n"), nil
}

// activeService stands in for the <release>-active Service: a TCP proxy on
// loopback to whichever voter reports itself active, re-checked every 100
// ms the way Vault's service registration moves the vault-active label.
type activeService struct {
	addr   string
	mu     sync.Mutex
	active *node
}

// newActiveService starts the proxy and the watch on leadership.
func newActiveService(t *testing.T, c *cluster) *activeService {
	t.Helper()
	l, err := net.Listen("tcp", hostPort(loopbackIP, 0))
	if err != nil {
		t.Fatal(err)
	}
	s := &activeService{addr: "https://" + l.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{
		TLSClientConfig: c.https.Transport.(*http.Transport).TLSClientConfig, DisableKeepAlives: true,
	}}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var active *node
			for _, n := range c.nodes {
				resp, err := client.Get(n.url() + "/v1/sys/health")
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					active = n
				}
			}
			s.mu.Lock()
			s.active = active
			s.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			active := s.active
			s.mu.Unlock()
			if active == nil {
				conn.Close()
				continue
			}
			go proxyTo(conn, hostPort(loopbackIP, active.apiPort))
		}
	}()
	return s
}

// proxyTo copies between conn and a new connection to target.
func proxyTo(conn net.Conn, target string) {
	defer conn.Close()
	up, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

// readStats is what a client reading a secret every 100 ms saw.
type readStats struct {
	attempts, failures int
	longestGap         time.Duration
	// gapEnd is when the longest gap ended.
	gapEnd   time.Time
	failedAt []time.Time
}

// readContinuously reads the secret at path through svc every 100 ms until
// stop is closed, with a fresh connection each time (as through a Service
// whose endpoint moves).
func readContinuously(c *cluster, svc *activeService, token, path string, stop <-chan struct{}) <-chan readStats {
	out := make(chan readStats, 1)
	pool := c.https.Transport.(*http.Transport).TLSClientConfig.RootCAs
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
	}}
	go func() {
		var r readStats
		last := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out <- r
				return
			case <-tick.C:
			}
			r.attempts++
			req, _ := http.NewRequest(http.MethodGet, svc.addr+"/v1/"+path, nil)
			req.Header.Set("X-Vault-Token", token)
			resp, err := client.Do(req)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				resp.Body.Close()
			}
			now := time.Now()
			if !ok {
				r.failures++
				r.failedAt = append(r.failedAt, now)
				continue
			}
			if gap := now.Sub(last); gap > r.longestGap {
				r.longestGap, r.gapEnd = gap, now
			}
			last = now
		}
	}()
	return out
}

// rolloutRun runs the rollout's own script as its container would: the
// rendered environment, with what the pod mounts or reaches mapped onto
// this machine, kubectl the stand-in, and jq and vault on PATH.
type rolloutRun struct {
	t        *testing.T
	c        *cluster
	r        *rendered
	api      *kubeAPI
	svc      *activeService
	reviewer *tokenReviewer
	dir      string
	runs     int
}

// kubectlStandIn hands kubectl's arguments, one a line, to the stand-in
// API, and prints its answer (stdout on success, stderr and exit 1 on an
// error), as kubectl does.
const kubectlStandIn = `#!/bin/sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
code=$(printf '%s\n' "$@" | curl -sS -o "$out" -w '%{http_code}' --data-binary @- "$KUBE_API") || exit 1
if [ "$code" = 200 ]; then
  cat "$out"
  exit 0
fi
cat "$out" >&2
exit 1
`

func newRolloutRun(t *testing.T, c *cluster, r *rendered, api *kubeAPI, reviewer *tokenReviewer) *rolloutRun {
	t.Helper()
	run := &rolloutRun{t: t, c: c, r: r, api: api, svc: newActiveService(t, c), reviewer: reviewer, dir: t.TempDir()}
	bin := filepath.Join(run.dir, "bin")
	if err := os.MkdirAll(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(c.bin, filepath.Join(bin, "vault")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kubectl"), []byte(kubectlStandIn), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run.dir, rollout.ScriptFile), []byte(r.rollout.script), 0o600); err != nil {
		t.Fatal(err)
	}
	return run
}

// run runs the script with the settings in extra ("KEY=value") replacing
// the rendered ones.
func (run *rolloutRun) run(extra ...string) (string, error) {
	t := run.t
	t.Helper()
	run.runs++
	c, job := run.c, run.r.rollout
	jwt := filepath.Join(run.dir, "jwt")
	token := run.reviewer.mint(t, serviceAccount{namespace: job.namespace, name: job.serviceAccount, uid: randomHex(t, 8), audiences: []string{bootstrap.Audience}})
	if err := os.WriteFile(jwt, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	voters := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		voters[i] = n.name + "=" + n.url()
	}
	env := map[string]string{}
	for _, e := range job.container.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = fmt.Sprintf("vault-rollout-0123456789-run%d", run.runs)
		case e.ValueFrom != nil:
			t.Fatalf("env %s of the rollout comes from %v; the test handles only the pod's name", e.Name, e.ValueFrom)
		default:
			env[e.Name] = e.Value
		}
	}
	for _, k := range []string{"NAMESPACE", "STATEFULSET", "VOTERS", "VAULT_ADDR", "VAULT_CACERT", "AUTH_MOUNT", "VAULT_ROLE",
		"JWT_FILE", "SNAPSHOT_CRONJOB", "SNAPSHOT_TIMEOUT", "VOTER_TIMEOUT", "POLL_SECONDS", "POD_NAME", "PATH", "HOME"} {
		if _, set := env[k]; !set {
			t.Fatalf("the rollout container sets no %s", k)
		}
	}
	// What the pod mounts or reaches, here; polls every second instead of
	// five.
	for k, v := range map[string]string{
		"PATH": filepath.Join(run.dir, "bin") + ":/usr/bin:/bin", "HOME": run.dir, "VOTERS": strings.Join(voters, " "),
		"VAULT_ADDR": run.svc.addr, "VAULT_CACERT": c.caFile, "JWT_FILE": jwt, "POLL_SECONDS": "1",
		"KUBE_API": run.api.srv.URL,
	} {
		env[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", filepath.Join(run.dir, rollout.ScriptFile))
	cmd.Env = environ(env, extra)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("rollout.sh (%s):\n%s", time.Since(start).Round(100*time.Millisecond), out)
	return string(out), err
}

// bootstrapped runs the bootstrap's own steps on c with b, keeping an
// orphan root token for the test (the Job revokes the initial one): Vault
// initialised, configured with every client's role (the rollout's among
// them), healthy.
func bootstrapped(t *testing.T, c *cluster, r *rendered, b *bootstrapRun) {
	t.Helper()
	if failed, out := b.untilConfigure(r.bootstrap); failed != "" {
		t.Fatalf("bootstrap.sh %s failed:\n%s", failed, out)
	}
	raw, err := os.ReadFile(filepath.Join(b.secrets, "init.json"))
	if err != nil {
		t.Fatal(err)
	}
	var init initResponse
	if err := json.Unmarshal(raw, &init); err != nil {
		t.Fatal(err)
	}
	c.waitUnsealed(c.nodes[0])
	leader := c.leader()
	c.rootToken = strings.TrimSpace(c.cli(leader, init.RootToken).must(t, "token", "create", "-orphan", "-policy=root", "-field=token"))
	if _, err := b.step(r.bootstrap, "configure", leader.url()); err != nil {
		t.Fatalf("bootstrap.sh configure: %v", err)
	}
	c.waitAutopilotHealthy(len(c.nodes))
}

// withSetting is config with the top-level attribute name set to value.
func withSetting(t *testing.T, config []byte, name string, value cty.Value) []byte {
	t.Helper()
	f, diags := hclwrite.ParseConfig(config, "server.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	f.Body().SetAttributeValue(name, value)
	return f.Bytes()
}

// deleteEvents are the delete events among events.
func deleteEvents(events []kubeEvent) []kubeEvent {
	var out []kubeEvent
	for _, e := range events {
		if strings.HasPrefix(e.what, "delete ") {
			out = append(out, e)
		}
	}
	return out
}

// TestRolloutReplacesStandbysThenTheLeader runs the rollout's script
// against three real voters from the rendered HCL, through a stand-in
// Kubernetes API. On a first install (Vault not even initialised) every
// pod is current: it does nothing. After the bootstrap, a deploy with a new
// HCL (debug logging) and a new bootstrap config (the rollout's Vault role
// renamed): the rollout needs the bootstrap's new Job first (before it, it
// cannot log in and deletes nothing); after it, it snapshots, replaces
// both standbys one at a time, each only while the cluster is healthy,
// then the leader, and ends with every voter on the new HCL and autopilot
// healthy, while a client reads a secret through the active Service every
// 100 ms. Run again, it does nothing.
func TestRolloutReplacesStandbysThenTheLeader(t *testing.T) {
	t.Parallel()
	r := renderWith(t, withoutDatabases(nil))
	seal := startTransitSeal(t)
	c := newCluster(t, r, seal, clusterOptions{})
	api := newKubeAPI(t, c, r, "vault-old", podRevision{config: r.config, seal: seal})

	// First install: nothing to roll, and nothing asked of Vault.
	b := newBootstrapRun(t, c)
	run := newRolloutRun(t, c, r, api, b.reviewer)
	if out, err := run.run(); err != nil || !strings.Contains(out, "nothing to roll") {
		t.Fatalf("the rollout on a first install: %v; want nothing to roll", err)
	}
	if n := len(api.eventsSince(0)); n != 0 {
		t.Fatalf("the rollout on a first install did %d things: %v", n, api.eventsSince(0))
	}

	bootstrapped(t, c, r, b)
	root := c.cli(c.leader(), c.rootToken)
	root.must(t, "kv", "put", "secret/rollout", "value=before")

	newHCL := withSetting(t, r.config, "log_level", cty.StringVal("debug"))
	api.setTemplate("vault-new", podRevision{config: newHCL, seal: seal})

	// One deploy changes the HCL and the bootstrap's config at once: here it
	// also renames the rollout's Vault role. Run before the bootstrap's new
	// Job, the rollout cannot log in and touches nothing; hence the order.
	next := renderWith(t, withoutDatabases(map[string]any{"secrets-platform:rollout": map[string]any{
		"vaultRole": bootstrap.DefaultConfig().NamePrefix + "rollout-next",
	}}))
	run.r = next
	if out, err := run.run(); err == nil || !strings.Contains(out, "cannot log in to Vault as "+bootstrap.DefaultConfig().NamePrefix+"rollout-next") {
		t.Fatalf("the rollout before the bootstrap's new Job: %v; want a failed login", err)
	}
	if evs := api.eventsSince(0); len(evs) != 0 {
		t.Fatalf("the rollout that could not log in did %v", evs)
	}
	if _, err := b.step(next.bootstrap, "configure", c.leader().url()); err != nil {
		t.Fatalf("the bootstrap's new Job: %v", err)
	}
	leaderBefore := c.leader()
	stop := make(chan struct{})
	readsDone := readContinuously(c, run.svc, c.rootToken, "secret/data/rollout", stop)
	start := time.Now()
	out, err := run.run("VOTER_TIMEOUT=90")
	elapsed := time.Since(start)
	close(stop)
	rd := <-readsDone
	if err != nil {
		t.Fatalf("the rollout failed: %v", err)
	}
	if !strings.Contains(out, "done: every voter runs revision vault-new") {
		t.Errorf("the rollout's log does not end with done:\n%s", out)
	}

	events := api.eventsSince(0)
	dels := deleteEvents(events)
	if len(dels) != len(c.nodes) {
		t.Fatalf("%d pods deleted; want each of the %d voters once: %v", len(dels), len(c.nodes), events)
	}
	if events[0].what != fmt.Sprintf("snapshot vault-rollout-0123456789-run%d-snapshot", run.runs) || !slices.ContainsFunc(events, func(e kubeEvent) bool {
		return strings.HasPrefix(e.what, "snapshot done") && e.at.Before(dels[0].at)
	}) {
		t.Errorf("the snapshot did not complete before the first delete: %v", events)
	}
	for i, d := range dels {
		if d.healthyBefore != "healthy" {
			t.Errorf("delete %d (%s) was asked for while the cluster was not healthy: %s", i, d.what, d.healthyBefore)
		}
		if i > 0 {
			prev := strings.TrimPrefix(dels[i-1].what, "delete ")
			restarted := slices.IndexFunc(events, func(e kubeEvent) bool { return e.what == "started "+prev+" on vault-new" })
			if restarted < 0 || !events[restarted].at.Before(d.at) {
				t.Errorf("%s was deleted before %s was back on the new revision", d.what, prev)
			}
		}
	}
	if last := dels[len(dels)-1].what; last != "delete "+leaderBefore.name {
		t.Errorf("the last pod deleted is %s; want the leader, %s, last (order: %v)", last, leaderBefore.name, dels)
	}

	// Every voter on the new HCL, serving, and the cluster healthy.
	c.waitAutopilotHealthy(len(c.nodes))
	for _, n := range c.nodes {
		config, _ := os.ReadFile(n.config)
		logs, _ := os.ReadFile(n.logPath)
		if !strings.Contains(string(config), `log_level = "debug"`) || !strings.Contains(string(logs), "[DEBUG]") {
			t.Errorf("%s does not run the new HCL (debug logging)", n.name)
		}
	}
	if got := strings.TrimSpace(c.cli(c.leader(), c.rootToken).must(t, "kv", "get", "-field=value", "secret/rollout")); got != "before" {
		t.Errorf("the secret reads %q after the rollout", got)
	}

	// The client: only the leader's handover may interrupt it.
	var leaderDeleted, leaderBack time.Time
	for _, e := range events {
		switch e.what {
		case "delete " + leaderBefore.name:
			leaderDeleted = e.at
		case "started " + leaderBefore.name + " on vault-new":
			leaderBack = e.at
		}
	}
	for _, f := range rd.failedAt {
		if f.Before(leaderDeleted) || f.After(leaderDeleted.Add(10*time.Second)) {
			t.Errorf("a read failed at %s, outside the leader's handover (deleted at %s): a standby's replacement, or the rollout's end, interrupted reads",
				f.Sub(start).Round(time.Millisecond), leaderDeleted.Sub(start).Round(time.Millisecond))
		}
	}
	t.Logf("rollout took %s; %d reads, %d failed, longest gap between two successful reads %s (ending %s after the start; leader %s deleted at %s, back at %s)",
		elapsed.Round(100*time.Millisecond), rd.attempts, rd.failures, rd.longestGap.Round(time.Millisecond),
		rd.gapEnd.Sub(start).Round(time.Millisecond), leaderBefore.name,
		leaderDeleted.Sub(start).Round(time.Millisecond), leaderBack.Sub(start).Round(time.Millisecond))
	if rd.longestGap > 10*time.Second {
		t.Errorf("reads stopped for %s; want the leader's handover to take a few seconds", rd.longestGap)
	}

	// Again: every pod current, nothing deleted.
	before := len(api.eventsSince(0))
	if out, err := run.run(); err != nil || !strings.Contains(out, "nothing to roll") {
		t.Errorf("a second rollout: %v; want nothing to roll", err)
	}
	if more := api.eventsSince(before); len(more) != 0 {
		t.Errorf("a second rollout did %v", more)
	}
}

// TestRolloutRefusesADegradedClusterAndStopsAtASealedVoter: with a voter
// down before the start, the rollout refuses and deletes nothing; with a
// snapshot that fails, it stops before any voter; with a new HCL that
// leaves a replaced voter sealed, it stops after that voter, naming it,
// and the two others, untouched, keep serving.
func TestRolloutRefusesADegradedClusterAndStopsAtASealedVoter(t *testing.T) {
	t.Parallel()
	r := renderWith(t, withoutDatabases(nil))
	seal := startTransitSeal(t)
	c := newCluster(t, r, seal, clusterOptions{})
	api := newKubeAPI(t, c, r, "vault-old", podRevision{config: r.config, seal: seal})
	b := newBootstrapRun(t, c)
	bootstrapped(t, c, r, b)
	run := newRolloutRun(t, c, r, api, b.reviewer)
	c.cli(c.leader(), c.rootToken).must(t, "kv", "put", "secret/rollout", "value=before")

	// Degraded: a standby's Vault is down (its pod is there).
	down := c.standby()
	c.kill(down)
	api.setTemplate("vault-new", podRevision{config: withSetting(t, r.config, "log_level", cty.StringVal("debug")), seal: seal})
	out, err := run.run()
	if err == nil || !strings.Contains(out, "refusing to start") || !strings.Contains(out, "voter "+down.name+" is unreachable") {
		t.Fatalf("the rollout with %s down: %v; want a refusal naming it", down.name, err)
	}
	if evs := api.eventsSince(0); len(evs) != 0 {
		t.Fatalf("the refused rollout did %v; want nothing", evs)
	}
	c.start(down)
	c.waitUnsealed(down)
	c.waitAutopilotHealthy(len(c.nodes))

	// A snapshot that fails: the rollout stops before any voter.
	api.mu.Lock()
	api.snapshotFails = true
	api.mu.Unlock()
	out, err = run.run()
	if err == nil || !strings.Contains(out, "failed (BackoffLimitExceeded: upload: AccessDenied); no voter was touched") {
		t.Fatalf("the rollout with a failing snapshot: %v; want it to stop, naming the snapshot Job's failure", err)
	}
	if dels := deleteEvents(api.eventsSince(0)); len(dels) != 0 {
		t.Fatalf("the rollout deleted %v after its snapshot failed", dels)
	}
	api.mu.Lock()
	api.snapshotFails = false
	api.mu.Unlock()

	// A new HCL whose seal cannot unseal this cluster (another transit key).
	other := seal
	other.key = "other"
	transit := cli{bin: c.bin, addr: seal.address, token: seal.token, home: t.TempDir()}
	transit.must(t, "write", "-f", seal.mount+"/keys/"+other.key)
	api.setTemplate("vault-sealed", podRevision{config: r.config, seal: other})
	pids := map[string]int{}
	for _, n := range c.nodes {
		pids[n.name] = n.proc.cmd.Process.Pid
	}
	out, err = run.run("VOTER_TIMEOUT=20")
	if err == nil {
		t.Fatal("the rollout passed with a voter that cannot unseal")
	}
	dels := deleteEvents(api.eventsSince(0))
	if len(dels) != 1 {
		t.Fatalf("%d pods deleted; want the rollout to stop after the first: %v", len(dels), dels)
	}
	replaced := strings.TrimPrefix(dels[0].what, "delete ")
	if want := "voter " + replaced + ": waited 20s for it to unseal; saw "; !strings.Contains(out, want) {
		t.Errorf("the rollout's failure does not say %q:\n%s", want, out)
	}
	for _, n := range c.nodes {
		if n.name == replaced {
			continue
		}
		if pid := n.proc.cmd.Process.Pid; pid != pids[n.name] || !n.proc.running() {
			t.Errorf("%s was touched (pid %d, then %d)", n.name, pids[n.name], pid)
		}
	}
	leader := c.leader()
	if leader.name == replaced {
		t.Fatalf("the sealed voter %s leads", replaced)
	}
	if h, err := c.health(api.node(replaced)); err == nil && !h.Sealed {
		t.Errorf("%s unsealed with another seal key", replaced)
	}
	if got := strings.TrimSpace(c.cli(leader, c.rootToken).must(t, "kv", "get", "-field=value", "secret/rollout")); got != "before" {
		t.Errorf("the two untouched voters serve %q; want the secret", got)
	}
}
