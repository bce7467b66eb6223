package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portrait-dev/portrait/audit"
)

const usage = `portrait — user profiling with the law built in

Usage:
  portrait serve    --addr HOST:PORT --db DSN --catalog FILE --key-file FILE [--admin-key KEY | --admin-key-file FILE] [--monitor-every DUR] [--pack FILE]
                    [--tls-cert FILE --tls-key FILE] [--trusted-proxies CIDR,…] [--log-level LEVEL]   (docs/OPERATIONS.md)
  portrait demo     [--addr HOST:PORT] [--db DSN] [--admin-key KEY | --admin-key-file FILE] [--keep]
  portrait catalog check FILE [--pack FILE] [--strict] [--json]
  portrait catalog diff OLD NEW                 what changed and whether it needs a new notice version
  portrait rules    check CATALOG [--pack FILE] every hit explained with the rule pack's rule id
  portrait rules    show [--pack FILE] | sign --key FILE PACK
  portrait verify   --server URL [--checkpoint FILE] [--full] [--sample N] [--witness-key VKEY [--regulator URL]] [--json]
  portrait version
  portrait regulator serve --addr HOST:PORT --db DSN --key-file FILE --admin-key KEY
  portrait regulator demo  [--addr HOST:PORT] [--company-addr HOST:PORT]

Profiling:
  portrait import   --file F --format csv|ndjson|cdnow [--map COLUMN=FIELD,…] [--derive] [--allow-rejects] [--json] [store flags]
  portrait derive   [--json] [store flags]                     batch derivation of labels, segments, RFM, scores
  portrait train    --label ID --outcome RULE --out FILE [store flags]
  portrait predict  --format cdnow --file F --calibration-end DATE --holdout-end DATE [--model bgnbd|bgnbd_trend] [--json] [--html FILE]
                                                        fit and check a purchase forecast on a holdout (stores nothing)

Staff keys (RO-7; also POST/GET /v1/keys, DELETE /v1/keys/{name}):
  portrait keys create --role ROLE --name TEAM/PERSON [--expires DUR] [store flags]   prints the key, once
  portrait keys list   [--json] [store flags]
  portrait keys revoke --name TEAM/PERSON [store flags]

Application and oversight:
  portrait assess   --usecase ID [--assessments DIR] [store flags]   sign an impact assessment (FA-1)
  portrait items    import FILE [store flags]
  portrait cases    [--overdue] [--subject P] [--json] [--db DSN]      data-subject requests (SR-4, SR-5)
  portrait monitor  [--format json|html] [--out FILE] [--report-dir DIR] [store flags]
  portrait fairness --csv FILE --group COLUMN [--group COLUMN…] --predicted COLUMN --positive VALUE[,VALUE…]
                    [--outcome COLUMN --outcome-positive VALUE] --format json|text|html
  portrait check-signed --kind receipt|export|erasure|evidence --file F --key KEY   offline check (key: GET /v1/receipts/key)
  portrait load     --server URL [--events N] [--batch N] [--workers N] [--subjects N]   API key from PORTRAIT_KEY

Store flags: --db DSN (SQLite file or postgres:// URL) --catalog FILE --key-file FILE.
Every flag can also be set in the environment: --db as PORTRAIT_DB, --key-file as
PORTRAIT_KEY_FILE, and so on. The master key may be given as PORTRAIT_MASTER_KEY instead of a key file.
`

// Main runs the command line and returns the exit code: 0 success, 1
// failure, 2 usage error. Asked for help (-h, --help), a command prints
// its usage to stdout and exits 0.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && slices.ContainsFunc(args[1:], isHelp) {
		if code := dispatch(args, stdout, stdout); code != 2 {
			return code
		}
		return 0
	}
	return dispatch(args, stdout, stderr)
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return run(stderr, serve(ctx, args[1:], stdout, stderr))
	case "demo":
		return run(stderr, runDemo(ctx, args[1:], stdout, stderr))
	case "catalog":
		return catalogCmd(args[1:], stdout, stderr)
	case "rules":
		return rulesCmd(args[1:], stdout, stderr)
	case "verify":
		return run(stderr, verify(ctx, args[1:], stdout, stderr))
	case "fairness":
		return fairnessCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	}
	if cmd, ok := commands[args[0]]; ok {
		return run(stderr, cmd(ctx, args[1:], stdout, stderr))
	}
	fmt.Fprintf(stderr, "portrait: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// commands are the further subcommands, registered by init functions in
// the files that implement them.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

// errUsage marks usage errors: alone, one the flag package already
// explained; wrapped, one whose text says what was wrong.
var errUsage = errors.New("usage")

func run(stderr io.Writer, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(stderr, "portrait: %s\n", strings.TrimSuffix(err.Error(), ": "+errUsage.Error()))
		}
		return 2
	}
	fmt.Fprintf(stderr, "portrait: %v\n", err)
	return 1
}

// flags returns a FlagSet whose defaults come from PORTRAIT_* variables.
func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its environment variable (--key-file from PORTRAIT_KEY_FILE).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "PORTRAIT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("verify", stderr)
	server := fs.String("server", "", "base URL of the Portrait server, e.g. http://127.0.0.1:8080")
	cp := fs.String("checkpoint", "portrait.checkpoint", "file holding the last verified checkpoint; updated when everything holds")
	full := fs.Bool("full", false, "re-check every entry of the log, streaming, not only a sample of those verified before")
	samples := fs.Int("sample", audit.DefaultSamples, "how many entries verified before to re-check at random by inclusion proof (without --full)")
	witnessKey := fs.String("witness-key", "", "also require the regulator's cosignature by this key (its /v1/witness/key)")
	reg := fs.String("regulator", "", "with --witness-key: also fail if this regulator has cosigned a larger tree than the server shows")
	asJSON := fs.Bool("json", false, "print the result as JSON: {ok, report, error}")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *server == "" || (*reg != "" && *witnessKey == "") {
		fmt.Fprintln(stderr, "verify: --server URL is required; --regulator needs --witness-key")
		return errUsage
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var w io.Writer = stdout
	var buf strings.Builder
	if *asJSON {
		w = &buf // the verifier's own report, line by line, with the verdict
	}
	err := func() error {
		if *witnessKey != "" {
			if err := verifyWitnessed(ctx, client, strings.TrimRight(*server, "/"), *witnessKey, strings.TrimRight(*reg, "/"), w); err != nil {
				return err
			}
		}
		opt := audit.VerifyOptions{Full: *full, Samples: *samples}
		if *samples == 0 {
			opt.Samples = -1
		}
		return audit.VerifyWith(ctx, client, strings.TrimRight(*server, "/"), *cp, opt, w)
	}()
	if !*asJSON {
		return err
	}
	out := map[string]any{"server": *server, "checkpoint_file": *cp, "ok": err == nil,
		"report": strings.Split(strings.TrimSpace(buf.String()), "\n")}
	if err != nil {
		out["error"] = err.Error()
	}
	if jerr := printJSON(stdout, out); jerr != nil {
		return jerr
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}

// version names the build: the module version and, when built from a
// checkout, the VCS revision and whether it had uncommitted changes.
func version() string {
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && dirty {
			rev += "+dirty"
		}
	}
	out := "portrait " + v
	if rev != "" {
		out += " " + rev
	}
	return out + " " + runtime.Version()
}
