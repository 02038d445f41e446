// Package strategies decides what to do after an attempt: retry, back off,
// fall back to the next rung of a ladder, restore the state file, guide the
// user, or shut down. It also owns the ladders' argv, environment and config
// file patches, and the guided workflow texts.
//
// Facts about the Wan2.2 command line (tasks, sizes, frames, argv edits,
// VRAM estimates) come from package wan, which is pure as well.
//
// strategies is pure: no os/exec, os/signal, logrus or go-nvml, no file
// access, no sleeping. Time and randomness arrive as values.
package strategies
