package portrait

// Validate checks an event before it is stored: every event needs a type,
// a time and its sealed values.
func (e StoredEvent) Validate() error {
	if e.Type == "" || e.Time.IsZero() || len(e.Sealed) == 0 {
		return Errorf(EINVALID, "event of subject %s: an event needs a type, a time and sealed values", e.Pseudonym)
	}
	return nil
}

// Validate checks a profile value before it is stored.
func (v ProfileValue) Validate() error {
	if len(v.Sealed) == 0 || v.Updated.IsZero() {
		return Errorf(EINVALID, "put profile field %s: a value needs sealed bytes and an update time", v.Field)
	}
	return nil
}

// Validate checks a label value before it is stored.
func (v LabelValue) Validate() error {
	if len(v.Sealed) == 0 || v.Computed.IsZero() {
		return Errorf(EINVALID, "put label %s of subject %s: a value needs sealed bytes and a computed time", v.Label, v.Pseudonym)
	}
	return nil
}

// CheckAppend checks that entries continue a log of size entries exactly
// where it ends, each with whole 32-byte hashes.
func CheckAppend(size int64, entries []LogEntry) error {
	for i, e := range entries {
		if want := size + int64(i); e.Index != want {
			return Errorf(ECONFLICT, "append log: entry index %d, want %d: the log has %d entries and appends must be contiguous", e.Index, want, size)
		}
		if len(e.Hashes) == 0 || len(e.Hashes)%32 != 0 {
			return Errorf(EINVALID, "append log entry %d: hashes are %d bytes, want a non-empty multiple of 32", e.Index, len(e.Hashes))
		}
	}
	return nil
}
