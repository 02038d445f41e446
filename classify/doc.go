// Package classify turns what a child printed and how it ended into a failure
// class. It owns the streaming line scanner, the compiled rules, the phase
// tracker and the final Verdict.
//
// classify is pure: it must not import os/exec, os/signal, logrus or go-nvml,
// and it reads no files. Rules arrive as data (RuleSpec, PhaseSpec) from the
// configs package.
package classify
