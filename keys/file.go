package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// ReadPrivate reads a file that holds a secret — the master key, the
// bootstrap admin key — refusing one that group or others may read, as
// ssh does for private keys: a secret readable by other accounts is a
// leak, not a warning.
func ReadPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist: %w", path, fs.ErrNotExist)
		}
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, readable by other accounts; run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}
