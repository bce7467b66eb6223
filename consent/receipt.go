package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
)

// ReceiptVersion is the version of the receipt format.
const ReceiptVersion = 1

// Receipt is the subject's proof of one consent decision (CN-2): who
// handles the data, what was consented to under which notice, which data
// categories it covers, when and through which channel, and where the
// decision sits in the audit log. It is signed with the keyring's receipt
// key (Ed25519) over its JSON without the signature, so anyone holding the
// public key can check it offline with VerifyReceipt.
type Receipt struct {
	Version       int                `json:"version"`
	ID            string             `json:"id"`
	Issuer        string             `json:"issuer"`            // the handler, from the catalog
	Contact       string             `json:"contact,omitempty"` // the handler's contact
	Pseudonym     portrait.Pseudonym `json:"subject"`
	Purpose       string             `json:"purpose"`
	Status        string             `json:"status"` // granted, refused or withdrawn
	NoticeVersion string             `json:"notice_version"`
	NoticeHash    string             `json:"notice_hash"` // hex SHA-256 of the notice texts as JSON
	Categories    []string           `json:"categories"`
	Separate      bool               `json:"separate_consent,omitempty"` // a separate consent (SM-2, CN-8)
	Guardian      bool               `json:"guardian,omitempty"`         // given by a guardian (SM-3)
	Channel       string             `json:"channel"`
	Time          time.Time          `json:"time"`
	LogIndex      int64              `json:"log_index"` // the audit-log entry recording it
	Digest        string             `json:"digest"`    // the digest that entry carries
	Key           string             `json:"key"`       // hex SHA-256 prefix of the signing public key
	Signature     string             `json:"signature,omitempty"`
	// ConsentString is the CMP's consent string the decision came from,
	// signed with the rest (evidence of what the subject chose there).
	ConsentString string `json:"consent_string,omitempty"`
	StringType    string `json:"consent_string_type,omitempty"`
}

// Errors VerifyReceipt returns, for callers to branch on.
var (
	ErrReceiptMalformed = errors.New("consent receipt is malformed")
	ErrReceiptSignature = errors.New("consent receipt signature does not verify: it was altered or signed by another key")
)

func (l *Ledger) receipt(cat *catalog.Catalog, p *catalog.Purpose, r portrait.ConsentRecord, digest string) Receipt {
	cats := r.Categories
	if cats == nil {
		cats = []string{}
	}
	return Receipt{
		Version:       ReceiptVersion,
		ID:            randomID(),
		Issuer:        cat.Handler.Name.In("en"),
		Contact:       cat.Handler.Contact,
		Pseudonym:     r.Pseudonym,
		Purpose:       r.Purpose,
		Status:        r.Status.String(),
		NoticeVersion: r.NoticeVersion,
		NoticeHash:    noticeHash(p),
		Categories:    cats,
		Separate:      p.Separate || cat.SensitivePurpose(p.ID),
		Guardian:      r.Guardian,
		Channel:       r.Channel,
		Time:          r.At,
		Digest:        digest,
		ConsentString: r.ConsentString,
		StringType:    r.StringType,
	}
}

func noticeHash(p *catalog.Purpose) string {
	// encoding/json sorts map keys, so the hash is stable.
	b, _ := json.Marshal(p.Notice)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func (r *Receipt) payload() ([]byte, error) {
	c := *r
	c.Signature = ""
	c.Time = c.Time.UTC()
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode receipt: %w", err)
	}
	return b, nil
}

func (r *Receipt) sign(key ed25519.PrivateKey) error {
	r.Key = keyID(key.Public().(ed25519.PublicKey))
	r.Time = r.Time.UTC()
	b, err := r.payload()
	if err != nil {
		return err
	}
	r.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))
	return nil
}

// VerifyReceipt checks a receipt's JSON against the receipt public key
// (keys.Keyring.ReceiptKey().Public()) without any server: a changed
// field, an unknown field or a signature by another key is an error.
func VerifyReceipt(data []byte, pub ed25519.PublicKey) (*Receipt, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify receipt: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Receipt
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the receipt", ErrReceiptMalformed)
	}
	if r.Version != ReceiptVersion {
		return nil, fmt.Errorf("%w: version %d, this verifier knows %d", ErrReceiptMalformed, r.Version, ReceiptVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is not base64 of %d bytes", ErrReceiptMalformed, ed25519.SignatureSize)
	}
	if r.Key != keyID(pub) {
		return nil, fmt.Errorf("%w (receipt key %s, verifying with %s)", ErrReceiptSignature, r.Key, keyID(pub))
	}
	b, err := r.payload()
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, b, sig) {
		return nil, ErrReceiptSignature
	}
	return &r, nil
}
