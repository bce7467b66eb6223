package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Require skips the test in -short mode and on a machine without
// Chromium; a test calls it before it builds what the browser will look
// at.
func Require(t testing.TB) { t.Helper(); path(t) }

// path returns the Chromium to drive: $PORTRAIT_CHROMIUM, else the usual
// install paths.
func path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test in -short mode")
	}
	for _, p := range []string{os.Getenv("PORTRAIT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (set PORTRAIT_CHROMIUM); the browser test needs one")
	return ""
}

// Open starts Chromium with a window of width × height px and returns a context
// that drives it for at most timeout. The browser is closed when the test
// ends, or earlier by the returned cancel.
//
// Chromium writes scratch directories under TMPDIR that it does not
// remove (org.chromium.Chromium.*), one per start; TMPDIR is pointed into
// the test's own temporary directory so they go with it.
func Open(t testing.TB, width, height int, timeout time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	exe := path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.Env("TMPDIR="+t.TempDir()), chromedp.WindowSize(width, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	cancel := func() { cancelTimeout(); cancelCtx(); cancelAlloc() }
	t.Cleanup(cancel)
	return ctx, cancel
}
