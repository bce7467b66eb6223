package keys

import portrait "github.com/portrait-dev/portrait"

// Additional data. Every value is sealed with its subject's key and with
// additional data naming the subject and the value's place, so that a
// ciphertext copied to another subject, field, label or record does not
// open (CM-5). Every package that seals or opens uses these, so the
// bindings cannot drift apart.

// EventAD binds an event's values to its subject.
func EventAD(pseudonym portrait.Pseudonym) []byte { return []byte(string(pseudonym)) }

// ProfileAD binds a profile value to its subject and field.
func ProfileAD(pseudonym portrait.Pseudonym, field string) []byte {
	return []byte(string(pseudonym) + "/" + field)
}

// LabelAD binds a derived label value to its subject and label.
func LabelAD(pseudonym portrait.Pseudonym, label string) []byte {
	return []byte(string(pseudonym) + "/label/" + label)
}

// DecisionAD binds a decision's explanation to its subject and decision.
func DecisionAD(pseudonym portrait.Pseudonym, id string) []byte {
	return []byte(string(pseudonym) + "/decision/" + id)
}

// StatementAD binds a subject's review statement to the review.
func StatementAD(pseudonym portrait.Pseudonym, review string) []byte {
	return []byte(string(pseudonym) + "/review/" + review)
}

// ConsentAD binds consent evidence (the user agent) to its subject and
// purpose.
func ConsentAD(pseudonym portrait.Pseudonym, purpose string) []byte {
	return []byte(string(pseudonym) + "/consent/" + purpose)
}

// ProtectedAD binds an audit-only protected attribute (FP-2) to its subject.
func ProtectedAD(pseudonym portrait.Pseudonym, attr string) []byte {
	return []byte(string(pseudonym) + "/protected/" + attr)
}
