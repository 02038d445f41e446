// Package classify turns what a child printed and how it ended into a failure
// class. It owns the streaming line scanner, the compiled rules, the phase
// tracker and the final Verdict.
//
// Rules and phases arrive as data (RuleSpec, PhaseSpec, decoded by the configs
// package from YAML) and are checked and compiled once by Compile into an
// immutable Rules, shared by all attempts. Each attempt gets its own Scanner:
// the runner hands it every output line (split on \n and \r) and, when the
// child has ended, asks Scanner.Verdict for a Result naming the class, the
// rule, the evidence line and the phase and progress at that line.
//
// A line is cleaned first (ANSI escapes, torchrun rank prefixes, timestamps
// and log levels removed), then one Aho-Corasick pass finds which rule
// literals it holds; only rules woken that way run their regexp. The scanner
// keeps the first matching line per rule, so its state is bounded by the rule
// set, never by the amount of output.
//
// classify is pure: it must not import os/exec, os/signal, logrus or go-nvml,
// and it reads no files.
package classify
