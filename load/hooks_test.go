package load

import (
	"os"
	"os/exec"
)

// Hooks for the external tests (package load_test), which may import loadtest.

// FreeBlocks lists the blocks on the free list of the DuckDB file at path and gives the
// byte offset of each, as the verifier reads them.
func FreeBlocks(path string) (map[int64]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, blockStart)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, err
	}
	h1, h2 := parseDBHeader(head[fileHeaderSize+8:]), parseDBHeader(head[2*fileHeaderSize+8:])
	h := h2
	if h1.iteration > h2.iteration {
		h = h1
	}
	v := &verifier{f: f, alloc: int64(h.allocSize), count: int64(h.blockCount), checked: map[int64]bool{}}
	free, err := v.freeList(h.freeList)
	if err != nil {
		return nil, err
	}
	out := map[int64]int64{}
	for id := range free {
		out[id] = v.location(id)
	}
	return out, nil
}

// VerifyFile is verifyFile: the blocks it checked, or the damage it found.
func VerifyFile(path string) (blocks int, err error) {
	st, err := verifyFile(path)
	return st.Blocks, err
}

// RegisterChildRole adds a child-process role (see runChild) from an external test file;
// call it from init.
func RegisterChildRole(role string, f func(arg string) int) { platformRoles[role] = f }

// ChildProcess is the command that runs role with arg in a child test process.
func ChildProcess(role, arg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stderr = os.Stderr
	return cmd
}

// AfterTests runs f once every test and benchmark of the package has run.
func AfterTests(f func()) { afterTests = append(afterTests, f) }
