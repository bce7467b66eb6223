package keys

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"strings"
	"time"
)

// Subject-token errors, for callers to branch on (401 either way).
var (
	ErrTokenInvalid = errors.New("subject token is invalid: not issued by this server or altered")
	ErrTokenExpired = errors.New("subject token has expired: ask for a new one")
)

// tokenPrefix names the token format. Version 2 added the time of issue,
// so that an erasure can end every token issued before it; a version 1
// token is refused (it lived an hour at most).
const tokenPrefix = "pt2."

// tokenHeader is the payload's fixed part: expiry, issue time (Unix
// seconds) and 8 random bytes.
const tokenHeader = 24

// b64 is strict: the unused low bits of a token's last character must be
// zero, so a token has exactly one text form. Lenient decoding accepted
// some edits of the last two characters as the same MAC, which made a
// "tampered" token pass now and then.
var b64 = base64.RawURLEncoding.Strict()

// Token is what a genuine subject token says.
type Token struct {
	Pseudonym       portrait.Pseudonym
	Issued, Expires time.Time
	// ID names this token for SessionEnded and EndSessions.
	ID []byte
}

// IsToken reports whether s has the form of a subject token (rather than
// a staff API key); CheckToken says whether it is one.
func IsToken(s string) bool { return strings.HasPrefix(s, tokenPrefix) }

// IssueToken returns a subject token for pseudonym that expires after ttl:
// "pt2." + base64url(payload) + "." + base64url(HMAC-SHA256). The payload is
// 8 bytes of expiry and 8 of issue time (Unix seconds), 8 random bytes
// (the token id) and the pseudonym. Tokens carry no subject id, only the
// pseudonym.
func (k *Keyring) IssueToken(pseudonym portrait.Pseudonym, ttl time.Duration) string {
	now := time.Now()
	return k.issueToken(pseudonym, now, now.Add(ttl))
}

func (k *Keyring) issueToken(pseudonym portrait.Pseudonym, iat, exp time.Time) string {
	payload := make([]byte, tokenHeader, tokenHeader+len(pseudonym))
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	binary.BigEndian.PutUint64(payload[8:], uint64(iat.Unix()))
	rand.Read(payload[16:tokenHeader])
	payload = append(payload, pseudonym...)
	body := tokenPrefix + b64.EncodeToString(payload)
	return body + "." + b64.EncodeToString(k.token.sum(nil, body, ""))
}

// CheckToken verifies a subject token and returns its pseudonym; see
// ParseToken.
func (k *Keyring) CheckToken(tok string, now time.Time) (pseudonym portrait.Pseudonym, err error) {
	t, err := k.ParseToken(tok, now)
	return t.Pseudonym, err
}

// ParseToken verifies a subject token and returns what it says. A token
// that was not made by this master key or was altered in any way is
// ErrTokenInvalid; a genuine one past its expiry is ErrTokenExpired. The
// MAC is compared in constant time before anything in the payload is used.
// Whether the token was ended early (sign-out, erasure) is the store's to
// say: see portrait.Store.SessionEnded.
func (k *Keyring) ParseToken(tok string, now time.Time) (Token, error) {
	body, sig, ok := strings.Cut(tok, ".")
	if !ok || body+"." != tokenPrefix {
		return Token{}, fmt.Errorf("%w (want a token starting with %q)", ErrTokenInvalid, tokenPrefix)
	}
	payloadB64, sigB64, ok := strings.Cut(sig, ".")
	if !ok {
		return Token{}, ErrTokenInvalid
	}
	mac, err := b64.DecodeString(sigB64)
	if err != nil {
		return Token{}, ErrTokenInvalid
	}
	want := k.token.sum(nil, tokenPrefix+payloadB64, "")
	if !hmac.Equal(mac, want) {
		return Token{}, ErrTokenInvalid
	}
	payload, err := b64.DecodeString(payloadB64)
	if err != nil || len(payload) <= tokenHeader {
		return Token{}, ErrTokenInvalid
	}
	exp := int64(binary.BigEndian.Uint64(payload))
	if now.Unix() >= exp {
		return Token{}, ErrTokenExpired
	}
	return Token{
		Pseudonym: portrait.Pseudonym(payload[tokenHeader:]),
		Issued:    time.Unix(int64(binary.BigEndian.Uint64(payload[8:])), 0),
		Expires:   time.Unix(exp, 0),
		ID:        SessionID(tok),
	}, nil
}

// SessionID names one session — a subject token, or a staff console
// session — for the store's record of ended sessions. It is a hash, so
// that the record holds nothing that signs anyone in.
func SessionID(session string) []byte {
	sum := sha256.Sum256([]byte("portrait/session/v1\x00" + session))
	return sum[:]
}

// SubjectSessions names every session of a subject, for ending them all
// at erasure. It hashes the pseudonym, with another label than SessionID.
func SubjectSessions(pseudonym portrait.Pseudonym) []byte {
	sum := sha256.Sum256([]byte("portrait/subject-sessions/v1\x00" + string(pseudonym)))
	return sum[:]
}
