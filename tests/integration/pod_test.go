//go:build integration

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A pod as the kubelet and the container runtime run it, as far as the
// processes go: the containers of a pod with shareProcessNamespace share one
// PID namespace whose PID 1 is the pause container; each container's main
// process and each exec (a lifecycle hook) is started from outside the
// namespace (the runtime's shim), so inside it their parent is 0; when a
// container's main process exits, the runtime SIGKILLs every other process
// of that container (containerd's shim does so whenever the container does
// not have a PID namespace of its own), execs included. The tests run as
// root, which `unshare --pid` and `nsenter` need; the containers run as
// their users, without capabilities.
//
// What the image provides is stood in for by this machine's programs on a
// PATH of their own: busybox's applets (Alpine's /bin/sh and tools in the
// hashicorp/vault image are busybox), procps for the applets Debian's
// busybox lacks and Alpine's has, dumb-init, the vault binary, and
// testdata/docker-entrypoint.sh for the image's entrypoint.

// podMarker is an environment variable every process of a test pod's
// container inherits: it is how the runtime stand-in finds a container's
// processes once their parent is gone (the runtime uses the cgroup).
const podMarker = "INTEGRATION_POD_CONTAINER"

// procpsApplets are the applets Alpine's busybox has and Debian's lacks,
// taken from procps: pgrep (which the reloader used to call).
var procpsApplets = []string{"pgrep"}

// podSandbox is a running pod's PID namespace.
type podSandbox struct {
	t *testing.T
	// id tells this pod's processes from other tests' (podMarker).
	id string
	// tools is the images' PATH: busybox applets, dumb-init, vault and the
	// entrypoint stand-in.
	tools   string
	sandbox *exec.Cmd
	// pid1 is the host pid of the namespace's PID 1.
	pid1 int
}

// newPodSandbox starts a pod's PID namespace with a pause-like PID 1
// (testdata/pause.sh); t.Cleanup kills it and everything in it.
func newPodSandbox(t *testing.T, name string) *podSandbox {
	t.Helper()
	p := &podSandbox{t: t, id: name + "-" + randomHex(t, 4), tools: podTools(t)}
	pause, err := filepath.Abs(filepath.Join("testdata", "pause.sh"))
	if err != nil {
		t.Fatal(err)
	}
	// --kill-child: PID 1 dies with unshare, and the kernel kills the rest.
	p.sandbox = exec.Command(lookPath(t, "unshare"), "--pid", "--fork", "--mount-proc", "--kill-child",
		filepath.Join(p.tools, "sh"), pause)
	p.sandbox.Env = []string{"PATH=" + p.tools}
	if err := p.sandbox.Start(); err != nil {
		t.Fatalf("starting the pod's PID namespace (unshare, as root): %v", err)
	}
	t.Cleanup(func() {
		_ = p.sandbox.Process.Kill()
		_ = p.sandbox.Wait()
	})
	p.pid1 = childOf(t, p.sandbox.Process.Pid)
	return p
}

// podTools lays out the images' PATH in a new directory.
func podTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	giveTo(t, runAs{}, dir) // for the containers' users to run
	busybox := lookPath(t, "busybox")
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	links := map[string]string{}
	for _, applet := range strings.Fields(string(out)) {
		links[applet] = busybox
	}
	for _, applet := range procpsApplets {
		if _, ok := links[applet]; !ok {
			links[applet] = lookPath(t, applet)
		}
	}
	links["vault"] = vaultBin(t)
	dumbInit := lookPath(t, "dumb-init")
	links["dumb-init"] = dumbInit
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	// The entrypoint stand-in, run by this machine's dumb-init and busybox
	// sh instead of the image's /usr/bin/dumb-init and /bin/sh.
	entrypoint, err := os.ReadFile(filepath.Join("testdata", "docker-entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	const shebang = "#!/usr/bin/dumb-init /bin/sh\n"
	if !bytes.HasPrefix(entrypoint, []byte(shebang)) {
		t.Fatalf("testdata/docker-entrypoint.sh does not start with %q, as the image's does", shebang)
	}
	entrypoint = append([]byte("#!"+dumbInit+" "+filepath.Join(dir, "sh")+"\n"), entrypoint[len(shebang):]...)
	if err := os.WriteFile(filepath.Join(dir, "docker-entrypoint.sh"), entrypoint, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lookPath finds a program the pod tests need, or fails naming its package.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (Debian packages busybox, dumb-init, procps, util-linux; .ci/run installs them): %v", name, err)
	}
	return path
}

// childOf waits for pid's first child (a forking unshare or nsenter) and
// returns its pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	var child int
	eventually(t, 10*time.Second, fmt.Sprintf("a child of process %d", pid), func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return err
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			return errors.New("none yet")
		}
		child, err = strconv.Atoi(fields[0])
		return err
	})
	return child
}

// podProcess is a process of a test pod's container, as /proc shows it.
type podProcess struct {
	// pid is the host's; nsPID the pod's (what pidof in the pod prints).
	pid, nsPID int
	comm       string
	args       []string
}

// processes lists the processes of the pod's container name.
func (p *podSandbox) processes(container string) []podProcess {
	marker := []byte(podMarker + "=" + p.id + "/" + container + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		p.t.Fatal(err)
	}
	var found []podProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		environ, err := os.ReadFile(dir + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, environ...), append([]byte{0}, marker...)) {
			continue
		}
		proc := podProcess{pid: pid}
		comm, _ := os.ReadFile(dir + "/comm")
		proc.comm = strings.TrimSpace(string(comm))
		cmdline, _ := os.ReadFile(dir + "/cmdline")
		proc.args = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		status, _ := os.ReadFile(dir + "/status")
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
				ids := strings.Fields(rest)
				proc.nsPID, _ = strconv.Atoi(ids[len(ids)-1])
			}
		}
		found = append(found, proc)
	}
	return found
}

// vaultServer is the one `vault server` process of container, if any.
func (p *podSandbox) vaultServer(container string) (podProcess, error) {
	var servers []podProcess
	for _, proc := range p.processes(container) {
		if proc.comm == "vault" && len(proc.args) > 1 && proc.args[1] == "server" {
			servers = append(servers, proc)
		}
	}
	if len(servers) != 1 {
		return podProcess{}, fmt.Errorf("%d vault server processes in container %s: %+v", len(servers), container, p.processes(container))
	}
	return servers[0], nil
}

// killContainer is the runtime's clean-up when a container's main process
// exits: SIGKILL to every other process of the container.
func (p *podSandbox) killContainer(container string) {
	for range 50 {
		procs := p.processes(container)
		if len(procs) == 0 {
			return
		}
		for _, proc := range procs {
			_ = syscall.Kill(proc.pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Errorf("processes of container %s outlive SIGKILL: %+v", container, p.processes(container))
}

// runAs is a container's user and group (its securityContext's runAsUser
// and runAsGroup); the zero value is root.
type runAs struct{ uid, gid int }

// podContainer is a container's main process, or an exec in a container,
// run through nsenter, which exits as its child does (with its status, or
// by its signal).
type podContainer struct {
	pod  *podSandbox
	name string
	user runAs
	cmd  *exec.Cmd
	// exited is closed when the process has exited; done when, besides,
	// the runtime has killed the rest of the container.
	exited, done chan struct{}
	// main is the host pid of a container's main process (nsenter's
	// child, in the namespace); 0 for an exec.
	main int
}

// start runs argv as the main process of the pod's container name, as
// user, with env and its output appended to logPath; when it exits, the
// rest of the container is killed. "/bin/sh" is busybox sh, as in the image.
func (p *podSandbox) start(name string, user runAs, logPath string, env []string, argv ...string) *podContainer {
	p.t.Helper()
	c := p.spawn(name, user, logPath, env, argv)
	c.main = childOf(p.t, c.cmd.Process.Pid)
	go func() {
		_ = c.cmd.Wait() // the status is in c.cmd.ProcessState
		close(c.exited)
		p.killContainer(name)
		close(c.done)
	}()
	return c
}

// exec runs argv in container c's namespaces, as its user and with its
// environment, as the kubelet runs an exec hook; the runtime kills it with
// the container.
func (c *podContainer) exec(logPath string, argv ...string) *podContainer {
	c.pod.t.Helper()
	e := c.pod.spawn(c.name, c.user, logPath, c.cmd.Env, argv)
	go func() {
		_ = e.cmd.Wait()
		close(e.exited)
		close(e.done)
	}()
	return e
}

// spawn starts argv in the pod's namespaces through nsenter, marked as a
// process of container name.
func (p *podSandbox) spawn(name string, user runAs, logPath string, env, argv []string) *podContainer {
	p.t.Helper()
	if argv[0] == "/bin/sh" {
		argv = append([]string{filepath.Join(p.tools, "sh")}, argv[1:]...)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	marker := podMarker + "=" + p.id + "/" + name
	env = append(slices.DeleteFunc(slices.Clone(env), func(e string) bool {
		return strings.HasPrefix(e, podMarker+"=")
	}), marker)
	// env --default-signal: the runtime starts processes with every
	// signal's default action; the test may run with some ignored (nohup),
	// which exec would hand down.
	args := []string{"--target", strconv.Itoa(p.pid1), "--pid", "--mount"}
	if user != (runAs{}) {
		// Drops root and its capabilities, as the pod's processes have none.
		args = append(args, "--setuid", strconv.Itoa(user.uid), "--setgid", strconv.Itoa(user.gid))
	}
	args = append(append(args, "--", lookPath(p.t, "env"), "--default-signal"), argv...)
	cmd := exec.Command(lookPath(p.t, "nsenter"), args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s in the pod: %v", name, err)
	}
	return &podContainer{pod: p, name: name, user: user, cmd: cmd, exited: make(chan struct{}), done: make(chan struct{})}
}

// running reports whether the process has not exited.
func (c *podContainer) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// exitStatus describes how the process ended, as the kubelet reports a
// container's end: "exit code N" or "signal: S".
func (c *podContainer) exitStatus() string {
	<-c.done
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return c.cmd.ProcessState.String()
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	default:
		return fmt.Sprintf("exit code %d", ws.ExitStatus())
	}
}

// termination is what happened when the kubelet stopped a container.
type termination struct {
	// hook is how the preStop hook ended ("" if it outlasted the grace
	// period), and hookTook how long it ran.
	hook     string
	hookTook time.Duration
	// sigterm: the main process was still running when the hook returned,
	// and the kubelet sent it SIGTERM; sigkill: the grace period ran out.
	sigterm, sigkill bool
	// exit is how the container's main process ended.
	exit string
}

// minimumGrace is what the kubelet leaves the container after the preStop
// hook, however long the hook took.
const minimumGrace = 2 * time.Second

// terminate stops c the way the kubelet does when its pod is deleted: the
// preStop exec hook first (its time counts against the grace period), then
// SIGTERM to the container's main process, then SIGKILL when the grace
// period is over.
func (c *podContainer) terminate(hookLog string, preStop []string, grace time.Duration) termination {
	c.pod.t.Helper()
	var r termination
	start := time.Now()
	hook := c.exec(hookLog, preStop...)
	select {
	case <-hook.done:
		r.hook = hook.exitStatus()
	case <-time.After(grace):
	}
	r.hookTook = time.Since(start)
	if c.running() {
		r.sigterm = true
		_ = syscall.Kill(c.main, syscall.SIGTERM)
	}
	select {
	case <-c.exited:
	case <-time.After(max(grace-time.Since(start), minimumGrace)):
		r.sigkill = true
		_ = syscall.Kill(c.main, syscall.SIGKILL)
	}
	r.exit = c.exitStatus()
	return r
}

// giveTo hands the files under each path to user, and their directories
// to user's group too, as the kubelet mounts a pod's volumes for its
// fsGroup, and lets every user through the test's temporary directories
// above them (t.TempDir makes them 0700).
func giveTo(t *testing.T, user runAs, paths ...string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for _, path := range paths {
		if err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := os.Lchown(p, user.uid, user.gid); err != nil || !d.IsDir() {
				return err
			}
			// The group's, as the kubelet makes a volume's directories for
			// the pod's fsGroup.
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Chmod(p, info.Mode().Perm()|0o070)
		}); err != nil {
			t.Fatal(err)
		}
		for dir := path; ; dir = filepath.Dir(dir) {
			if dir == top || dir == filepath.Dir(dir) {
				break
			}
			if !strings.HasPrefix(dir, top+string(filepath.Separator)) {
				t.Fatalf("%s is not under the temporary directory %s", path, top)
			}
			info, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if info.IsDir() && info.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(dir, info.Mode().Perm()|0o011); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
