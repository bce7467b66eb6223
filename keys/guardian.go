package keys

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	portrait "github.com/portrait-dev/portrait"
	"strings"
	"time"
)

// ErrGuardianToken is the error of a guardian token that this server did
// not issue for that subject and purpose, or that has expired.
var ErrGuardianToken = errors.New("guardian token is invalid for this subject and purpose, altered or expired: run the verified guardian flow again")

const guardianPrefix = "pg1."

// IssueGuardianToken returns a token saying that the company's verified
// guardian flow has established a guardian's consent for pseudonym and
// purpose, valid for ttl (SM-3): "pg1." + base64url(expiry, 8 random
// bytes) + "." + base64url(HMAC). The MAC covers the subject and purpose
// without carrying them, under a context of its own, so a subject token
// is never a guardian token nor one subject's token another's.
func (k *Keyring) IssueGuardianToken(pseudonym portrait.Pseudonym, purpose string, ttl time.Duration) (string, time.Time) {
	exp := time.Now().Add(ttl).Truncate(time.Second)
	payload := make([]byte, 16)
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	rand.Read(payload[8:])
	body := guardianPrefix + b64.EncodeToString(payload)
	return body + "." + b64.EncodeToString(k.token.sum(nil, body, guardianContext(pseudonym, purpose))), exp
}

// CheckGuardianToken verifies a guardian token for pseudonym and purpose
// at now; the MAC is compared in constant time before the expiry is read.
func (k *Keyring) CheckGuardianToken(tok string, pseudonym portrait.Pseudonym, purpose string, now time.Time) error {
	if !strings.HasPrefix(tok, guardianPrefix) {
		return ErrGuardianToken
	}
	i := strings.LastIndexByte(tok, '.')
	if i < len(guardianPrefix) {
		return ErrGuardianToken
	}
	body, sigB64 := tok[:i], tok[i+1:]
	mac, err := b64.DecodeString(sigB64)
	if err != nil || !hmac.Equal(mac, k.token.sum(nil, body, guardianContext(pseudonym, purpose))) {
		return ErrGuardianToken
	}
	payload, err := b64.DecodeString(body[len(guardianPrefix):])
	if err != nil || len(payload) != 16 {
		return ErrGuardianToken
	}
	if now.Unix() >= int64(binary.BigEndian.Uint64(payload)) {
		return ErrGuardianToken
	}
	return nil
}

func guardianContext(pseudonym portrait.Pseudonym, purpose string) string {
	return "guardian\x00" + string(pseudonym) + "\x00" + purpose
}
