package vault

import (
	"encoding/json"
	"fmt"
)

// serverPodTemplate is what, of the chart's version and our values, shapes
// the server pods' template (the StatefulSet's spec.template), as one JSON
// document: the chart version (the pods carry it as the helm.sh/chart
// label, and a new chart may render them otherwise), the image, the HCL
// (the config checksum annotation) and every value the chart renders into
// the pod. The values that reach other objects only are left out: the
// replica count (spec.replicas), the disruption budget, the service
// account's annotations and the roles it gets, the volume claims' size and
// class (volumeClaimTemplates, which a StatefulSet cannot change anyway)
// and the claims' retention, the ServiceMonitor and the injector. A change
// of it, and only of it, leaves pods on an old revision under the chart's
// OnDelete update strategy: VaultRollout names its Job after its hash.
func serverPodTemplate(chartVersion string, v chartValues) (string, error) {
	s := v.Server
	s.HA.Replicas = 0
	s.HA.DisruptionBudget = disruptionBudgetValues{}
	s.ServiceAccount = serviceAccountValues{Name: s.ServiceAccount.Name}
	s.DataStorage.Size, s.DataStorage.StorageClass = "", nil
	s.AuditStorage.Size, s.AuditStorage.StorageClass = "", nil
	s.PersistentVolumeClaimRetentionPolicy = nil
	v.Server = s
	v.ServerTelemetry = serverTelemetryValues{}
	v.Injector = enabledValues{}
	raw, err := json.Marshal(struct {
		ChartVersion string      `json:"chartVersion"`
		Values       chartValues `json:"values"`
	}{chartVersion, v})
	if err != nil {
		return "", fmt.Errorf("encoding the server pod template: %w", err)
	}
	return string(raw), nil
}
