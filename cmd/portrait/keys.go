package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

func init() { commands["keys"] = keysCmd }

const keysUsage = `usage:
  portrait keys create --role ROLE --name TEAM/PERSON [--expires DUR] [store flags]
  portrait keys list [--json] [store flags]
  portrait keys revoke --name TEAM/PERSON [store flags]
ROLE is admin, operator, reviewer or auditor; DUR is like 720h, 90d or 1y (default 90d, at most 365d).
create prints the key, once, and nothing else on stdout.
`

// keysCmd manages staff API keys straight in the store, as POST, GET and
// DELETE /v1/keys do through the API; each change is an audit record.
func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	fs := flags("keys "+args[0], stderr)
	sf := addStoreFlags(fs)
	switch args[0] {
	case "create":
		role := fs.String("role", "", "the key's role: admin, operator, reviewer or auditor")
		name := fs.String("name", "", "the person it is for: team/person, e.g. risk/alice")
		expires := fs.String("expires", "", "lifetime, e.g. 720h, 90d or 1y (default 90d, at most 365d)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *role == "" || *name == "" {
			fmt.Fprintf(stderr, "keys create: --role and --name are required\n%s", keysUsage)
			return errUsage
		}
		var ttl time.Duration
		if *expires != "" {
			d, err := catalog.ParseDuration(*expires)
			if err != nil {
				return fmt.Errorf("keys create: --expires %q: want a length such as 720h, 90d or 1y", *expires)
			}
			ttl = time.Duration(d)
		}
		svc, done, err := sf.openKeys(ctx, stderr)
		if err != nil {
			return err
		}
		defer done()
		k, err := svc.Create(ctx, cli, *name, policy.Role(*role), ttl)
		if err != nil {
			return fmt.Errorf("keys create: %s", flagNames(cliMessage(err)))
		}
		fmt.Fprintln(stdout, k.Key)
		fmt.Fprintf(stderr, "created %s (%s), expires %s; the key above is shown this once\n", k.Name, k.Role, k.Expires.Format(time.RFC3339))
		return nil
	case "list":
		asJSON := fs.Bool("json", false, "print JSON, as GET /v1/keys does")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		svc, done, err := sf.openKeys(ctx, stderr)
		if err != nil {
			return err
		}
		defer done()
		ks, err := svc.List(ctx)
		if err != nil {
			return fmt.Errorf("keys list: %s", cliMessage(err))
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				Keys []apikey.Key `json:"keys"`
			}{ks})
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tROLE\tCREATED\tEXPIRES\tLAST USED")
		day := func(t time.Time, none string) string {
			if t.IsZero() {
				return none
			}
			return t.Format("2006-01-02 15:04")
		}
		for _, k := range ks {
			exp := day(k.Expires, "never")
			if k.Expired {
				exp += " (expired)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.Name, k.Role, day(k.Created, ""), exp, day(k.LastUsed, "never"))
		}
		return w.Flush()
	case "revoke":
		name := fs.String("name", "", "the key to revoke, by its team/person name")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *name == "" {
			fmt.Fprintf(stderr, "keys revoke: --name is required\n%s", keysUsage)
			return errUsage
		}
		svc, done, err := sf.openKeys(ctx, stderr)
		if err != nil {
			return err
		}
		defer done()
		if _, err := svc.Revoke(ctx, cli, *name); err != nil {
			return fmt.Errorf("keys revoke: %s", cliMessage(err))
		}
		fmt.Fprintf(stderr, "revoked %s; it is refused from the next request on every node\n", *name)
		return nil
	}
	fmt.Fprintf(stderr, "keys: unknown subcommand %q\n%s", args[0], keysUsage)
	return errUsage
}

// flagNames turns the API's field names in a message into the flags'.
func flagNames(msg string) string {
	for field, flag := range map[string]string{"name ": "--name ", "role ": "--role ", "expires_in ": "--expires "} {
		if strings.HasPrefix(msg, field) {
			return flag + strings.TrimPrefix(msg, field)
		}
	}
	return msg
}

// openKeys opens the store and the audit log for the keys commands. It
// needs no catalog (--catalog is accepted and unused), never creates a
// master key, and refuses a SQLite file that does not exist rather than
// making an empty database that no server reads.
func (f storeFlags) openKeys(ctx context.Context, stderr io.Writer) (*apikey.Service, func(), error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := mustExist(*f.db); err != nil { // before the key: the more useful error
		return nil, nil, err
	}
	kr, err := loadKeys(*f.keyFile, false, logger)
	if err != nil {
		return nil, nil, err
	}
	store, err := openStore(ctx, *f.db)
	if err != nil {
		return nil, nil, err
	}
	log, err := audit.New(logOrigin(kr), kr.LogKey())
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return apikey.New(apikey.Deps{Store: store, Log: log}, apikey.Options{Logger: logger}), func() { store.Close() }, nil
}
