package portrait

import (
	"fmt"
	"regexp"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// staffRole is the syntax of a role an API key may carry: the company's
// roles (admin, operator, …) and any a regulator node defines
// (regulator-admin, inspector). Subject and System are never keys' roles.
var staffRole = regexp.MustCompile(`^[a-z][a-z-]{0,31}$`)

// staffName is "team/person": the team is what separation of duties
// compares with catalog owners, the person what it compares with an
// appellant (RO-7). Lower case only, so that "Risk/alice" cannot pass for
// someone other than "risk/alice".
var staffName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}/[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckStaffName reports whether name is a valid staff key name,
// "team/person", with an error that says what is wrong.
func CheckStaffName(name string) error {
	if !staffName.MatchString(name) {
		return &Error{Code: EINVALID, Requirement: "RO-7",
			Message: fmt.Sprintf("name %q: want team/person, e.g. risk/alice — lower-case letters, digits, '.', '_' or '-', each part 1 to 63 long; separation of duties compares the team with catalog owners", name)}
	}
	return nil
}

// Validate checks a key before it is stored: every engine calls it, so
// that none can hold a key without a hash or with a role no route knows.
// Names are checked loosely here (keys stored before names existed carry
// their id); CheckStaffName is the rule for new keys.
func (k APIKey) Validate() error {
	name := k.Name
	if name == "" {
		name = k.ID
	}
	switch {
	case k.ID == "":
		return Errorf(EINVALID, "API key: want an id")
	case len(k.Hash) != 32:
		return Errorf(EINVALID, "API key %s: want the 32-byte SHA-256 of the key, got %d bytes", name, len(k.Hash))
	case len(name) > 127:
		return Errorf(EINVALID, "API key %s: the name is longer than 127 bytes", name[:32])
	case k.Role == policy.Subject || k.Role == policy.System || !staffRole.MatchString(string(k.Role)):
		return Errorf(EINVALID, "API key %s: role %q is not a staff role; want one of %v", name, k.Role, policy.Roles)
	}
	return nil
}

// Check refuses a revoked or expired key, as of now.
func (k APIKey) Check(now time.Time) error {
	switch {
	case !k.Revoked.IsZero():
		return Errorf(EUNAUTHORIZED, "this API key was revoked; ask an admin for a new one")
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return Errorf(EUNAUTHORIZED, "this API key (%s) expired on %s; ask an admin for a new one", k.Name, k.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}
