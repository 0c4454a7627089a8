package persistence

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Segment files: append-only files named NNNNNNNN.seg in a directory of
// their own, written with pwrite(2), read with pread(2) and deleted whole.
// Message bodies (bodies.go) and the Raft write-ahead log (raftwal.go) keep
// their records in them; each checksums its records with castagnoli.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentSuffix ends the name of every segment file.
const segmentSuffix = ".seg"

func segmentName(dir string, id uint32) string {
	return filepath.Join(dir, fmt.Sprintf("%08d%s", id, segmentSuffix))
}

// listSegments returns the ids of the segment files in dir, in increasing
// order; a directory that does not exist has none. Other files are ignored.
func listSegments(dir string) ([]uint32, error) {
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("persistence: list %s: %w", dir, err)
	}
	var ids []uint32
	for _, de := range names {
		id, ok := parseSegmentName(de.Name(), segmentSuffix)
		if ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// parseSegmentName returns the id of a file named NNNNNNNN followed by
// suffix.
func parseSegmentName(name, suffix string) (uint32, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 32)
	return uint32(id), err == nil
}

// openSegment opens segment id of dir for reading and writing, and returns
// it with its size.
func openSegment(dir string, id uint32) (*os.File, int64, error) {
	f, err := os.OpenFile(segmentName(dir, id), os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("persistence: open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, errors.Join(fmt.Errorf("persistence: segment %d: %w", id, err), f.Close())
	}
	return f, st.Size(), nil
}

// createSegment creates segment id of dir, which must not exist. With sync
// set it syncs dir too: the segment's directory entry must outlive a power
// failure as its records do.
func createSegment(dir string, id uint32, sync bool) (*os.File, error) {
	f, err := os.OpenFile(segmentName(dir, id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("persistence: create segment: %w", err)
	}
	if sync {
		if err := syncDir(dir); err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}
	return f, nil
}

// removeSegment closes f, segment id of dir, and deletes the file.
func removeSegment(dir string, id uint32, f *os.File) error {
	err := f.Close()
	if rerr := os.Remove(segmentName(dir, id)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// syncDir fsyncs directory dir, making the entries created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("persistence: open %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("persistence: sync %s: %w", dir, err)
	}
	return nil
}

// pwritevAll writes bufs to f at off, in as few system calls as the
// kernel allows (IOV_MAX buffers each), going on after short writes.
func pwritevAll(f *os.File, bufs [][]byte, off int64) error {
	const iovMax = 1024
	fd := int(f.Fd())
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), iovMax)]
		n, err := unix.Pwritev(fd, chunk, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		// Skip what was written.
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			bufs[0] = bufs[0][n:]
			n = 0
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}
