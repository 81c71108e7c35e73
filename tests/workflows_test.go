package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// workflow is the part of a GitHub Actions workflow the pipeline's rules
// are about.
type workflow struct {
	// On is the workflow's triggers. YAML 1.1 reads the key `on` as the
	// boolean true, and so does sigs.k8s.io/yaml.
	On   map[string]any `json:"true"`
	Jobs map[string]struct {
		TimeoutMinutes int            `json:"timeout-minutes"`
		Environment    string         `json:"environment"`
		Strategy       map[string]any `json:"strategy"`
		Concurrency    *struct {
			Group            string `json:"group"`
			CancelInProgress bool   `json:"cancel-in-progress"`
		} `json:"concurrency"`
		Steps []struct {
			Uses string            `json:"uses"`
			With map[string]string `json:"with"`
		} `json:"steps"`
	} `json:"jobs"`
}

// pinnedUse is an action pinned by a full commit SHA, with the release it
// is in a comment.
var pinnedUse = regexp.MustCompile(`^\s*- uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$`)

// The pipeline's rules (README, "The pipeline"): actions pinned by commit,
// the Pulumi CLI pinned, a timeout on every job, previews and ups of a
// stack in its one concurrency group, production never previewed from a
// pull request, and each role used only in its environment.
func TestWorkflowsFollowThePipelinesRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows: %v", err)
	}
	pulumiJobs := 0
	for _, file := range files {
		name := filepath.Base(file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "uses:") && !pinnedUse.MatchString(line) {
				t.Errorf("%s:%d: %q is not pinned by commit with its release in a comment", name, i+1, strings.TrimSpace(line))
			}
		}
		var wf workflow
		if err := yaml.Unmarshal(raw, &wf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(wf.On) == 0 {
			t.Fatalf("%s: no triggers read", name)
		}
		_, onPullRequest := wf.On["pull_request"]
		_, onPullRequestTarget := wf.On["pull_request_target"]
		for jobName, job := range wf.Jobs {
			where := name + " job " + jobName
			if job.TimeoutMinutes <= 0 {
				t.Errorf("%s has no timeout-minutes", where)
			}
			text := string(raw)
			for _, step := range job.Steps {
				if !strings.HasPrefix(step.Uses, "pulumi/actions@") {
					continue
				}
				pulumiJobs++
				if step.With["pulumi-version-file"] != ".pulumi-version" {
					t.Errorf("%s: the Pulumi CLI is not pinned by .pulumi-version", where)
				}
				stack := step.With["stack-name"]
				stacks := []string{stack}
				if stack == "${{ matrix.stack }}" {
					stacks = nil
					for _, s := range job.Strategy["matrix"].(map[string]any)["stack"].([]any) {
						stacks = append(stacks, s.(string))
					}
				}
				// One group per stack: pulumi-staging, pulumi-production,
				// or the matrix's pulumi-${{ matrix.stack }}.
				group := "pulumi-" + stack
				if job.Concurrency == nil || job.Concurrency.Group != group || job.Concurrency.CancelInProgress {
					t.Errorf("%s: concurrency %+v, want group %s without cancel-in-progress", where, job.Concurrency, group)
				}
				if (onPullRequest || onPullRequestTarget) && slices.Contains(stacks, "production") {
					t.Errorf("%s: previews production from a pull request", where)
				}
				command := step.With["command"]
				deployRole := strings.Contains(jobText(text, jobName), "AWS_DEPLOY_ROLE_ARN")
				switch {
				case command == "up" && (!deployRole || job.Environment != stack):
					t.Errorf("%s: up of %s must use AWS_DEPLOY_ROLE_ARN in environment %s", where, stack, stack)
				case command == "preview" && (deployRole || !strings.HasPrefix(job.Environment, "preview-")):
					t.Errorf("%s: a preview must use AWS_PREVIEW_ROLE_ARN in a preview-* environment", where)
				}
			}
		}
	}
	if pulumiJobs < 5 {
		t.Errorf("%d jobs run pulumi/actions, want the staging and production ups and previews and the drift check", pulumiJobs)
	}
	version, err := os.ReadFile(filepath.Join(RepoRoot(), ".pulumi-version"))
	if err != nil || !regexp.MustCompile(`^3\.\d+\.\d+\n?$`).Match(version) {
		t.Errorf(".pulumi-version = %q (%v), want one Pulumi 3 version", version, err)
	}
}

// jobText is the text of one job of a workflow: from its key to the next
// job's.
func jobText(text, job string) string {
	_, rest, ok := strings.Cut(text, "\n  "+job+":\n")
	if !ok {
		return ""
	}
	if i := regexp.MustCompile(`\n  [\w-]+:\n`).FindStringIndex(rest); i != nil {
		rest = rest[:i[0]]
	}
	return rest
}
