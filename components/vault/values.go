package vault

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// The typed values of the hashicorp/vault chart. JSON names are the chart's
// keys, checked against vault-helm's values.yaml, values.schema.json and
// templates (_helpers.tpl, server-statefulset.yaml,
// prometheus-servicemonitor.yaml). Only what this component sets is here;
// everything else keeps the chart's default.

type chartValues struct {
	// Read by "vault.fullname" in _helpers.tpl (not listed in values.yaml):
	// every object is then named <release>, <release>-internal, ...
	FullnameOverride string                `json:"fullnameOverride"`
	Global           globalValues          `json:"global"`
	Injector         enabledValues         `json:"injector"`
	Server           serverValues          `json:"server"`
	ServerTelemetry  serverTelemetryValues `json:"serverTelemetry"`
}

type globalValues struct {
	Enabled bool `json:"enabled"`
	// false: https everywhere, including the VAULT_ADDR the chart sets on
	// the pods ("vault.scheme" -> https://127.0.0.1:8200), the probes'
	// scheme and the ServiceMonitor's.
	TLSDisable bool `json:"tlsDisable"`
}

type enabledValues struct {
	Enabled bool `json:"enabled"`
}

type serverValues struct {
	Image          imageValues                  `json:"image"`
	Resources      *corev1.ResourceRequirements `json:"resources,omitempty"`
	ReadinessProbe probeValues                  `json:"readinessProbe"`
	LivenessProbe  probeValues                  `json:"livenessProbe"`
	// Rendered as env entries of the vault container.
	ExtraEnvironmentVars map[string]string `json:"extraEnvironmentVars,omitempty"`
	// Rendered with toYaml into the pod (volumes) and the vault container
	// (volumeMounts); extraVolumes is deprecated.
	Volumes      []corev1.Volume      `json:"volumes"`
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
	// Rendered with toYaml after the vault container.
	ExtraContainers []corev1.Container `json:"extraContainers"`
	// Lets a sidecar see, and signal, the Vault server process.
	ShareProcessNamespace bool `json:"shareProcessNamespace"`
	// The vault container's preStop exec command; empty keeps the chart's
	// (sleep preStopSleepSeconds, then SIGTERM to Vault without waiting).
	PreStop []string `json:"preStop,omitempty"`
	// The pod's terminationGracePeriodSeconds (chart default 10).
	TerminationGracePeriodSeconds int `json:"terminationGracePeriodSeconds"`
	// A string or an object in the chart; an object replaces its default.
	Affinity                  *corev1.Affinity                  `json:"affinity"`
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints"`
	// Adds a config checksum annotation to the pods: with the chart's
	// OnDelete update strategy it shows which pods run an old config.
	IncludeConfigAnnotation bool          `json:"includeConfigAnnotation"`
	DataStorage             storageValues `json:"dataStorage"`
	AuditStorage            storageValues `json:"auditStorage"`
	// Rendered into the StatefulSet on Kubernetes >= 1.23.
	PersistentVolumeClaimRetentionPolicy *appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy `json:"persistentVolumeClaimRetentionPolicy"`
	HA                                   haValues                                                `json:"ha"`
	ServiceAccount                       serviceAccountValues                                    `json:"serviceAccount"`
	StatefulSet                          statefulSetValues                                       `json:"statefulSet"`
}

// imageValues: the chart writes <repository>:<tag> into the StatefulSet.
type imageValues struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
}

// probeValues: the chart renders an httpGet probe on port 8200 with the
// scheme of global.tlsDisable when path is set; zero numbers keep the
// chart's defaults.
type probeValues struct {
	Enabled             bool   `json:"enabled"`
	Path                string `json:"path,omitempty"`
	InitialDelaySeconds int    `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int    `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int    `json:"timeoutSeconds,omitempty"`
	FailureThreshold    int    `json:"failureThreshold,omitempty"`
}

type storageValues struct {
	Enabled   bool   `json:"enabled"`
	Size      string `json:"size"`
	MountPath string `json:"mountPath"`
	// null: the cluster's default StorageClass.
	StorageClass *string `json:"storageClass,omitempty"`
}

type haValues struct {
	Enabled  bool `json:"enabled"`
	Replicas int  `json:"replicas"`
	// Becomes VAULT_API_ADDR, which Vault prefers over api_addr in the HCL:
	// the address a standby redirects clients to.
	APIAddr          string                 `json:"apiAddr"`
	Raft             raftValues             `json:"raft"`
	DisruptionBudget disruptionBudgetValues `json:"disruptionBudget"`
}

type raftValues struct {
	Enabled bool `json:"enabled"`
	// VAULT_RAFT_NODE_ID = the pod name.
	SetNodeID bool `json:"setNodeId"`
	// The server configuration, HCL.
	Config string `json:"config"`
}

type disruptionBudgetValues struct {
	Enabled        bool `json:"enabled"`
	MaxUnavailable int  `json:"maxUnavailable"`
}

type serviceAccountValues struct {
	Create      bool              `json:"create"`
	Name        string            `json:"name"`
	Annotations map[string]string `json:"annotations"`
	// The Role that lets Vault label its pods (service_registration).
	ServiceDiscovery enabledValues `json:"serviceDiscovery"`
}

type statefulSetValues struct {
	SecurityContext securityContextValues `json:"securityContext"`
}

// securityContextValues replace the chart's defaults in full when set.
type securityContextValues struct {
	Pod       *corev1.PodSecurityContext `json:"pod"`
	Container *corev1.SecurityContext    `json:"container"`
}

type serverTelemetryValues struct {
	ServiceMonitor serviceMonitorValues `json:"serviceMonitor"`
}

type serviceMonitorValues struct {
	Enabled bool `json:"enabled"`
	// Prometheus Operator's SafeTLSConfig; without it the chart's
	// ServiceMonitor skips verification (insecureSkipVerify).
	TLSConfig *scrapeTLSConfig `json:"tlsConfig,omitempty"`
}

type scrapeTLSConfig struct {
	CA         secretOrConfigMap `json:"ca"`
	ServerName string            `json:"serverName"`
}

type secretOrConfigMap struct {
	Secret secretKeySelector `json:"secret"`
}

type secretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// Health endpoint queries (DESIGN decision 3). Ready only when initialised
// and unsealed, active or standby: the Services then route only to voters
// that can answer, and the disruption budget counts only those, so a drain
// cannot take quorum. Sealed and uninitialised pods stay not ready; Helm's
// wait does not hold the release for them (it skips OnDelete StatefulSets),
// and the headless <name>-internal Service publishes them for Raft joins.
// Alive whenever Vault answers at all: restarting a sealed or standby pod
// would not help it.
const (
	readinessPath = "/v1/sys/health?standbyok=true&perfstandbyok=true"
	livenessPath  = "/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=204&uninitcode=204"
)

// Vault's user and group in the hashicorp/vault image (also the chart's
// defaults for server.uid and server.gid).
const (
	vaultUID = 100
	vaultGID = 1000
)

// IRSA: the EKS pod identity webhook reads this service account annotation.
const irsaRoleAnnotation = "eks.amazonaws.com/role-arn"

// Volume names in the pod; the chart itself uses config, home, data, audit.
const (
	tlsVolume = "tls"
	tmpVolume = "tmp"
)

// valuesParams are the resolved inputs of the chart values.
type valuesParams struct {
	Name               string
	Namespace          string
	Replicas           int
	Image              string
	Config             string
	TLSSecretName      string
	CASecretName       string
	ServiceAccountName string
	RoleARN            string
	Resources          kube.Resources
	DataStorageSize    string
	AuditStorageSize   string
	StorageClass       string
	Mlock              bool
	PrometheusOperator bool
	Reloader           ReloaderConfig
	// ReloaderConfigMap holds the reloader's script.
	ReloaderConfigMap string
}

// tlsDir is where the TLS secret is mounted in the Vault container.
func tlsDir(tlsSecretName string) string {
	return userConfigDir + "/" + tlsSecretName
}

// chartValuesFor builds the typed values of the vault chart.
func chartValuesFor(p valuesParams) (*chartValues, error) {
	resources, err := p.Resources.Requirements()
	if err != nil {
		return nil, fmt.Errorf("vault resources: %w", err)
	}
	var storageClass *string
	if p.StorageClass != "" {
		storageClass = ptr.To(p.StorageClass)
	}

	pod := kube.RestrictedPodSecurityContext(vaultUID, vaultGID, vaultGID)
	// Raft data can grow large: chown it only when the volume's root does
	// not match already.
	pod.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
	// Vault writes only to its volumes: data, audit, /home/vault (an
	// emptyDir of the chart) and /tmp, where the chart's start-up script
	// copies the config before substituting placeholders.
	container := kube.RestrictedContainerSecurityContext(vaultUID, vaultGID, true)
	if p.Mlock {
		// Forbidden by both restricted and baseline; stacks only allows it
		// where the namespace admits it.
		container.Capabilities.Add = []corev1.Capability{"IPC_LOCK"}
	}

	repository, tag, err := kube.SplitImage(p.Image)
	if err != nil {
		return nil, fmt.Errorf("vault image: %w", err)
	}

	reloader, reloaderVolume, err := reloaderSidecar(reloaderParams{
		Image:           p.Image,
		TLSSecretName:   p.TLSSecretName,
		IntervalSeconds: p.Reloader.IntervalSeconds,
		Resources:       p.Reloader.Resources,
	}, p.ReloaderConfigMap)
	if err != nil {
		return nil, err
	}

	selector := &metav1.LabelSelector{MatchLabels: ServerPodLabels(p.Name)}
	v := &chartValues{
		FullnameOverride: p.Name,
		Global:           globalValues{Enabled: true, TLSDisable: false},
		// ExternalSecrets delivers secrets; no agent sidecars.
		Injector: enabledValues{Enabled: false},
		Server: serverValues{
			Image:          imageValues{Repository: repository, Tag: tag},
			Resources:      &resources,
			ReadinessProbe: probeValues{Enabled: true, Path: readinessPath},
			LivenessProbe: probeValues{
				Enabled:             true,
				Path:                livenessPath,
				InitialDelaySeconds: 60,
				PeriodSeconds:       10,
				TimeoutSeconds:      5,
				FailureThreshold:    6,
			},
			// For the vault CLI in the pod; VAULT_ADDR is the chart's.
			ExtraEnvironmentVars: map[string]string{"VAULT_CACERT": tlsDir(p.TLSSecretName) + "/ca.crt"},
			Volumes: []corev1.Volume{
				{Name: tlsVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: p.TLSSecretName,
					// Group-readable: Vault's group is the pod's fsGroup.
					DefaultMode: ptr.To[int32](0o440),
				}}},
				{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				reloaderVolume,
			},
			VolumeMounts: []corev1.VolumeMount{
				{Name: tlsVolume, MountPath: tlsDir(p.TLSSecretName), ReadOnly: true},
				{Name: tmpVolume, MountPath: "/tmp"},
			},
			// Vault loads a re-issued certificate only on SIGHUP, and the
			// chart's OnDelete StatefulSet never restarts it by itself.
			ExtraContainers:       []corev1.Container{reloader},
			ShareProcessNamespace: true,
			// Which makes the chart's shell not PID 1: Vault must have
			// shut down before the kubelet's SIGTERM kills that shell.
			PreStop:                       preStopCommand(),
			TerminationGracePeriodSeconds: terminationGracePeriodSeconds,
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				// One voter per node: losing a node costs one vote.
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: selector,
					TopologyKey:   corev1.LabelHostname,
				}},
			}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew:           1,
				TopologyKey:       corev1.LabelTopologyZone,
				WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector:     selector,
			}},
			IncludeConfigAnnotation: true,
			DataStorage:             storageValues{Enabled: true, Size: p.DataStorageSize, MountPath: dataPath, StorageClass: storageClass},
			AuditStorage:            storageValues{Enabled: true, Size: p.AuditStorageSize, MountPath: auditPath, StorageClass: storageClass},
			// The Raft data outlives scale-down and uninstall.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			HA: haValues{
				Enabled:  true,
				Replicas: p.Replicas,
				APIAddr:  podAPIAddr(p.Name),
				Raft:     raftValues{Enabled: true, SetNodeID: true, Config: p.Config},
				// The only PDB (DESIGN decision 2).
				DisruptionBudget: disruptionBudgetValues{Enabled: true, MaxUnavailable: 1},
			},
			ServiceAccount: serviceAccountValues{
				Create:           true,
				Name:             p.ServiceAccountName,
				Annotations:      map[string]string{irsaRoleAnnotation: p.RoleARN},
				ServiceDiscovery: enabledValues{Enabled: true},
			},
			StatefulSet: statefulSetValues{SecurityContext: securityContextValues{Pod: pod, Container: container}},
		},
		ServerTelemetry: serverTelemetryValues{ServiceMonitor: serviceMonitorValues{Enabled: p.PrometheusOperator}},
	}
	if p.PrometheusOperator {
		// Verify Vault's certificate against the public CA secret.
		v.ServerTelemetry.ServiceMonitor.TLSConfig = &scrapeTLSConfig{
			CA:         secretOrConfigMap{Secret: secretKeySelector{Name: p.CASecretName, Key: "ca.crt"}},
			ServerName: fmt.Sprintf("%s.%s.svc", p.Name, p.Namespace),
		}
	}
	return v, nil
}

// podAPIAddr is each pod's own address under the headless service, a name
// the certificate covers, so a standby's redirect to the active node stays
// inside TLS. The chart's default, https://$(POD_IP):8200, is an address no
// certificate of ours names. Kubernetes expands $(VAR) only for variables
// defined earlier in the container's env: in chart 0.34.1's StatefulSet
// VAULT_K8S_POD_NAME comes before VAULT_API_ADDR, HOSTNAME after it.
func podAPIAddr(name string) string {
	return fmt.Sprintf("https://$(VAULT_K8S_POD_NAME).%s-internal:%d", name, apiPort)
}
