// Package runner owns the child: launch in its own process group with a
// parent-death signal, output pumps that copy every byte before anything
// scans it, signal forwarding, reaping (also as PID 1 or child subreaper),
// killing what is left of the tree, watchdogs and the attempt loop.
//
// runner is the only package that waits. It does not decide policy: the
// strategies package does.
package runner
