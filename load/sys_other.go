//go:build !unix

package load

func diskSpace(string) (free, total uint64) { return 0, 0 }

func privateUmask() {}
