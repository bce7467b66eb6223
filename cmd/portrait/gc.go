package main

import "runtime/debug"

// serveGC is the collector's growth target in a serving process (Go's
// default is 100).
const serveGC = 400

// tuneGC sets the collector's target for a process that serves requests,
// unless the operator set GOGC. A server's heap is small (its resident
// memory under sustained ingest is 64 MB on PostgreSQL, 113 MB on SQLite
// with its page cache) and nearly all it allocates dies with the request
// that allocated it, so at Go's default the collector ran every few
// megabytes of ingest: sustained ingest over HTTP on SQLite did 1.13× as
// many events per second at 400, for 30–40 MB more resident memory (docs/BENCHMARKS.md, "Issue 14, session 7"). An operator who
// needs the memory back sets GOGC (and GOMEMLIMIT caps the heap either
// way); the runtime has already read GOGC, so it is left alone.
func tuneGC(getenv func(string) string) bool {
	if getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(serveGC)
	return true
}
