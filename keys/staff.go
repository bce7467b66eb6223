package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// StaffSessions mints and checks the session cookies of the staff
// consoles — the engine's and the regulator's, one implementation.
//
// A browser cannot send the Bearer header a plain link needs, so staff
// sign in once with their API key, and the key itself is never put in
// the cookie: a session is "hash.expiry.mac", the SHA-256 of the key
// (what the stores index keys by, and useless as a Bearer token), an
// expiry in Unix seconds, and an HMAC of both under a key derived from
// the master key. Any node sharing the master key accepts it, nobody can
// forge or extend one, and because the caller looks the hash up in its
// store on every request, a key removed there ends its sessions.
type StaffSessions struct {
	session, csrf []byte
}

// StaffSessions returns the session codec of this installation's
// consoles. Its MAC keys are derived from the receipt key with their own
// labels, so that no token of one kind passes as another.
func (k *Keyring) StaffSessions() StaffSessions {
	derive := func(purpose string) []byte {
		sum := sha256.Sum256(append([]byte("portrait/console/"+purpose+"/v1/"), k.ReceiptKey().Seed()...))
		return sum[:]
	}
	return StaffSessions{session: derive("session"), csrf: derive("csrf")}
}

// Errors of StaffSessions.Check: a value this installation did not mint
// (or that was altered), and a genuine session past its expiry.
var (
	ErrStaffSession        = errors.New("not a valid console session")
	ErrStaffSessionExpired = errors.New("the console session has expired: sign in again")
)

func mac(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// New is a session for the API key whose SHA-256 is keyHash, valid until
// exp.
func (s StaffSessions) New(keyHash []byte, exp time.Time) string {
	body := base64.RawURLEncoding.EncodeToString(keyHash) + "." + strconv.FormatInt(exp.Unix(), 10)
	return body + "." + mac(s.session, body)
}

// Check verifies session v at now and returns the SHA-256 of the API key
// it names, for the caller to look up (and so to refuse a revoked key).
// An expired session is ErrStaffSessionExpired, anything else not minted
// here ErrStaffSession.
func (s StaffSessions) Check(v string, now time.Time) ([]byte, error) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 || !hmac.Equal([]byte(v[i+1:]), []byte(mac(s.session, v[:i]))) {
		return nil, ErrStaffSession
	}
	h, exp, ok := strings.Cut(v[:i], ".")
	if !ok {
		return nil, ErrStaffSession
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return nil, ErrStaffSession
	}
	hash, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || len(hash) != sha256.Size {
		return nil, ErrStaffSession
	}
	if now.Unix() >= sec {
		return nil, ErrStaffSessionExpired
	}
	return hash, nil
}

// CSRF is the CSRF token bound to session v, for the forms of its pages.
func (s StaffSessions) CSRF(v string) string { return mac(s.csrf, v) }
