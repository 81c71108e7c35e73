package externalsecrets_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	helmv3 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	releaseType        = "kubernetes:helm.sh/v3:Release"
	serviceAccountType = "kubernetes:core/v1:ServiceAccount"
	secretStoreType    = "kubernetes:external-secrets.io/v1:SecretStore"
	externalSecretType = "kubernetes:external-secrets.io/v1:ExternalSecret"
	vaultAddress       = "https://vault.production.svc:8200"
)

// The CR bodies as the external-secrets.io/v1 API names their fields
// (apis/externalsecrets/v1 VaultProvider, VaultKubernetesAuth,
// ExternalSecretSpec), written out here independently of the component.
type secretStore struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Provider struct {
			Vault struct {
				Server   string `json:"server"`
				Path     string `json:"path"`
				Version  string `json:"version"`
				CABundle string `json:"caBundle"`
				Auth     struct {
					Kubernetes struct {
						MountPath         string `json:"mountPath"`
						Role              string `json:"role"`
						ServiceAccountRef struct {
							Name      string `json:"name"`
							Namespace string `json:"namespace"`
						} `json:"serviceAccountRef"`
					} `json:"kubernetes"`
				} `json:"auth"`
			} `json:"vault"`
		} `json:"provider"`
	} `json:"spec"`
}

type externalSecret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		RefreshInterval string `json:"refreshInterval"`
		SecretStoreRef  struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"secretStoreRef"`
		Target struct {
			Name           string `json:"name"`
			CreationPolicy string `json:"creationPolicy"`
		} `json:"target"`
		Data []struct {
			SecretKey string `json:"secretKey"`
			RemoteRef struct {
				Key      string `json:"key"`
				Property string `json:"property"`
			} `json:"remoteRef"`
		} `json:"data"`
	} `json:"spec"`
}

// caPEM is a freshly generated CA certificate, standing in for
// HardenedVault's.
func caPEM(t *testing.T) string {
	t.Helper()
	cert, _ := tests.NewTestCA(t)
	return cert
}

// productionArgs are the seed's settings: the postgres credentials every
// 5 minutes through the dedicated account, two replicas.
func productionArgs(ca string) *externalsecrets.ExternalSecretsStackArgs {
	res := kube.Resources{
		Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
		Limits:   map[string]string{"cpu": "200m", "memory": "256Mi"},
	}
	c := externalsecrets.DefaultConfig()
	c.Replicas = 2
	c.Resources = externalsecrets.ResourcesConfig{Controller: res, Webhook: res, CertController: res}
	c.Secrets = []externalsecrets.SecretConfig{{
		Name:            "postgres-credentials",
		RefreshInterval: "5m",
		Target:          "postgres-credentials",
		VaultKey:        "database/postgres",
		Data: []externalsecrets.DataConfig{
			{SecretKey: "POSTGRES_USER", Property: "username"},
			{SecretKey: "POSTGRES_PASSWORD", Property: "password"},
		},
	}}
	return &externalsecrets.ExternalSecretsStackArgs{
		Config:         c,
		Namespace:      pulumi.String("production"),
		VaultAddress:   pulumi.String(vaultAddress),
		VaultCACertPEM: pulumi.String(ca),
	}
}

// run builds a dummy Vault release and the component, which waits for it.
// edit may change the args before the component is created.
func run(t *testing.T, ca string, edit func(*externalsecrets.ExternalSecretsStackArgs)) (*recorder.Monitor, recorder.Resource) {
	t.Helper()
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		vault, err := helmv3.NewRelease(ctx, "vault", &helmv3.ReleaseArgs{Chart: pulumi.String("vault")})
		if err != nil {
			return err
		}
		args := productionArgs(ca)
		args.DependsOn = []pulumi.Resource{vault}
		if edit != nil {
			edit(args)
		}
		_, err = externalsecrets.NewExternalSecretsStack(ctx, "eso", args)
		return err
	})
	return mon, tests.MustFind(t, mon, releaseType, "eso-release")
}

func TestStoreTrustsVaultOverHTTPSWithDedicatedAccount(t *testing.T) {
	ca := caPEM(t)
	mon, _ := run(t, ca, nil)

	var store secretStore
	tests.Decode(t, tests.MustFind(t, mon, secretStoreType, "eso-store").Inputs, &store)
	if store.APIVersion != "external-secrets.io/v1" || store.Kind != "SecretStore" {
		t.Errorf("store is %s %s, want external-secrets.io/v1 SecretStore", store.APIVersion, store.Kind)
	}
	if store.Metadata.Name != "vault-backend" || store.Metadata.Namespace != "production" {
		t.Errorf("store is %s/%s, want production/vault-backend", store.Metadata.Namespace, store.Metadata.Name)
	}
	v := store.Spec.Provider.Vault
	if v.Server != vaultAddress || !strings.HasPrefix(v.Server, "https://") {
		t.Errorf("server = %q, want %q", v.Server, vaultAddress)
	}
	if v.Path != "secret" || v.Version != "v2" {
		t.Errorf("path, version = %q, %q; want secret, v2", v.Path, v.Version)
	}
	bundle, err := base64.StdEncoding.DecodeString(v.CABundle)
	if err != nil {
		t.Fatalf("caBundle is not base64: %v", err)
	}
	if string(bundle) != ca {
		t.Errorf("caBundle decodes to\n%s\nwant the Vault CA\n%s", bundle, ca)
	}
	k := v.Auth.Kubernetes
	if k.MountPath != "kubernetes" || k.Role != "secrets-platform-external-secrets" {
		t.Errorf("auth.kubernetes mountPath, role = %q, %q", k.MountPath, k.Role)
	}
	if k.ServiceAccountRef.Name != "external-secrets-vault-auth" {
		t.Errorf("serviceAccountRef.name = %q, want external-secrets-vault-auth", k.ServiceAccountRef.Name)
	}

	var sa corev1.ServiceAccount
	tests.Decode(t, tests.MustFind(t, mon, serviceAccountType, "eso-vault-auth").Inputs, &sa)
	if sa.Name != "external-secrets-vault-auth" || sa.Namespace != "production" {
		t.Errorf("service account is %s/%s, want production/external-secrets-vault-auth", sa.Namespace, sa.Name)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the Vault auth account's token must not be automounted: ESO requests tokens for it")
	}
}

func TestExternalSecretRefreshesEveryFiveMinutes(t *testing.T) {
	mon, _ := run(t, caPEM(t), nil)

	var es externalSecret
	tests.Decode(t, tests.MustFind(t, mon, externalSecretType, "eso-postgres-credentials").Inputs, &es)
	if es.APIVersion != "external-secrets.io/v1" || es.Kind != "ExternalSecret" {
		t.Errorf("external secret is %s %s", es.APIVersion, es.Kind)
	}
	if es.Metadata.Name != "postgres-credentials" || es.Metadata.Namespace != "production" {
		t.Errorf("external secret is %s/%s", es.Metadata.Namespace, es.Metadata.Name)
	}
	if es.Spec.RefreshInterval != "5m" {
		t.Errorf("refreshInterval = %q, want the seed's 5m", es.Spec.RefreshInterval)
	}
	if es.Spec.SecretStoreRef.Name != "vault-backend" || es.Spec.SecretStoreRef.Kind != "SecretStore" {
		t.Errorf("secretStoreRef = %+v", es.Spec.SecretStoreRef)
	}
	if es.Spec.Target.Name != "postgres-credentials" || es.Spec.Target.CreationPolicy != "Owner" {
		t.Errorf("target = %+v, want postgres-credentials, Owner", es.Spec.Target)
	}
	got := map[string]string{}
	for _, d := range es.Spec.Data {
		if d.RemoteRef.Key != "database/postgres" {
			t.Errorf("data %s reads %q, want database/postgres", d.SecretKey, d.RemoteRef.Key)
		}
		got[d.SecretKey] = d.RemoteRef.Property
	}
	if len(got) != 2 || got["POSTGRES_USER"] != "username" || got["POSTGRES_PASSWORD"] != "password" {
		t.Errorf("data maps %v", got)
	}
}

func TestCustomResourcesWaitForBothReleases(t *testing.T) {
	mon, eso := run(t, caPEM(t), nil)
	vault := tests.MustFind(t, mon, releaseType, "vault")
	store := tests.MustFind(t, mon, secretStoreType, "eso-store")
	sa := tests.MustFind(t, mon, serviceAccountType, "eso-vault-auth")
	es := tests.MustFind(t, mon, externalSecretType, "eso-postgres-credentials")

	for _, want := range []string{eso.URN, vault.URN, sa.URN} {
		if !slices.Contains(store.DependsOn, want) {
			t.Errorf("store does not depend on %s; dependsOn %v", want, store.DependsOn)
		}
	}
	for _, want := range []string{eso.URN, vault.URN, store.URN} {
		if !slices.Contains(es.DependsOn, want) {
			t.Errorf("external secret does not depend on %s; dependsOn %v", want, es.DependsOn)
		}
	}
	// The operator itself does not wait for Vault.
	if slices.Contains(eso.DependsOn, vault.URN) {
		t.Error("the ESO release should not wait for the Vault release")
	}
	comp := tests.MustFind(t, mon, externalsecrets.TypeToken, "eso")
	for _, r := range []recorder.Resource{eso, store, sa, es} {
		if r.Parent != comp.URN {
			t.Errorf("%s %s has parent %q, want the component", r.Type, r.Name, r.Parent)
		}
	}
}

func TestReleaseWaitsAndInstallsCRDs(t *testing.T) {
	_, rel := run(t, caPEM(t), nil)
	in := tests.PlainMap(rel.Inputs)
	for key, want := range map[string]any{
		"name": "eso", "namespace": "production", "chart": "external-secrets", "version": "2.9.0",
		"atomic": true, "skipAwait": false, "timeout": float64(externalsecrets.DefaultConfig().TimeoutSeconds),
	} {
		if in[key] != want {
			t.Errorf("release %s = %v, want %v", key, in[key], want)
		}
	}
	if repo := tests.Path(in, "repositoryOpts", "repo"); repo != "https://charts.external-secrets.io" {
		t.Errorf("repo = %v", repo)
	}
	values := tests.HelmValues(t, rel)
	if v := values["installCRDs"]; v != true {
		t.Errorf("installCRDs = %v, want true", v)
	}
	if v := values["fullnameOverride"]; v != "eso" {
		t.Errorf("fullnameOverride = %v, want the release name", v)
	}
}

func TestPodsMeetRestrictedWithResources(t *testing.T) {
	_, rel := run(t, caPEM(t), nil)
	values := tests.HelmValues(t, rel)
	want, err := kube.Resources{
		Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
		Limits:   map[string]string{"cpu": "200m", "memory": "256Mi"},
	}.Requirements()
	if err != nil {
		t.Fatal(err)
	}

	for _, workload := range []struct {
		name string
		path []string
	}{{"controller", nil}, {"webhook", []string{"webhook"}}, {"cert controller", []string{"certController"}}} {
		at := func(key string) any { return tests.Path(values, append(slices.Clone(workload.path), key)...) }

		// The chart renders a context only when its "enabled" is true.
		for _, key := range []string{"podSecurityContext", "securityContext"} {
			if e := tests.Path(at(key), "enabled"); e != true {
				t.Errorf("%s %s.enabled = %v, want true", workload.name, key, e)
			}
		}
		var podSC corev1.PodSecurityContext
		var containerSC corev1.SecurityContext
		tests.Decode(t, at("podSecurityContext"), &podSC)
		tests.Decode(t, at("securityContext"), &containerSC)
		spec := tests.PodFromSecurityContexts(&podSC, &containerSC)
		violations, err := tests.PodSecurityViolations("restricted", "latest", metav1.ObjectMeta{}, spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(violations) > 0 {
			t.Errorf("%s fails restricted:%s", workload.name, tests.JoinViolations(violations))
		}
		if containerSC.ReadOnlyRootFilesystem == nil || !*containerSC.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem must stay true (the chart's default)", workload.name)
		}

		var res corev1.ResourceRequirements
		tests.Decode(t, at("resources"), &res)
		for _, list := range []struct {
			name      string
			got, want corev1.ResourceList
		}{{"requests", res.Requests, want.Requests}, {"limits", res.Limits, want.Limits}} {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				g, w := list.got[r], list.want[r]
				if g.Cmp(w) != 0 || g.Cmp(resource.Quantity{}) == 0 {
					t.Errorf("%s %s %s = %s, want %s", workload.name, list.name, r, g.String(), w.String())
				}
			}
		}
	}

	// The evaluator is not vacuous: a pod with no contexts fails.
	if v, _ := tests.PodSecurityViolations("restricted", "latest", metav1.ObjectMeta{}, tests.PodFromSecurityContexts(nil, nil)); len(v) == 0 {
		t.Fatal("an unhardened pod passed restricted: the check proves nothing")
	}
}

func TestDisruptionBudgetsOnlyWithReplicas(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		want     bool
	}{{1, false}, {2, true}, {3, true}} {
		_, rel := run(t, caPEM(t), func(a *externalsecrets.ExternalSecretsStackArgs) { a.Replicas = tc.replicas })
		values := tests.HelmValues(t, rel)
		for _, prefix := range [][]string{nil, {"webhook"}} {
			at := func(keys ...string) any { return tests.Path(values, append(slices.Clone(prefix), keys...)...) }
			if got := at("replicaCount"); got != float64(tc.replicas) {
				t.Errorf("replicas %d: %v replicaCount = %v", tc.replicas, prefix, got)
			}
			if got := at("podDisruptionBudget", "enabled"); got != tc.want {
				t.Errorf("replicas %d: %v podDisruptionBudget.enabled = %v, want %v", tc.replicas, prefix, got, tc.want)
			}
			if tc.want {
				if got := at("podDisruptionBudget", "minAvailable"); got != float64(1) {
					t.Errorf("replicas %d: %v minAvailable = %v, want 1", tc.replicas, prefix, got)
				}
			}
		}
		if got := values["leaderElect"]; got != tc.want {
			t.Errorf("replicas %d: leaderElect = %v, want %v", tc.replicas, got, tc.want)
		}
	}
}

func TestMonitoringFollowsPrometheusOperator(t *testing.T) {
	labels := map[string]string{"release": "kube-prometheus"}
	for _, on := range []bool{false, true} {
		_, rel := run(t, caPEM(t), func(a *externalsecrets.ExternalSecretsStackArgs) {
			a.PrometheusOperator = on
			a.MonitorLabels = labels
		})
		values := tests.HelmValues(t, rel)
		if got := tests.Path(values, "serviceMonitor", "enabled"); got != on {
			t.Errorf("PrometheusOperator %v: serviceMonitor.enabled = %v", on, got)
		}
		if got := tests.Path(values, "serviceMonitor", "additionalLabels", "release"); got != "kube-prometheus" {
			t.Errorf("PrometheusOperator %v: serviceMonitor.additionalLabels.release = %v, want the monitor labels given", on, got)
		}
		// The chart would write it into the workload namespace, which
		// Grafana's sidecar does not watch.
		if got := tests.Path(values, "grafanaDashboard", "enabled"); got != false {
			t.Errorf("PrometheusOperator %v: grafanaDashboard.enabled = %v, want false", on, got)
		}
	}
}

// TestScopedToItsNamespaceWithKeptCRDs: the values that confine ESO to the
// namespace, turn off the kinds the platform does not use (with their
// CRDs, as the chart asks), and keep the CRDs when the release goes; keys
// and meanings from the chart 2.9.0's values.yaml and templates.
func TestScopedToItsNamespaceWithKeptCRDs(t *testing.T) {
	_, rel := run(t, caPEM(t), nil)
	values := tests.HelmValues(t, rel)
	for path, want := range map[string]any{
		"scopedNamespace":                  "production",
		"scopedRBAC":                       true,
		"processClusterStore":              false,
		"processClusterExternalSecret":     false,
		"processClusterPushSecret":         false,
		"processPushSecret":                false,
		"crds.createSecretStore":           true,
		"crds.createClusterSecretStore":    false,
		"crds.createClusterExternalSecret": false,
		"crds.createClusterPushSecret":     false,
		"crds.createPushSecret":            false,
		"crds.annotations":                 map[string]any{"helm.sh/resource-policy": "keep"},
		"certController.rbac.create":       false,
		"rbac.create":                      true,
		"rbac.serviceAccountTokenCreate":   false,
		"rbac.servicebindings.create":      false,
	} {
		got := tests.Path(values, strings.Split(path, ".")...)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("values %s = %#v, want %#v", path, got, want)
		}
	}
	// The SecretStore reconciler, which the platform's store needs, stays
	// on: the chart's default, left unset.
	if _, ok := values["processSecretStore"]; ok {
		t.Error("processSecretStore is set: the SecretStore reconciler must stay on")
	}
}

// TestRBACNarrowerThanTheChart: the component's RBAC for the cert
// controller, which replaces the chart's, grants no Secret cluster-wide and
// only the webhook's certificate Secret in the namespace; the controller
// requests tokens for the Vault auth account only.
func TestRBACNarrowerThanTheChart(t *testing.T) {
	mon, rel := run(t, caPEM(t), nil)
	var cr rbacv1.ClusterRole
	tests.Decode(t, tests.MustFind(t, mon, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "eso-cert-controller").Inputs, &cr)
	if cr.Name != "eso-cert-controller" || len(cr.Rules) == 0 {
		t.Fatalf("cluster role %q with %d rules", cr.Name, len(cr.Rules))
	}
	for _, r := range cr.Rules {
		for _, res := range r.Resources {
			if res == "secrets" || res == "*" || strings.HasPrefix(res, "serviceaccounts") {
				t.Errorf("the cert controller's ClusterRole grants %v on %s", r.Verbs, res)
			}
		}
	}
	var role rbacv1.Role
	tests.Decode(t, tests.MustFind(t, mon, "kubernetes:rbac.authorization.k8s.io/v1:Role", "eso-cert-controller").Inputs, &role)
	if role.Namespace != "production" {
		t.Errorf("role namespace = %q", role.Namespace)
	}
	secretRules := 0
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "secrets") {
			continue
		}
		secretRules++
		// The chart's Secret for the webhook's certificate: "<fullname>-webhook".
		if !slices.Equal(r.ResourceNames, []string{"eso-webhook"}) || slices.Contains(r.Verbs, "list") || slices.Contains(r.Verbs, "watch") {
			t.Errorf("secrets rule %+v: want get/update/patch on eso-webhook only", r)
		}
	}
	if secretRules != 1 {
		t.Errorf("%d rules on secrets, want 1", secretRules)
	}
	for _, typ := range []string{"ClusterRoleBinding", "RoleBinding"} {
		var b rbacv1.RoleBinding
		tests.Decode(t, tests.MustFind(t, mon, "kubernetes:rbac.authorization.k8s.io/v1:"+typ, "eso-cert-controller").Inputs, &b)
		want := rbacv1.Subject{Kind: "ServiceAccount", Name: "eso-cert-controller", Namespace: "production"}
		if len(b.Subjects) != 1 || b.Subjects[0] != want || b.RoleRef.Name != "eso-cert-controller" {
			t.Errorf("%s binds %+v to %+v, want %+v", typ, b.Subjects, b.RoleRef, want)
		}
	}
	// The controller (the chart's account, named after the release) may
	// request tokens for the Vault auth account and no other.
	var tokenRole rbacv1.Role
	tests.Decode(t, tests.MustFind(t, mon, "kubernetes:rbac.authorization.k8s.io/v1:Role", "eso-token-request").Inputs, &tokenRole)
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{"external-secrets-vault-auth"}, Verbs: []string{"create"}}}
	if tokenRole.Namespace != "production" || fmt.Sprint(tokenRole.Rules) != fmt.Sprint(want) {
		t.Errorf("token request role in %q: %+v, want %+v", tokenRole.Namespace, tokenRole.Rules, want)
	}
	var tokenBinding rbacv1.RoleBinding
	tests.Decode(t, tests.MustFind(t, mon, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "eso-token-request").Inputs, &tokenBinding)
	if s := tokenBinding.Subjects; len(s) != 1 || s[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: "eso", Namespace: "production"}) || tokenBinding.RoleRef.Name != "eso-token-request" {
		t.Errorf("token request binding %+v -> %+v", s, tokenBinding.RoleRef)
	}
	// It is the account the chart runs the cert controller as.
	if got := tests.Path(tests.HelmValues(t, rel), "certController", "serviceAccount", "name"); got != "eso-cert-controller" {
		t.Errorf("certController.serviceAccount.name = %v", got)
	}
}

func TestOutputs(t *testing.T) {
	ca := caPEM(t)
	var mu sync.Mutex
	got := map[string]any{}
	record := func(key string) func(any) any {
		return func(v any) any {
			mu.Lock()
			defer mu.Unlock()
			got[key] = v
			return v
		}
	}
	tests.RunComponent(t, func(ctx *pulumi.Context) error {
		args := productionArgs(ca)
		args.Secrets = append(args.Secrets, externalsecrets.SecretConfig{
			Name: "api-keys", VaultKey: "app/api", Data: []externalsecrets.DataConfig{{SecretKey: "KEY", Property: "key"}},
		})
		c, err := externalsecrets.NewExternalSecretsStack(ctx, "eso", args)
		if err != nil {
			return err
		}
		c.StoreName.ApplyT(record("store"))
		c.ServiceAccountName.ApplyT(record("sa"))
		c.ExternalSecretNames.ApplyT(record("externalSecrets"))
		c.TargetSecretNames.ApplyT(record("targets"))
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if got["store"] != "vault-backend" || got["sa"] != "external-secrets-vault-auth" {
		t.Errorf("store, service account = %v, %v", got["store"], got["sa"])
	}
	if es, _ := got["externalSecrets"].([]string); !slices.Equal(es, []string{"postgres-credentials", "api-keys"}) {
		t.Errorf("ExternalSecretNames = %v", got["externalSecrets"])
	}
	// An empty Target defaults to the ExternalSecret's name.
	if ts, _ := got["targets"].([]string); !slices.Equal(ts, []string{"postgres-credentials", "api-keys"}) {
		t.Errorf("TargetSecretNames = %v", got["targets"])
	}
}

func TestTwoInstancesDoNotShareNames(t *testing.T) {
	ca := caPEM(t)
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		for _, n := range []string{"eso-a", "eso-b"} {
			args := productionArgs(ca)
			args.Namespace = pulumi.String(n + "-ns")
			if _, err := externalsecrets.NewExternalSecretsStack(ctx, n, args); err != nil {
				return err
			}
		}
		return nil
	})
	owner := map[string]string{}
	for _, rel := range mon.ByType(releaseType) {
		values := tests.HelmValues(t, rel)
		release, _ := tests.PlainMap(rel.Inputs)["name"].(string)
		if values["fullnameOverride"] != release {
			t.Errorf("release %s: fullnameOverride %v differs from the release name %q", rel.Name, values["fullnameOverride"], release)
		}
		for _, name := range []any{
			release,
			tests.Path(values, "webhook", "serviceAccount", "name"),
			tests.Path(values, "certController", "serviceAccount", "name"),
		} {
			s, _ := name.(string)
			if prev, taken := owner[s]; s == "" || taken {
				t.Errorf("release %s: name %q is empty or also used by %s", rel.Name, s, prev)
			}
			owner[s] = rel.Name
		}
	}
	if len(owner) != 6 {
		t.Errorf("want 6 distinct names over two releases, got %v", owner)
	}
}

func TestMissingOrUnsafeInputsFail(t *testing.T) {
	ca := caPEM(t)
	for _, tc := range []struct {
		name string
		edit func(**externalsecrets.ExternalSecretsStackArgs)
		want string
	}{
		{"nil args", func(a **externalsecrets.ExternalSecretsStackArgs) { *a = nil }, "args are required"},
		{"no namespace", func(a **externalsecrets.ExternalSecretsStackArgs) { (*a).Namespace = nil }, "Namespace: is required"},
		{"empty vault path", func(a **externalsecrets.ExternalSecretsStackArgs) { (*a).Store.Path = "" }, "eso.store.path: must not be empty"},
		{"no role", func(a **externalsecrets.ExternalSecretsStackArgs) { (*a).Store.Role = "" }, "eso.store.role: must not be empty"},
		{"no data", func(a **externalsecrets.ExternalSecretsStackArgs) { (*a).Secrets[0].Data = nil }, "eso.secrets[0].data: required: map at least one Vault property"},
		{"duplicate", func(a **externalsecrets.ExternalSecretsStackArgs) {
			(*a).Secrets = append((*a).Secrets, (*a).Secrets[0])
		}, `eso.secrets[1].name: "postgres-credentials" is used twice`},
		{"plain http vault", func(a **externalsecrets.ExternalSecretsStackArgs) {
			(*a).VaultAddress = pulumi.String("http://vault.production.svc:8200")
		}, "must be an https:// URL"},
		{"cluster store", func(a **externalsecrets.ExternalSecretsStackArgs) { (*a).Store.Cluster = true }, "eso.store.cluster: true asks for a ClusterSecretStore"},
		{"CA not PEM", func(a **externalsecrets.ExternalSecretsStackArgs) { (*a).VaultCACertPEM = pulumi.String("") }, "not a PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				args := productionArgs(ca)
				tc.edit(&args)
				_, err := externalsecrets.NewExternalSecretsStack(ctx, "eso", args)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			// Input errors are found before anything is registered.
			if !strings.Contains(tc.want, "https") && !strings.Contains(tc.want, "PEM") && len(mon.Resources()) != 0 {
				t.Errorf("registered %d resources before failing:\n%s", len(mon.Resources()), mon.Tree())
			}
		})
	}

	t.Run("bad component name", func(t *testing.T) {
		_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
			_, err := externalsecrets.NewExternalSecretsStack(ctx, "Not_A_Label", productionArgs(ca))
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "DNS label") {
			t.Fatalf("err = %v, want a DNS label error", err)
		}
	})
}
