// Package gpu holds plain facts about GPUs and the host they run on: Facts,
// Device and HostFacts (the values written to the attempt log), the Prober
// contract and a FakeProber, process-tree facts read from /proc (TreeRSS,
// DescendantsOf, the holders of /dev/nvidia*), the Sampler that records peak
// memory while a child runs, and the release gate that waits for an
// attempt's GPU memory to come back before the next launch.
//
// gpu is pure Go and imports only the standard library, so the pure packages
// (strategies) may import it for its types. It must not import go-nvml, cgo,
// os/exec, os/signal or logrus: NVML lives in gpu/nvml, gopsutil in gpu/host.
// "No GPU" is an ordinary answer here (ErrUnavailable), never a crash.
package gpu
