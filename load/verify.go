package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Verification of a DuckDB file against its own block checksums, in Go, before DuckDB
// opens it.
//
// Why: DuckDB checks a block's checksum only when a query reads the block. A damaged
// block then fails that one statement ("Corrupt database file: computed checksum …"),
// but the database stays open, and a later statement in the same process can fault
// inside DuckDB: with a store damaged on disk (issue 12, point 5), the crawl committed,
// two statements failed on the bad block, and the next one died with SIGSEGV in
// TableStatistics::CopyStats, a Go dump and exit 2. Whether a run touches a damaged block
// depends on what it reads, so a store must be checked as a whole before anything
// reads it: Open and OpenReadOnly verify every block the file uses.
//
// The format, as DuckDB 1.5 writes it (storage/single_file_block_manager.cpp,
// storage/metadata/, common/checksum.cpp): a 4 KiB main header at 0 and two 4 KiB
// database headers at 4 KiB and 8 KiB, each an 8-byte checksum followed by its content;
// then blocks of block_alloc_size bytes (256 KiB) from 12 KiB on, each an 8-byte checksum
// of the rest of the block. The active database header (the higher iteration) gives the
// block count and the free list, which lives in metadata blocks (a block split into 64
// sub-blocks, each starting with the pointer to the next). Blocks on the free list hold
// nothing DuckDB will read (old data, or zeros where the file system punched a hole) and
// are skipped; every other block below the block count must match its checksum.
const (
	fileHeaderSize    = 4096
	blockStart        = 3 * fileHeaderSize
	blockHeaderSize   = 8
	metadataPerBlock  = 64
	invalidBlock      = ^uint64(0)
	minBlockAllocSize = 16384
	maxBlockAllocSize = 262144
	// encryptedFlag is bit 0 of the main header's first flag word; an encrypted file's
	// blocks are checksummed after decryption, which needs the key.
	encryptedFlag = 1
)

var duckMagic = []byte("DUCK")

// blockChecksum is DuckDB's Checksum(buffer, size): 5381 xor-ed with every 8-byte word
// times a constant, plus a hash of the 0–7 bytes left over.
func blockChecksum(b []byte) uint64 {
	sum := uint64(5381)
	n := len(b) / 8 * 8
	for i := 0; i < n; i += 8 {
		sum ^= binary.LittleEndian.Uint64(b[i:]) * 0xbf58476d1ce4e5b9
	}
	if n < len(b) {
		sum ^= checksumRemainder(b[n:])
	}
	return sum
}

// checksumRemainder is DuckDB's ChecksumRemainder (Martin Ankerl's robin-hood hash, MIT).
func checksumRemainder(b []byte) uint64 {
	const m, seed, r = uint64(0xc6a4a7935bd1e995), uint64(0xe17a1465), 47
	h := seed ^ (uint64(len(b)) * m)
	n := len(b) / 8
	for i := 0; i < n; i++ {
		k := binary.LittleEndian.Uint64(b[i*8:])
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
	}
	tail := b[n*8:]
	if len(tail) > 0 {
		for i := len(tail) - 1; i >= 0; i-- {
			h ^= uint64(tail[i]) << (8 * uint(i))
		}
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// verifyStats says what verifyFile read.
type verifyStats struct {
	Blocks     int   // blocks checked
	FreeBlocks int   // blocks on the free list, skipped
	Bytes      int64 // bytes read
	// Skipped says why nothing was checked (an empty or encrypted file), "" otherwise.
	Skipped string
}

// damage is what verifyFile found wrong, for DamagedError.
type damage struct{ detail string }

func (d *damage) Error() string { return d.detail }

// verifyFile checks every block the DuckDB file at path uses against its checksum. It
// returns a *damage when the file is damaged, another error when it cannot read the
// file. A missing or empty file is not damaged (DuckDB creates a new database). While it
// reads, it holds a shared lock that keeps a DuckDB writer from opening the file; a file
// a writer already has open is not read (Skipped says so), since its blocks may change
// under the reader.
func verifyFile(path string) (verifyStats, error) {
	var st verifyStats
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			st.Skipped = "no file"
			return st, nil
		}
		return st, err
	}
	defer f.Close()
	if ok, err := tryReadLock(f); err != nil {
		return st, fmt.Errorf("locking %s: %w", path, err)
	} else if !ok {
		st.Skipped = "open for writing in another process"
		return st, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return st, err
	}
	size := fi.Size()
	if size == 0 {
		st.Skipped = "empty file"
		return st, nil
	}
	if size < blockStart {
		return st, &damage{fmt.Sprintf("the file is %d bytes, shorter than DuckDB's headers", size)}
	}
	head := make([]byte, blockStart)
	if _, err := f.ReadAt(head, 0); err != nil {
		return st, err
	}
	st.Bytes += blockStart
	main := head[:fileHeaderSize]
	if string(main[8:12]) != string(duckMagic) {
		return st, &damage{"the file does not start with a DuckDB header"}
	}
	if binary.LittleEndian.Uint64(main[20:])&encryptedFlag != 0 {
		st.Skipped = "encrypted file"
		return st, nil
	}
	for i, name := range []string{"main header", "database header 1", "database header 2"} {
		h := head[i*fileHeaderSize : (i+1)*fileHeaderSize]
		if blockChecksum(h[8:]) != binary.LittleEndian.Uint64(h) {
			return st, &damage{fmt.Sprintf("the %s, bytes %d–%d, fails its checksum", name, i*fileHeaderSize, (i+1)*fileHeaderSize)}
		}
	}
	h1, h2 := parseDBHeader(head[fileHeaderSize+8:]), parseDBHeader(head[2*fileHeaderSize+8:])
	h := h2
	if h1.iteration > h2.iteration {
		h = h1
	}
	if h.allocSize == 0 {
		h.allocSize = maxBlockAllocSize
	}
	if h.allocSize < minBlockAllocSize || h.allocSize > maxBlockAllocSize || h.allocSize&(h.allocSize-1) != 0 {
		return st, &damage{fmt.Sprintf("the database header gives an impossible block size %d", h.allocSize)}
	}
	if h.blockCount > uint64(size) {
		return st, &damage{fmt.Sprintf("the database header gives an impossible block count %d", h.blockCount)}
	}
	v := &verifier{f: f, size: size, alloc: int64(h.allocSize), count: int64(h.blockCount), checked: map[int64]bool{}}
	free, err := v.freeList(h.freeList)
	if err != nil {
		return st, err
	}
	st.FreeBlocks = len(free)
	if err := v.all(free); err != nil {
		return st, err
	}
	st.Blocks = len(v.checked)
	st.Bytes += v.read
	return st, nil
}

type dbHeader struct {
	iteration, metaBlock, freeList, blockCount, allocSize uint64
}

// parseDBHeader reads a database header's content (after its checksum): iteration,
// meta_block, free_list, block_count, block_alloc_size, each 8 bytes little-endian.
func parseDBHeader(b []byte) dbHeader {
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[i*8:]) }
	return dbHeader{iteration: u(0), metaBlock: u(1), freeList: u(2), blockCount: u(3), allocSize: u(4)}
}

type verifier struct {
	f       *os.File
	size    int64
	alloc   int64
	count   int64
	checked map[int64]bool // blocks verified so far
	read    int64
}

func (v *verifier) location(id int64) int64 { return blockStart + id*v.alloc }

// check verifies one block whose bytes are in b.
func (v *verifier) check(id int64, b []byte) error {
	if blockChecksum(b[blockHeaderSize:]) != binary.LittleEndian.Uint64(b) {
		return &damage{fmt.Sprintf("block %d, bytes %d–%d, fails its checksum", id, v.location(id), v.location(id)+v.alloc)}
	}
	v.checked[id] = true
	return nil
}

// block reads and verifies one block.
func (v *verifier) block(id int64) ([]byte, error) {
	if id < 0 || id >= v.count {
		return nil, &damage{fmt.Sprintf("a metadata pointer names block %d, beyond the %d blocks of the file", id, v.count)}
	}
	b := make([]byte, v.alloc)
	n, err := v.f.ReadAt(b, v.location(id))
	v.read += int64(n)
	if errors.Is(err, io.EOF) {
		return nil, &damage{fmt.Sprintf("block %d lies past the end of the file (%d bytes): the file was cut short", id, v.size)}
	}
	if err != nil {
		return nil, err
	}
	return b, v.check(id, b)
}

// freeList reads the free list that starts at metadata pointer ptr: a count and as many
// block ids, as DuckDB's SingleFileBlockManager::LoadFreeList reads it.
func (v *verifier) freeList(ptr uint64) (map[int64]bool, error) {
	free := map[int64]bool{}
	if ptr == invalidBlock {
		return free, nil
	}
	r := &metaReader{v: v, next: ptr}
	n, err := r.uint64()
	if err != nil {
		return nil, err
	}
	if n > uint64(v.count) {
		return nil, &damage{fmt.Sprintf("the free list claims %d free blocks in a file of %d", n, v.count)}
	}
	for i := uint64(0); i < n; i++ {
		id, err := r.uint64()
		if err != nil {
			return nil, err
		}
		free[int64(id)] = true
	}
	return free, nil
}

// all verifies every block below the block count that is not free, reading several
// blocks at a time.
func (v *verifier) all(free map[int64]bool) error {
	const batch = 16
	buf := make([]byte, batch*v.alloc)
	for first := int64(0); first < v.count; first += batch {
		n := min(batch, v.count-first)
		got, err := v.f.ReadAt(buf[:n*v.alloc], v.location(first))
		v.read += int64(got)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for i := int64(0); i < n; i++ {
			id := first + i
			if free[id] || v.checked[id] {
				continue
			}
			if int64(got) < (i+1)*v.alloc {
				return &damage{fmt.Sprintf("block %d lies past the end of the file (%d bytes): the file was cut short", id, v.size)}
			}
			if err := v.check(id, buf[i*v.alloc:(i+1)*v.alloc]); err != nil {
				return err
			}
		}
	}
	return nil
}

// metaReader reads a chain of metadata sub-blocks as DuckDB's MetadataReader does. A
// pointer holds the block id in its low 56 bits and the sub-block index in the high 8;
// each sub-block starts with the pointer to the next (all ones at the end of the chain).
type metaReader struct {
	v    *verifier
	next uint64
	data []byte // the rest of the current sub-block
}

func (r *metaReader) subBlockSize() int64 {
	return (r.v.alloc - blockHeaderSize) / metadataPerBlock / 8 * 8
}

func (r *metaReader) advance() error {
	if r.next == invalidBlock {
		return &damage{"a metadata chain ends before the data it should hold"}
	}
	id, index := int64(r.next&(1<<56-1)), int64(r.next>>56)
	if index >= metadataPerBlock {
		return &damage{fmt.Sprintf("a metadata pointer names sub-block %d of block %d", index, id)}
	}
	b, err := r.v.block(id)
	if err != nil {
		return err
	}
	size := r.subBlockSize()
	sub := b[blockHeaderSize+index*size : blockHeaderSize+(index+1)*size]
	r.next = binary.LittleEndian.Uint64(sub)
	r.data = sub[8:]
	return nil
}

func (r *metaReader) uint64() (uint64, error) {
	var w [8]byte
	got := 0
	for got < 8 {
		if len(r.data) == 0 {
			if err := r.advance(); err != nil {
				return 0, err
			}
		}
		n := copy(w[got:], r.data)
		r.data = r.data[n:]
		got += n
	}
	return binary.LittleEndian.Uint64(w[:]), nil
}
