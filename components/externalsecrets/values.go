package externalsecrets

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// Typed values of the external-secrets chart. Keys checked against
// values.yaml, values.schema.json and the templates of the chart 2.9.0
// (deploy/charts/external-secrets of external-secrets/external-secrets at
// helm-chart-2.9.0). The schema does not forbid extra properties, so the
// security contexts may carry fields the chart's defaults do not list.

// esoUID is the user the chart's default securityContext runs as
// (runAsUser: 1000); the group and fsGroup follow it, as in the seed
// (fsGroup: 1000).
const esoUID = 1000

type helmValues struct {
	// fullnameOverride pins every object's name to the release name instead
	// of "<release>-external-secrets".
	FullnameOverride string `json:"fullnameOverride"`
	// installCRDs renders the CRDs from templates/crds; crds.* selects them.
	InstallCRDs bool      `json:"installCRDs"`
	CRDs        crdValues `json:"crds"`

	// scopedNamespace and scopedRBAC confine the controller to the
	// platform's namespace: it watches only there (--namespace), its
	// ClusterRole and binding become a Role and RoleBinding there, and the
	// cluster-scoped reconcilers are off.
	ScopedNamespace string     `json:"scopedNamespace"`
	ScopedRBAC      bool       `json:"scopedRBAC"`
	RBAC            rbacValues `json:"rbac"`
	// The kinds the platform does not use are not processed: no RBAC for
	// them, no reconciler (scopedRBAC already turns the cluster ones off).
	ProcessClusterStore          bool `json:"processClusterStore"`
	ProcessClusterExternalSecret bool `json:"processClusterExternalSecret"`
	ProcessClusterPushSecret     bool `json:"processClusterPushSecret"`
	ProcessPushSecret            bool `json:"processPushSecret"`

	ReplicaCount int `json:"replicaCount"`
	// leaderElect keeps a single active controller when replicas > 1.
	LeaderElect         bool                        `json:"leaderElect"`
	PodDisruptionBudget podDisruptionBudget         `json:"podDisruptionBudget"`
	PodSecurityContext  podSecurityContext          `json:"podSecurityContext"`
	SecurityContext     containerSecurityContext    `json:"securityContext"`
	Resources           corev1.ResourceRequirements `json:"resources"`

	// serviceMonitor.enabled renders the ServiceMonitors of the controller,
	// the webhook and the cert controller, and the metrics Service.
	ServiceMonitor   serviceMonitorValues `json:"serviceMonitor"`
	GrafanaDashboard enabled              `json:"grafanaDashboard"`

	Webhook        webhookValues        `json:"webhook"`
	CertController certControllerValues `json:"certController"`
}

// crdValues select the CRDs the chart renders. Each create* of a kind the
// controller does not process is off, as the chart asks. Annotations go on
// every CRD it renders.
type crdValues struct {
	CreateSecretStore           bool              `json:"createSecretStore"`
	CreateClusterSecretStore    bool              `json:"createClusterSecretStore"`
	CreateClusterExternalSecret bool              `json:"createClusterExternalSecret"`
	CreateClusterPushSecret     bool              `json:"createClusterPushSecret"`
	CreatePushSecret            bool              `json:"createPushSecret"`
	Annotations                 map[string]string `json:"annotations"`
}

// keepCRDs tells Helm to leave the CRDs in place when the release is
// uninstalled, replaced, or no longer renders them: deleting a CRD deletes
// every ExternalSecret, and with them the Secrets they own.
var keepCRDs = map[string]string{"helm.sh/resource-policy": "keep"}

type webhookValues struct {
	ReplicaCount        int                         `json:"replicaCount"`
	PodDisruptionBudget podDisruptionBudget         `json:"podDisruptionBudget"`
	PodSecurityContext  podSecurityContext          `json:"podSecurityContext"`
	SecurityContext     containerSecurityContext    `json:"securityContext"`
	Resources           corev1.ResourceRequirements `json:"resources"`
	// The chart names this account "external-secrets-webhook" unless told,
	// whatever the release is called.
	ServiceAccount serviceAccountValues `json:"serviceAccount"`
}

type certControllerValues struct {
	// rbac.create off: the chart's ClusterRole lets the cert controller
	// read every Secret of the cluster; the component grants it its one
	// Secret instead (certControllerRBAC).
	RBAC               create                      `json:"rbac"`
	PodSecurityContext podSecurityContext          `json:"podSecurityContext"`
	SecurityContext    containerSecurityContext    `json:"securityContext"`
	Resources          corev1.ResourceRequirements `json:"resources"`
	// Default "external-secrets-cert-controller", as for the webhook.
	ServiceAccount serviceAccountValues `json:"serviceAccount"`
}

type serviceAccountValues struct {
	Name string `json:"name"`
}

type serviceMonitorValues struct {
	Enabled bool `json:"enabled"`
	// Without them, a Prometheus that selects monitors by label (as
	// kube-prometheus-stack does, release: <its release>) never scrapes ESO.
	AdditionalLabels map[string]string `json:"additionalLabels,omitempty"`
}

type enabled struct {
	Enabled bool `json:"enabled"`
}

type create struct {
	Create bool `json:"create"`
}

type rbacValues struct {
	// create: the controller's Role and RoleBinding (scopedRBAC).
	Create bool `json:"create"`
	// serviceAccountTokenCreate off: the chart would let the controller
	// mint tokens for every account of the namespace, Vault's and the
	// jobs' IRSA accounts included; the component grants it the Vault auth
	// account only (newControllerTokenRBAC).
	ServiceAccountTokenCreate bool `json:"serviceAccountTokenCreate"`
	// servicebindings.create off: a ClusterRole for Service Binding
	// controllers, which the platform does not run.
	ServiceBindings create `json:"servicebindings"`
}

type podDisruptionBudget struct {
	Enabled      bool `json:"enabled"`
	MinAvailable *int `json:"minAvailable,omitempty"`
}

// The chart's security contexts carry an extra "enabled" key, which its
// templates strip before rendering (renderSecurityContext omits it). The
// Kubernetes fields are inlined next to it.
type podSecurityContext struct {
	Enabled bool `json:"enabled"`
	corev1.PodSecurityContext
}

type containerSecurityContext struct {
	Enabled bool `json:"enabled"`
	corev1.SecurityContext
}

// chartValues returns the release's values for the component name, the
// namespace it is installed in, and its defaulted args.
func chartValues(name, namespace string, a *ExternalSecretsStackArgs) (map[string]any, error) {
	controller, err := a.Resources.Controller.Requirements()
	if err != nil {
		return nil, fmt.Errorf("controller resources: %w", err)
	}
	webhook, err := a.Resources.Webhook.Requirements()
	if err != nil {
		return nil, fmt.Errorf("webhook resources: %w", err)
	}
	certController, err := a.Resources.CertController.Requirements()
	if err != nil {
		return nil, fmt.Errorf("cert controller resources: %w", err)
	}

	// A PDB with minAvailable 1 over a single replica would block every
	// node drain, so it exists only with more than one.
	pdb := podDisruptionBudget{}
	if a.Replicas > 1 {
		pdb = podDisruptionBudget{Enabled: true, MinAvailable: new(1)}
	}

	return kube.ValuesMap(helmValues{
		FullnameOverride:    name,
		InstallCRDs:         true,
		CRDs:                crdValues{CreateSecretStore: true, Annotations: keepCRDs},
		ScopedNamespace:     namespace,
		ScopedRBAC:          true,
		RBAC:                rbacValues{Create: true, ServiceBindings: create{false}},
		ReplicaCount:        a.Replicas,
		LeaderElect:         a.Replicas > 1,
		PodDisruptionBudget: pdb,
		PodSecurityContext:  restrictedPod(),
		SecurityContext:     restrictedContainer(),
		Resources:           controller,
		ServiceMonitor:      serviceMonitorValues{Enabled: a.PrometheusOperator, AdditionalLabels: a.MonitorLabels},
		GrafanaDashboard:    enabled{false},
		Webhook: webhookValues{
			ReplicaCount:        a.Replicas,
			PodDisruptionBudget: pdb,
			PodSecurityContext:  restrictedPod(),
			SecurityContext:     restrictedContainer(),
			Resources:           webhook,
			ServiceAccount:      serviceAccountValues{Name: name + "-webhook"},
		},
		CertController: certControllerValues{
			RBAC:               create{false},
			PodSecurityContext: restrictedPod(),
			SecurityContext:    restrictedContainer(),
			Resources:          certController,
			ServiceAccount:     serviceAccountValues{Name: certControllerAccount(name)},
		},
	})
}

// restrictedPod restates, and completes, the chart's pod defaults (only
// `enabled: true`): non-root with fixed IDs and seccomp RuntimeDefault.
func restrictedPod() podSecurityContext {
	return podSecurityContext{Enabled: true, PodSecurityContext: *kube.RestrictedPodSecurityContext(esoUID, esoUID, esoUID)}
}

// restrictedContainer restates the chart's container defaults
// (allowPrivilegeEscalation false, capabilities drop ALL,
// readOnlyRootFilesystem true, runAsNonRoot true, runAsUser 1000, seccomp
// RuntimeDefault) and adds runAsGroup, so the restricted profile does not
// depend on the chart keeping them.
func restrictedContainer() containerSecurityContext {
	return containerSecurityContext{Enabled: true, SecurityContext: *kube.RestrictedContainerSecurityContext(esoUID, esoUID, true)}
}
