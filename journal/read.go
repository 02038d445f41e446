package journal

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ReadStats says what ReadAll or Last went through.
type ReadStats struct {
	// Files is how many files were read.
	Files int `json:"files"`
	// Lines is how many non-empty lines were read.
	Lines int `json:"lines"`
	// Bad is how many lines were skipped because they were not records:
	// malformed or truncated JSON, another kind of log line, a line longer
	// than 64 MiB, or the undecodable rest of a damaged gzip file.
	Bad int `json:"bad"`
	// Records is how many records were passed on.
	Records int `json:"records"`
}

const (
	backupPrefix     = "attempts-"
	backupExt        = ".jsonl"
	gzipExt          = ".gz"
	backupTimeFormat = "2006-01-02T15-04-05.000" // lumberjack's, in UTC
	maxLine          = 64 << 20
	readBuffer       = 256 << 10
)

// logFile is one file of the attempt log.
type logFile struct {
	rotated time.Time // when it was rotated; zero for the current file
	plain   string    // path of the uncompressed file, "" if none
	gz      string    // path of the gzipped file, "" if none
}

// listFiles returns the files of the attempt log in dir, oldest first: the
// rotated backups by the time in their names, then attempts.jsonl. A backup
// that exists both plain and gzipped is being compressed; the plain file is
// complete and is the one read.
func listFiles(dir string) ([]logFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	byStamp := map[string]*logFile{}
	var files []*logFile
	var current *logFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		if name == FileName {
			current = &logFile{plain: path}
			continue
		}
		gz := strings.HasSuffix(name, backupExt+gzipExt)
		stem := strings.TrimSuffix(name, gzipExt)
		if !strings.HasPrefix(stem, backupPrefix) || !strings.HasSuffix(stem, backupExt) {
			continue
		}
		stamp := stem[len(backupPrefix) : len(stem)-len(backupExt)]
		t, err := time.Parse(backupTimeFormat, stamp)
		if err != nil {
			continue
		}
		f := byStamp[stamp]
		if f == nil {
			f = &logFile{rotated: t}
			byStamp[stamp] = f
			files = append(files, f)
		}
		if gz {
			f.gz = path
		} else {
			f.plain = path
		}
	}
	slices.SortFunc(files, func(a, b *logFile) int { return a.rotated.Compare(b.rotated) })
	out := make([]logFile, 0, len(files)+1)
	for _, f := range files {
		out = append(out, *f)
	}
	if current != nil {
		out = append(out, *current)
	}
	return out, nil
}

// ReadAll calls fn with every record in dir's attempt log, oldest first:
// the rotated backups (plain or gzipped) in the order they were rotated,
// then attempts.jsonl. With a non-zero since, records that ended before it
// are skipped, and so are whole backups rotated before it.
//
// Lines that are not records are skipped and counted in ReadStats.Bad; a
// damaged gzip file is read as far as it can be and counts as one more bad
// line. ReadAll stops at the first error from fn and returns it as is; it
// also fails when dir cannot be listed (wrapping fs.ErrNotExist when it is
// missing) or a file cannot be read.
func ReadAll(dir string, since time.Time, fn func(Record) error) (ReadStats, error) {
	var st ReadStats
	files, err := listFiles(dir)
	if err != nil {
		return st, err
	}
	for _, f := range files {
		if !since.IsZero() && !f.rotated.IsZero() && f.rotated.Before(since) {
			continue
		}
		err := f.read(&st, func(r *Record) error {
			if !since.IsZero() && r.when().Before(since) {
				return nil
			}
			st.Records++
			return fn(*r)
		})
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// read passes each record of f to fn. The plain file is preferred; when it
// vanished because it was compressed meanwhile, the gzipped one is read.
func (f logFile) read(st *ReadStats, fn func(*Record) error) error {
	if f.plain != "" {
		err := readFile(f.plain, false, st, fn)
		if !errors.Is(err, fs.ErrNotExist) || f.rotated.IsZero() {
			return err
		}
	}
	gz := f.gz
	if gz == "" {
		gz = f.plain + gzipExt
	}
	err := readFile(gz, true, st, fn)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed by lumberjack's MaxBackups or MaxAge while we listed.
		return nil
	}
	return err
}

// readFile passes each record in the file at path to fn. It returns an
// error wrapping fs.ErrNotExist, without counting the file, when the file
// is missing.
func readFile(path string, gz bool, st *ReadStats, fn func(*Record) error) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	defer file.Close()
	st.Files++
	var r io.Reader = file
	if gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(file, readBuffer))
		if err != nil {
			if damaged(err) {
				st.Bad++
				return nil
			}
			return fmt.Errorf("read journal %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	lr := lineReader{br: bufio.NewReaderSize(r, readBuffer), max: maxLine}
	for {
		line, tooLong, err := lr.next()
		if tooLong {
			st.Lines++
			st.Bad++
		} else if line = bytes.TrimSpace(line); len(line) > 0 {
			st.Lines++
			rec, ok := decodeLine(line)
			if !ok {
				st.Bad++
			} else if err := fn(&rec); err != nil {
				return err
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			return nil
		case gz && damaged(err):
			st.Bad++
			return nil
		default:
			return fmt.Errorf("read journal %s: %w", path, err)
		}
	}
}

// damaged reports whether err means a gzip stream is corrupt or cut short.
func damaged(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrHeader) ||
		errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt)
}

// recordLine is one line as the formatter wrote it: the record's fields
// plus logrus's msg.
type recordLine struct {
	Record
	Msg string `json:"msg"`
}

// decodeLine decodes one line; ok is false when it is not an attempt record.
func decodeLine(line []byte) (Record, bool) {
	var l recordLine
	if err := json.Unmarshal(line, &l); err != nil || l.Msg != msgAttempt {
		return Record{}, false
	}
	return l.Record, true
}

// lineReader reads lines of any length up to max bytes.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

// next returns the next line, valid until the following call, or tooLong
// when it was longer than lr.max and has been skipped. err is the read
// error that ended the line, io.EOF at the end.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	s, err := lr.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return s, false, err
	}
	lr.buf = append(lr.buf[:0], s...)
	for {
		s, err = lr.br.ReadSlice('\n')
		if len(lr.buf)+len(s) > lr.max {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = lr.br.ReadSlice('\n')
			}
			return nil, true, err
		}
		lr.buf = append(lr.buf, s...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return lr.buf, false, err
		}
	}
}

// Last returns the most recent record in dir's attempt log. ok is false
// when there is none (no directory, no files, or no valid record). It reads
// attempts.jsonl backwards from its end, and falls back to the newest
// backups when the current file holds no record (just after a rotation).
func Last(dir string) (r Record, ok bool, err error) {
	files, err := listFiles(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	for _, f := range slices.Backward(files) {
		if f.plain != "" {
			r, ok, err := lastInPlain(f.plain)
			switch {
			case err == nil && ok:
				return r, true, nil
			case err == nil:
				continue
			case !errors.Is(err, fs.ErrNotExist):
				return Record{}, false, err
			case f.rotated.IsZero():
				continue
			}
			// The backup was compressed after the listing: read the gzip.
		}
		gz := f.gz
		if gz == "" {
			gz = f.plain + gzipExt
		}
		var st ReadStats
		found := false
		err := readFile(gz, true, &st, func(rec *Record) error {
			r, found = *rec, true
			return nil
		})
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return Record{}, false, err
		case found:
			return r, true, nil
		}
	}
	return Record{}, false, nil
}

// lastInPlain returns the last record of an uncompressed file, reading it
// backwards in chunks.
func lastInPlain(path string) (Record, bool, error) {
	file, err := os.Open(path)
	if err != nil {
		return Record{}, false, fmt.Errorf("read journal: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return Record{}, false, fmt.Errorf("read journal: %w", err)
	}
	const chunk = 64 << 10
	start := fi.Size()
	var buf []byte // the file from start up to the part already searched
	for {
		// buf may begin in the middle of a line while start > 0.
		i := bytes.LastIndexByte(buf, '\n')
		for i >= 0 || start == 0 {
			line := bytes.TrimSpace(buf[i+1:])
			if len(line) > 0 {
				if r, ok := decodeLine(line); ok {
					return r, true, nil
				}
			}
			if i < 0 {
				return Record{}, false, nil
			}
			buf = buf[:i]
			i = bytes.LastIndexByte(buf, '\n')
		}
		if len(buf) > maxLine {
			// An endless line: skip it.
			buf = buf[:0]
		}
		n := min(int64(chunk), start)
		start -= n
		more := make([]byte, int(n)+len(buf))
		if _, err := file.ReadAt(more[:n], start); err != nil {
			return Record{}, false, fmt.Errorf("read journal %s: %w", path, err)
		}
		copy(more[n:], buf)
		buf = more
	}
}
