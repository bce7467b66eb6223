package keys

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Subject-token errors, for callers to branch on (401 either way).
var (
	ErrTokenInvalid = errors.New("subject token is invalid: not issued by this server or altered")
	ErrTokenExpired = errors.New("subject token has expired: ask for a new one")
)

const tokenPrefix = "pt1."

var b64 = base64.RawURLEncoding

// IssueToken returns a subject token for pseudonym that expires after ttl:
// "pt1." + base64url(payload) + "." + base64url(HMAC-SHA256). The payload is
// 8 bytes of expiry (Unix seconds), 8 random bytes (the token id) and the
// pseudonym. Tokens carry no subject id, only the pseudonym.
func (k *Keyring) IssueToken(pseudonym string, ttl time.Duration) string {
	return k.issueToken(pseudonym, time.Now().Add(ttl))
}

func (k *Keyring) issueToken(pseudonym string, exp time.Time) string {
	payload := make([]byte, 16, 16+len(pseudonym))
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	rand.Read(payload[8:16])
	payload = append(payload, pseudonym...)
	body := tokenPrefix + b64.EncodeToString(payload)
	return body + "." + b64.EncodeToString(k.token.sum(nil, body, ""))
}

// CheckToken verifies a subject token and returns its pseudonym. A token
// that was not made by this master key or was altered in any way is
// ErrTokenInvalid; a genuine one past its expiry is ErrTokenExpired. The
// MAC is compared in constant time before anything in the payload is used.
func (k *Keyring) CheckToken(tok string, now time.Time) (pseudonym string, err error) {
	body, sig, ok := strings.Cut(tok, ".")
	if !ok || body+"." != tokenPrefix {
		return "", fmt.Errorf("%w (want a token starting with %q)", ErrTokenInvalid, tokenPrefix)
	}
	payloadB64, sigB64, ok := strings.Cut(sig, ".")
	if !ok {
		return "", ErrTokenInvalid
	}
	mac, err := b64.DecodeString(sigB64)
	if err != nil {
		return "", ErrTokenInvalid
	}
	want := k.token.sum(nil, tokenPrefix+payloadB64, "")
	if !hmac.Equal(mac, want) {
		return "", ErrTokenInvalid
	}
	payload, err := b64.DecodeString(payloadB64)
	if err != nil || len(payload) <= 16 {
		return "", ErrTokenInvalid
	}
	exp := int64(binary.BigEndian.Uint64(payload))
	if now.Unix() >= exp {
		return "", ErrTokenExpired
	}
	return string(payload[16:]), nil
}
