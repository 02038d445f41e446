// Package configs owns the guard's configuration: the types, the embedded
// default.yaml (classes, rules, phases, strategies, budgets, ladders and
// workflows), loading a user file over the defaults, and validation that
// names FILE:LINE:COL for every problem before anything is launched.
//
// configs does not touch processes.
package configs
