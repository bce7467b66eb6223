package keys

// Additional data. Every value is sealed with its subject's key and with
// additional data naming the subject and the value's place, so that a
// ciphertext copied to another subject, field, label or record does not
// open (CM-5). Every package that seals or opens uses these, so the
// bindings cannot drift apart.

// EventAD binds an event's values to its subject.
func EventAD(pseudonym string) []byte { return []byte(pseudonym) }

// ProfileAD binds a profile value to its subject and field.
func ProfileAD(pseudonym, field string) []byte { return []byte(pseudonym + "/" + field) }

// LabelAD binds a derived label value to its subject and label.
func LabelAD(pseudonym, label string) []byte { return []byte(pseudonym + "/label/" + label) }

// DecisionAD binds a decision's explanation to its subject and decision.
func DecisionAD(pseudonym, id string) []byte { return []byte(pseudonym + "/decision/" + id) }

// StatementAD binds a subject's review statement to the review.
func StatementAD(pseudonym, review string) []byte { return []byte(pseudonym + "/review/" + review) }

// ConsentAD binds consent evidence (the user agent) to its subject and
// purpose.
func ConsentAD(pseudonym, purpose string) []byte { return []byte(pseudonym + "/consent/" + purpose) }

// ProtectedAD binds an audit-only protected attribute (FP-2) to its subject.
func ProtectedAD(pseudonym, attr string) []byte { return []byte(pseudonym + "/protected/" + attr) }
