// Package fromstack derives what a stack needs from its cluster
// (preflight.Target) from the stack itself: its config, read and validated
// by stacks.Load, and the objects the program registers when it runs
// offline under the recording mocks, as cmd/render runs it. So the labels,
// namespaces and names the checks look for are the ones the program will
// create, not a second copy of them.
//
// It lives apart from package preflight so that the checks and their tests
// do not link the Pulumi SDKs.
package fromstack

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/internal/preflight"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// Type tokens of the registered resources the target is read from.
const (
	namespaceType  = "kubernetes:core/v1:Namespace"
	configMapType  = "kubernetes:core/v1:ConfigMap"
	releaseType    = "kubernetes:helm.sh/v3:Release"
	monitoringType = "kubernetes:" + observability.MonitoringAPIVersion + ":"
)

// Load reads Pulumi.<stack>.yaml in projectDir, validates it as `pulumi up`
// would (an invalid config is an error here too), runs the program offline
// and returns the stack's target and its config.
func Load(projectDir, stack string) (preflight.Target, *stacks.Config, error) {
	file, err := recorder.LoadStackFile(projectDir, stack)
	if err != nil {
		return preflight.Target{}, nil, err
	}
	var cfg *stacks.Config
	mon, err := recorder.Run(stack, file, func(ctx *pulumi.Context) error {
		loaded, err := stacks.Load(ctx)
		if err != nil {
			return err
		}
		cfg = loaded
		if err := stacks.CheckCapacity(loaded); err != nil {
			return err
		}
		_, err = stacks.Compose(ctx, loaded)
		return err
	})
	if err != nil {
		return preflight.Target{}, nil, err
	}
	t, err := targetOf(stack, cfg, mon.Resources())
	return t, cfg, err
}

// object is the part of a registered Kubernetes object the target needs.
type object struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Prober struct {
			URL string `json:"url"`
		} `json:"prober"`
		Module string `json:"module"`
	} `json:"spec"`
}

// targetOf builds the target from the config and the registered resources.
func targetOf(stack string, cfg *stacks.Config, resources []recorder.Resource) (preflight.Target, error) {
	t := preflight.Target{
		Stack:              stack,
		Context:            cfg.Kubernetes.Context,
		Namespace:          cfg.Namespace,
		StorageClass:       cfg.Vault.StorageClass,
		Voters:             cfg.Vault.Replicas,
		PrometheusOperator: cfg.Observability.PrometheusOperator,
	}
	for _, r := range resources {
		if !r.Custom || !strings.HasPrefix(r.Type, "kubernetes:") {
			continue
		}
		var obj object
		if err := decode(r.Inputs, &obj); err != nil {
			return t, fmt.Errorf("%s %s: %w", r.Type, r.Name, err)
		}
		meta := obj.Metadata
		switch {
		case r.Type == namespaceType && meta.Name == cfg.Namespace:
			t.NamespaceLabels = meta.Labels
		case strings.HasPrefix(r.Type, monitoringType):
			kind := strings.TrimPrefix(r.Type, monitoringType)
			t.Monitors = append(t.Monitors, preflight.Object{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Labels: meta.Labels})
			if kind == "Probe" {
				t.Prober = &preflight.Prober{Address: obj.Spec.Prober.URL, Module: obj.Spec.Module}
			}
		case r.Type == configMapType && meta.Labels[observability.DashboardLabel] != "":
			t.Dashboards = append(t.Dashboards, preflight.Object{Kind: "ConfigMap", Namespace: meta.Namespace, Name: meta.Name, Labels: meta.Labels})
		case r.Type == releaseType && plainString(r.Inputs, "chart") == "external-secrets":
			t.ESORelease = plainString(r.Inputs, "name")
		}
	}
	if t.NamespaceLabels == nil {
		return t, fmt.Errorf("the program registered no Namespace %s", cfg.Namespace)
	}
	if t.ESORelease == "" {
		return t, fmt.Errorf("the program registered no external-secrets release")
	}
	return t, nil
}

// decode converts recorded inputs into out through JSON.
func decode(inputs resource.PropertyMap, out any) error {
	raw, err := json.Marshal(plain(resource.NewObjectProperty(inputs)))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// plainString is a string input, "" when absent or not a string.
func plainString(inputs resource.PropertyMap, key string) string {
	s, _ := plain(inputs[resource.PropertyKey(key)]).(string)
	return s
}

// plain turns a recorded property into plain Go values, unwrapping
// secrets and outputs; unknown values become nil.
func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		return plain(v.OutputValue().Element)
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = plain(e)
		}
		return out
	case v.IsArray():
		out := make([]any, 0, len(v.ArrayValue()))
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e))
		}
		return out
	case v.IsNull(), v.IsComputed():
		return nil
	}
	return v.V
}
