// Package journal owns the attempt log: one JSON record per attempt, written
// through logrus's JSONFormatter to <run-dir>/attempts.jsonl, rotated and
// gzipped by lumberjack. It also reads the log back (rotated and gzipped
// files included), redacts secrets from what it records, and computes
// statistics over the records.
//
// journal records and describes; it must not decide anything. It must not
// import runner, strategies, os/exec or os/signal, and it holds no global
// mutable state. A failing disk never stops the job: Write reports the first
// failure and keeps trying.
package journal
