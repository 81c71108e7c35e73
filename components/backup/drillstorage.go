package backup

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// ephemeralStorage is the resource name of a container's node disk.
const ephemeralStorage = "ephemeral-storage"

// minSnapshotSize is the smallest DrillConfig.SnapshotSize: below it the
// throwaway Vault's own files (its Raft log, its first database) would
// take a noticeable part of the data volume.
var minSnapshotSize = resource.MustParse("64Mi")

// restoredCopies is how many times the snapshot the data volume holds at
// the restore's peak: Vault writes the snapshot's state to a temporary
// file (DrillTempDir), installs it as a database in Raft's snapshot store,
// and only then moves it over its own, plus the Raft log. Measured with
// Vault 1.21.0 restoring a 12.1MiB snapshot (1500 KV secrets of 8KiB):
// the volume peaked at 29.2MiB (2.4 times; sampled every 100ms), the
// database left behind is 16.7MiB (1.35 times). Three leaves room above
// that peak.
const restoredCopies = 3

// Fixed sizes of the drill pod's small volumes and of its log.
var (
	// drillTmpSize holds HOME and the throwaway Vault's log: its
	// stdout audit device too, which records the drill's few requests.
	drillTmpSize = resource.MustParse("64Mi")
	// drillAuditSize holds the restored file audit devices' logs, which
	// record only the drill's few requests.
	drillAuditSize = resource.MustParse("64Mi")
	// drillLogsSize is the containers' own output the kubelet keeps,
	// counted in the pod's ephemeral storage (its root filesystem is
	// read-only, so that is all they write outside the volumes).
	drillLogsSize = resource.MustParse("16Mi")
)

// DrillStorage is the drill pod's node disk: the sizeLimit of each of its
// emptyDirs, which the kubelet enforces by evicting the pod, and their sum
// with the containers' logs, which each container requests and is limited
// to as ephemeral-storage (a pod's usage counts its emptyDirs, and a
// LimitRange default below it would evict the pod).
type DrillStorage struct {
	// Restore holds the downloaded snapshot: SnapshotSize, since the
	// download refuses a larger snapshot.
	Restore resource.Quantity
	// Data is the throwaway's Raft directory and its TMPDIR:
	// restoredCopies times SnapshotSize.
	Data resource.Quantity
	// Audit is where the restored file audit devices write.
	Audit resource.Quantity
	// Tmp holds HOME and the throwaway's log.
	Tmp resource.Quantity
	// Ephemeral is each container's ephemeral-storage request and limit:
	// the volumes and the logs.
	Ephemeral resource.Quantity
}

// Storage sizes the drill's volumes from SnapshotSize, which must be a
// valid quantity (Validate).
func (d DrillConfig) Storage() (DrillStorage, error) {
	snapshot, err := resource.ParseQuantity(d.SnapshotSize)
	if err != nil {
		return DrillStorage{}, fmt.Errorf("restore drill snapshot size %q: %w", d.SnapshotSize, err)
	}
	s := DrillStorage{Restore: snapshot, Audit: drillAuditSize, Tmp: drillTmpSize}
	s.Data = *resource.NewQuantity(restoredCopies*snapshot.Value(), resource.BinarySI)
	for _, q := range []resource.Quantity{s.Restore, s.Data, s.Audit, s.Tmp, drillLogsSize} {
		s.Ephemeral.Add(q)
	}
	s.Ephemeral = *resource.NewQuantity(s.Ephemeral.Value(), resource.BinarySI)
	return s, nil
}

// ContainerResources are each drill container's requests and limits: the
// configured cpu and memory, and Storage's ephemeral storage, requested so
// that the scheduler places the pod on a node with that much disk free.
func (d DrillConfig) ContainerResources() (kube.Resources, error) {
	s, err := d.Storage()
	if err != nil {
		return kube.Resources{}, err
	}
	r := kube.Resources{Requests: map[string]string{}, Limits: map[string]string{}}
	for k, v := range d.Resources.Requests {
		r.Requests[k] = v
	}
	for k, v := range d.Resources.Limits {
		r.Limits[k] = v
	}
	r.Requests[ephemeralStorage] = s.Ephemeral.String()
	r.Limits[ephemeralStorage] = s.Ephemeral.String()
	return r, nil
}
