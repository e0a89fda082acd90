package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// CorruptError reports a database file that fails SQLite's own structural
// check. At start-up drainpipe refuses to start on it rather than serve
// numbers it cannot vouch for; a partition found damaged while running
// (Store.Scrub, Table set) is reported and the node keeps running. The
// message says what to do.
type CorruptError struct {
	File   string // path of the database file
	Offset int64  // byte offset of the first damaged page, -1 when unknown
	Detail string // SQLite's report, first lines
	Table  string // the damaged table, when only one table was checked
}

func (e *CorruptError) Error() string {
	where := e.File
	if e.Offset >= 0 {
		where = fmt.Sprintf("%s at byte offset %d", e.File, e.Offset)
	}
	consequence := "drainpipe will not start on it"
	if e.Table != "" {
		where = fmt.Sprintf("table %s of %s", e.Table, where)
		consequence = "drainpipe keeps running, and answers leave out what cannot be read"
	}
	return fmt.Sprintf("%s is damaged (%s): %s. "+
		"Stop drainpipe, keep a copy of the file, then either restore it from a backup, "+
		"or rebuild what can be read with `sqlite3 %s .recover | sqlite3 %s.recovered` "+
		"and move %s.recovered into its place (delete the -wal and -shm files next to it first); "+
		"records that failed their checksums are kept apart in the quarantine tables",
		where, e.Detail, consequence, e.File, e.File, e.File)
}

var pageRe = regexp.MustCompile(`[Pp]age (\d+)`)

// checkStructure runs SQLite's quick_check on db (the file at path): every
// page, b-tree and record header is read and checked, in time linear in
// the file's size. A failure is a *CorruptError naming the file and the
// byte offset of the first damaged page SQLite names.
func checkStructure(ctx context.Context, db *sql.DB, path string) error {
	return checkTable(ctx, db, path, "")
}

// checkTable is checkStructure for one table and its indexes (all of
// them when table is empty).
func checkTable(ctx context.Context, db *sql.DB, path, table string) error {
	arg := "20" // report at most 20 problems
	if table != "" {
		arg = table
	}
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(`+arg+`)`)
	if err != nil {
		return &CorruptError{File: path, Offset: locateDamage(ctx, path), Detail: err.Error()}
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return &CorruptError{File: path, Offset: locateDamage(ctx, path), Detail: err.Error()}
		}
		if m != "ok" {
			msgs = append(msgs, m)
		}
	}
	if err := rows.Err(); err != nil {
		return &CorruptError{File: path, Offset: locateDamage(ctx, path), Detail: err.Error()}
	}
	if len(msgs) == 0 {
		return nil
	}
	e := &CorruptError{File: path, Offset: -1, Detail: strings.Join(msgs[:min(len(msgs), 3)], "; ")}
	var pageSize int64
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err == nil {
		for _, m := range msgs {
			if sm := pageRe.FindStringSubmatch(m); sm != nil {
				if n, err := strconv.ParseInt(sm[1], 10, 64); err == nil && n > 0 {
					e.Offset = (n - 1) * pageSize
					break
				}
			}
		}
	}
	if e.Offset < 0 {
		e.Offset = locateDamage(ctx, path)
	}
	return e
}

// isCorrupt reports whether err is SQLite's SQLITE_CORRUPT or
// SQLITE_NOTADB.
func isCorrupt(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "malformed") || strings.Contains(m, "not a database") || strings.Contains(m, "(11)") || strings.Contains(m, "(26)")
}

// locateDamage finds the byte offset of the first damaged page when
// SQLite reported corruption without naming one: a file shorter than its
// header says (cut short), else the first b-tree page whose header or
// child pointers are impossible, walking every table and index from its
// root through the raw pages (sqlite_dbpage). It returns -1 when it finds
// nothing.
func locateDamage(ctx context.Context, path string) int64 {
	return locate(ctx, path, everyPage)
}

// cutShort returns the size of the file at path when it ends before the
// last page its header counts (a file cut short), else -1. It reads the
// header only.
func cutShort(path string) int64 {
	return locate(context.Background(), path, cutShortOnly)
}

// How far locate looks.
const (
	everyPage = iota
	cutShortOnly
)

func locate(ctx context.Context, path string, only int) int64 {
	hdr := make([]byte, 100)
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	st, err := f.Stat()
	_, rerr := io.ReadFull(f, hdr)
	f.Close()
	if err != nil || rerr != nil || string(hdr[:16]) != "SQLite format 3\x00" {
		return 0
	}
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(hdr[28:32]))
	if wal, err := os.Stat(path + "-wal"); (err != nil || wal.Size() == 0) && st.Size() < pages*pageSize {
		return st.Size() // the file ends before its last page
	}
	if only == cutShortOnly {
		return -1
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return -1
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	page := func(n int64) []byte {
		var b []byte
		if err := db.QueryRowContext(ctx, `SELECT data FROM sqlite_dbpage WHERE pgno = ?`, n).Scan(&b); err != nil {
			return nil
		}
		return b
	}
	roots := []int64{1}
	rows, err := db.QueryContext(ctx, `SELECT rootpage FROM sqlite_schema WHERE rootpage > 0`)
	if err != nil {
		return 0 // the schema itself (page 1) cannot be read
	}
	for rows.Next() {
		var r int64
		if rows.Scan(&r) == nil {
			roots = append(roots, r)
		}
	}
	rows.Close()
	seen := map[int64]bool{}
	var walk func(n int64, depth int) int64
	walk = func(n int64, depth int) int64 {
		if n < 1 || n > max(pages, 1<<20) || depth > 20 {
			return -1
		}
		if seen[n] {
			return -1
		}
		seen[n] = true
		p := page(n)
		off := int64(0)
		if n == 1 {
			off = 100
		}
		bad := (n - 1) * pageSize
		if int64(len(p)) < off+8 {
			return bad
		}
		typ := p[off]
		hlen := int64(8)
		switch typ {
		case 0x0a, 0x0d:
		case 0x02, 0x05:
			hlen = 12
		default:
			return bad
		}
		cells := int64(binary.BigEndian.Uint16(p[off+3:]))
		if off+hlen+2*cells > int64(len(p)) {
			return bad
		}
		if hlen == 8 {
			return -1
		}
		children := []int64{int64(binary.BigEndian.Uint32(p[off+8:]))}
		for i := int64(0); i < cells; i++ {
			cp := int64(binary.BigEndian.Uint16(p[off+hlen+2*i:]))
			if cp < off+hlen || cp+4 > int64(len(p)) {
				return bad
			}
			children = append(children, int64(binary.BigEndian.Uint32(p[cp:])))
		}
		for _, c := range children {
			if c < 1 || c > pages {
				return bad
			}
			if o := walk(c, depth+1); o >= 0 {
				return o
			}
		}
		return -1
	}
	for _, r := range roots {
		if o := walk(r, 0); o >= 0 {
			return o
		}
	}
	return -1
}
