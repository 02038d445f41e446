// Package nvml is the only code in wan22-guard that talks to NVIDIA's NVML
// (through go-nvml, and so the only cgo). It turns what NVML says into
// gpu.Facts and watches for Xid critical errors.
//
// NVML is loaded lazily: importing this package or calling New costs
// nothing; the first Probe (or Preload) dlopens libnvidia-ml.so.1 and calls
// nvmlInit in the background. Every NVML call runs under a deadline, so a
// hung driver cannot hang the guard, and a machine without a GPU or without
// libnvidia-ml gets an ordinary gpu.ErrUnavailable, never a panic.
//
// Only the runner and main import this package. It must not import the
// runner, strategies or classify.
package nvml
