// Package cdnow ships the CDNOW purchase log (Fader & Hardie, as
// redistributed with the MIT-licensed lifetimes package) inside the binary,
// so that `portrait demo --cdnow` segments real purchases with nothing else
// installed.
package cdnow

import _ "embed"

// Log is CDNOW_master.txt, gzip-compressed: customer id, date (YYYYMMDD),
// number of CDs and dollar value, whitespace separated.
//
//go:embed CDNOW_master.txt.gz
var Log []byte
