// Package browsertest starts the real headless Chromium that the pages'
// tests drive, one way for every package: the same flags, a profile and a
// scratch directory that die with the test, and a skip (not a failure)
// on a machine without Chromium.
//
// It keeps one invariant: nothing a browser test starts outlives the
// test — not the process, not its profile, not the scratch files
// Chromium writes under TMPDIR.
package browsertest
