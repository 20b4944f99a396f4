//go:build !unix

package load

import "os"

func diskSpace(string) (free, total uint64) { return 0, 0 }

func privateUmask() {}

func fileIdentity(os.FileInfo) (fileID, bool) { return fileID{}, false }
