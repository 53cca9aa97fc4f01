package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/virtplane/virtplane/vmm"
)

// Inventory is what a UsageSource reports at one scrape: every cluster with
// its nodes and their VMs, with what the hypervisors say the VMs use.
type Inventory struct {
	Clusters []ClusterUsage
}

// ClusterUsage is one cluster, its overcommit limits and nodes.
type ClusterUsage struct {
	ID, Name                                     string
	CPUOvercommit, RAMOvercommit, DiskOvercommit float64
	Nodes                                        []NodeUsage
	// VMsByState counts the cluster's VMs by state, placed or not.
	VMsByState map[string]int
	// Storages is the space of the cluster's storages (a local one per
	// node, a shared one once).
	Storages []StorageUsage
}

// StorageUsage is one storage's space on one node (Node empty: a shared
// storage); Err says why it could not be read.
type StorageUsage struct {
	Storage, Driver, Node     string
	Capacity, Used, Allocated int64
	VMs                       int
	Err                       string
}

// NodeUsage is one node: its capacity, what its VMs were given, and the
// usage of the VMs it runs.
type NodeUsage struct {
	ID, Name, State string
	Cores           int
	MemoryMiB       int64
	DiskGiB         int64
	// UsageErr is why the node's hypervisor could not be asked (nil: VMs
	// holds what it answered).
	UsageErr error
	VMs      []VMUsage
}

// VMUsage is one VM placed on a node: its size, and the hypervisor's
// counters (Reported false: the hypervisor had none, e.g. a stopped VM).
type VMUsage struct {
	ID, Name, State string
	CPUs            int
	MemoryMiB       int64
	DiskGiB         int64
	Reported        bool
	Usage           vmm.Usage
}

// UsageSource reads the inventory at scrape time; the daemon implements
// it over its store and the nodes' drivers (vmm.UsageReporter).
type UsageSource interface {
	Inventory(ctx context.Context) (Inventory, error)
}

// AddUsage exports, from src at every scrape, per-node and per-VM usage
// (CPU seconds, memory in use, disk and network bytes: the drivers'
// vmm.UsageReporter counters), node capacity and allocation, the clusters'
// overcommit limits, and nodes and VMs by state.
func (m *Metrics) AddUsage(src UsageSource) {
	m.reg.MustRegister(&usageCollector{src: src})
}

var (
	vmLabels   = []string{"cluster", "node", "vm", "vm_name"}
	nodeLabels = []string{"cluster", "node", "node_id"}

	descVMCPU     = prometheus.NewDesc("virtplane_vm_cpu_seconds_total", "CPU time a VM used since it started, from its hypervisor.", vmLabels, nil)
	descVMMem     = prometheus.NewDesc("virtplane_vm_memory_used_bytes", "Memory a running VM uses, from its hypervisor.", vmLabels, nil)
	descVMDiskR   = prometheus.NewDesc("virtplane_vm_disk_read_bytes_total", "Bytes a VM read from a disk.", append(vmLabels, "disk"), nil)
	descVMDiskW   = prometheus.NewDesc("virtplane_vm_disk_written_bytes_total", "Bytes a VM wrote to a disk.", append(vmLabels, "disk"), nil)
	descVMNetRx   = prometheus.NewDesc("virtplane_vm_network_receive_bytes_total", "Bytes a VM's NIC received.", append(vmLabels, "mac"), nil)
	descVMNetTx   = prometheus.NewDesc("virtplane_vm_network_transmit_bytes_total", "Bytes a VM's NIC sent.", append(vmLabels, "mac"), nil)
	descVMVCPUs   = prometheus.NewDesc("virtplane_vm_vcpus", "Virtual CPUs a VM was given.", vmLabels, nil)
	descVMMemSize = prometheus.NewDesc("virtplane_vm_memory_bytes", "Memory a VM was given.", vmLabels, nil)

	descNodeCPU      = prometheus.NewDesc("virtplane_node_cpu_seconds_total", "CPU time the VMs on a node used (sum of virtplane_vm_cpu_seconds_total).", nodeLabels, nil)
	descNodeMem      = prometheus.NewDesc("virtplane_node_memory_used_bytes", "Memory the running VMs on a node use.", nodeLabels, nil)
	descNodeDiskR    = prometheus.NewDesc("virtplane_node_disk_read_bytes_total", "Bytes the VMs on a node read from their disks.", nodeLabels, nil)
	descNodeDiskW    = prometheus.NewDesc("virtplane_node_disk_written_bytes_total", "Bytes the VMs on a node wrote to their disks.", nodeLabels, nil)
	descNodeNetRx    = prometheus.NewDesc("virtplane_node_network_receive_bytes_total", "Bytes the VMs on a node received.", nodeLabels, nil)
	descNodeNetTx    = prometheus.NewDesc("virtplane_node_network_transmit_bytes_total", "Bytes the VMs on a node sent.", nodeLabels, nil)
	descNodeCores    = prometheus.NewDesc("virtplane_node_cores", "CPU cores of a node.", nodeLabels, nil)
	descNodeMemCap   = prometheus.NewDesc("virtplane_node_memory_bytes", "Memory of a node.", nodeLabels, nil)
	descNodeDiskCap  = prometheus.NewDesc("virtplane_node_disk_bytes", "Disk space of a node.", nodeLabels, nil)
	descNodeVCPUs    = prometheus.NewDesc("virtplane_node_vcpus_allocated", "Virtual CPUs of the VMs placed on a node.", nodeLabels, nil)
	descNodeMemAlloc = prometheus.NewDesc("virtplane_node_memory_allocated_bytes", "Memory of the VMs placed on a node.", nodeLabels, nil)
	descNodeDiskAll  = prometheus.NewDesc("virtplane_node_disk_allocated_bytes", "Disk size of the VMs placed on a node.", nodeLabels, nil)
	descNodeVMs      = prometheus.NewDesc("virtplane_node_vms", "VMs placed on a node.", nodeLabels, nil)
	descNodeUsageUp  = prometheus.NewDesc("virtplane_node_usage_up", "1 when the node's hypervisor answered the usage scrape, 0 when not.", nodeLabels, nil)
	descNodeState    = prometheus.NewDesc("virtplane_node_state", "1 for the state a node is in (active, maintenance, unreachable).", append(nodeLabels, "state"), nil)

	descClusterOvercommit = prometheus.NewDesc("virtplane_cluster_overcommit_limit", "A cluster's overcommit limit by resource (cpu, ram, disk).", []string{"cluster", "resource"}, nil)
	descClusterVMs        = prometheus.NewDesc("virtplane_vms", "VMs by cluster and state.", []string{"cluster", "state"}, nil)
	descClusterNodes      = prometheus.NewDesc("virtplane_cluster_nodes", "Nodes of a cluster.", []string{"cluster"}, nil)
	descUsageErr          = prometheus.NewDesc("virtplane_usage_scrape_error", "1 when the inventory could not be read at this scrape.", nil, nil)

	storageLabels    = []string{"cluster", "storage", "driver", "node"}
	descStorageCap   = prometheus.NewDesc("virtplane_storage_capacity_bytes", "What a cluster storage can hold (node: the node of a local storage, empty for a shared one; 0: the backend does not say).", storageLabels, nil)
	descStorageUsed  = prometheus.NewDesc("virtplane_storage_used_bytes", "What a cluster storage's backend has allocated.", storageLabels, nil)
	descStorageAlloc = prometheus.NewDesc("virtplane_storage_allocated_bytes", "The virtual sizes of a cluster storage's volumes (placement counts them against capacity times overcommit).", storageLabels, nil)
	descStorageVMs   = prometheus.NewDesc("virtplane_storage_vms", "VMs with their disk on a cluster storage.", storageLabels, nil)
	descStorageUp    = prometheus.NewDesc("virtplane_storage_up", "1 when a cluster storage's backend could be read at this scrape.", storageLabels, nil)
)

type usageCollector struct{ src UsageSource }

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVMCPU, descVMMem, descVMDiskR, descVMDiskW, descVMNetRx, descVMNetTx, descVMVCPUs, descVMMemSize,
		descNodeCPU, descNodeMem, descNodeDiskR, descNodeDiskW, descNodeNetRx, descNodeNetTx, descNodeCores, descNodeMemCap, descNodeDiskCap,
		descNodeVCPUs, descNodeMemAlloc, descNodeDiskAll, descNodeVMs, descNodeUsageUp, descNodeState,
		descClusterOvercommit, descClusterVMs, descClusterNodes, descUsageErr,
		descStorageCap, descStorageUsed, descStorageAlloc, descStorageVMs, descStorageUp} {
		ch <- d
	}
}

const mib, gib = 1 << 20, 1 << 30

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inv, err := c.src.Inventory(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descUsageErr, prometheus.GaugeValue, failed)
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	for _, cl := range inv.Clusters {
		gauge(descClusterOvercommit, cl.CPUOvercommit, cl.Name, "cpu")
		gauge(descClusterOvercommit, cl.RAMOvercommit, cl.Name, "ram")
		gauge(descClusterOvercommit, cl.DiskOvercommit, cl.Name, "disk")
		gauge(descClusterNodes, float64(len(cl.Nodes)), cl.Name)
		for _, st := range cl.Storages {
			sl := []string{cl.Name, st.Storage, st.Driver, st.Node}
			up := 1.0
			if st.Err != "" {
				up = 0
			}
			gauge(descStorageUp, up, sl...)
			gauge(descStorageVMs, float64(st.VMs), sl...)
			if st.Err == "" {
				gauge(descStorageCap, float64(st.Capacity), sl...)
				gauge(descStorageUsed, float64(st.Used), sl...)
				gauge(descStorageAlloc, float64(st.Allocated), sl...)
			}
		}
		for state, n := range cl.VMsByState {
			gauge(descClusterVMs, float64(n), cl.Name, state)
		}
		for _, n := range cl.Nodes {
			nl := []string{cl.Name, n.Name, n.ID}
			gauge(descNodeCores, float64(n.Cores), nl...)
			gauge(descNodeMemCap, float64(n.MemoryMiB*mib), nl...)
			gauge(descNodeDiskCap, float64(n.DiskGiB*gib), nl...)
			gauge(descNodeVMs, float64(len(n.VMs)), nl...)
			for _, s := range []string{"active", "maintenance", "unreachable"} {
				v := 0.0
				if n.State == s {
					v = 1
				}
				gauge(descNodeState, v, append(nl, s)...)
			}
			up := 1.0
			if n.UsageErr != nil {
				up = 0
			}
			gauge(descNodeUsageUp, up, nl...)
			var vcpus, memAlloc, diskAlloc int64
			var cpu time.Duration
			var mem, dr, dw, rx, tx uint64
			for _, vm := range n.VMs {
				vcpus += int64(vm.CPUs)
				memAlloc += vm.MemoryMiB * mib
				diskAlloc += vm.DiskGiB * gib
				vl := []string{cl.Name, n.Name, vm.ID, vm.Name}
				gauge(descVMVCPUs, float64(vm.CPUs), vl...)
				gauge(descVMMemSize, float64(vm.MemoryMiB*mib), vl...)
				if !vm.Reported {
					continue
				}
				u := vm.Usage
				cpu += u.CPUTime
				mem += u.MemoryBytes
				counter(descVMCPU, u.CPUTime.Seconds(), vl...)
				gauge(descVMMem, float64(u.MemoryBytes), vl...)
				for _, d := range u.Disks {
					dr += d.ReadBytes
					dw += d.WriteBytes
					counter(descVMDiskR, float64(d.ReadBytes), append(vl, d.Target)...)
					counter(descVMDiskW, float64(d.WriteBytes), append(vl, d.Target)...)
				}
				for _, nic := range u.NICs {
					rx += nic.RxBytes
					tx += nic.TxBytes
					counter(descVMNetRx, float64(nic.RxBytes), append(vl, nic.MAC)...)
					counter(descVMNetTx, float64(nic.TxBytes), append(vl, nic.MAC)...)
				}
			}
			gauge(descNodeVCPUs, float64(vcpus), nl...)
			gauge(descNodeMemAlloc, float64(memAlloc), nl...)
			gauge(descNodeDiskAll, float64(diskAlloc), nl...)
			counter(descNodeCPU, cpu.Seconds(), nl...)
			gauge(descNodeMem, float64(mem), nl...)
			counter(descNodeDiskR, float64(dr), nl...)
			counter(descNodeDiskW, float64(dw), nl...)
			counter(descNodeNetRx, float64(rx), nl...)
			counter(descNodeNetTx, float64(tx), nl...)
		}
	}
}
