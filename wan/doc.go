// Package wan holds plain knowledge about the Wan2.2 (and Wan2.1) command
// line: the tasks and what each accepts, the launch line parsed into a
// Command, argv edits that only touch the script's own arguments, size and
// frame steps, the token count that drives DiT memory, and a peak VRAM
// estimate from the published figures.
//
// wan is pure: it must not import os/exec, os/signal, logrus or go-nvml, it
// reads no files and it never sleeps. Functions that take a slice return a
// new slice and never modify their input.
package wan
