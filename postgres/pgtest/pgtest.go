// Package pgtest gives tests a real PostgreSQL server: a fresh database on
// the shared test server (DB), or a private cluster the test may stop and
// start at will (StartCluster).
//
// The shared server is the one scripts/services/postgres starts; its URL
// comes in DRAINPIPE_TEST_DATABASE_URL. Without it the tests skip, except
// under CI=true, where a missing server fails the run.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable holding the shared test server's
// URL. Its role must be allowed to create databases.
const EnvURL = "DRAINPIPE_TEST_DATABASE_URL"

// missing skips the test, or fails it under CI=true.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required under CI=true: %s (scripts/test starts it with scripts/services/postgres)", why)
	}
	t.Skipf("no PostgreSQL: %s (run scripts/services/postgres and export %s)", why, EnvURL)
}

// DB creates a fresh, uniquely named database on the shared test server
// and returns its URL. The database is dropped when the test ends.
func DB(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		missing(t, EnvURL+" is not set")
	}
	return CreateDB(t, base)
}

// CreateDB creates a fresh, uniquely named database on the server of
// adminURL (whose role may create databases), returns its URL and drops it
// when the test ends.
func CreateDB(t testing.TB, adminURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(adminURL), err)
	}
	defer conn.Close(ctx)
	name := "dptest_" + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("pgtest: connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// WITH (FORCE) ends the test's leftover connections. It needs
		// pg_signal_backend to end an autovacuum worker too; without it,
		// a plain DROP (which stops autovacuum itself) is retried.
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		for try := 0; err != nil && try < 10; try++ {
			time.Sleep(200 * time.Millisecond)
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
		}
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", redact(adminURL), err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redact hides a URL's password in messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Cluster is a private PostgreSQL cluster in a temporary directory, on a
// free port of 127.0.0.1, for tests that stop and restart the server.
// Authentication is trust for the superuser "postgres".
type Cluster struct {
	// URL is the connection URL of the cluster's "postgres" database.
	URL string

	t       testing.TB
	bin     string
	dir     string // data directory
	port    int
	cred    *syscall.Credential // the server's OS user when we are root
	stopped bool
}

// StartCluster initialises a private cluster (initdb) and starts it. It
// skips the test (fails it under CI=true) when the server binaries are
// missing. The cluster is stopped and its files removed when the test
// ends. When the test runs as root, the server runs as the "postgres" OS
// user, since PostgreSQL refuses to run as root.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		missing(t, err.Error())
	}
	c := &Cluster{t: t, bin: bin}
	// t.TempDir is private to the test's user (0700): the postgres user
	// could not enter it, so the cluster gets its own directory.
	parent, err := os.MkdirTemp("", "drainpipe-pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root and there is no postgres OS user to run the server")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(parent, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	c.dir = filepath.Join(parent, "data")
	if out, err := c.run("initdb", "-D", c.dir, "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	c.port, err = freePort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n", c.port, parent)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("pgtest: configure cluster: %v", err)
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	c.Start()
	t.Cleanup(func() {
		if !c.stopped {
			c.Stop()
		}
	})
	return c
}

// LogFile is the server's log, for a failing test to show.
func (c *Cluster) LogFile() string { return filepath.Join(filepath.Dir(c.dir), "server.log") }

// Port is the TCP port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// Stop stops the server (fast shutdown: open connections are cut) and
// waits until it is down.
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.dir, "-w", "-m", "fast", "stop"); err != nil {
		c.t.Fatalf("pgtest: stop cluster: %v\n%s", err, out)
	}
	c.stopped = true
}

// Start starts the server again after Stop and waits until it accepts
// connections.
func (c *Cluster) Start() {
	c.t.Helper()
	logFile := c.LogFile()
	if out, err := c.run("pg_ctl", "-D", c.dir, "-l", logFile, "-w", "-t", "60", "start"); err != nil {
		tail, _ := os.ReadFile(logFile)
		c.t.Fatalf("pgtest: start cluster: %v\n%s\n%s", err, out, tail)
	}
	c.stopped = false
}

// run runs one of the server's programs, as the postgres user when we are
// root.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = os.TempDir()
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	}
	// pg_ctl start leaves the server running with our stdout unless it is
	// a file: collect output through a temporary file, not a pipe, so
	// that Wait does not block until the server exits.
	out, err := os.CreateTemp("", "pgtest-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	runErr := cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return b, runErr
}

// binDir finds the PostgreSQL server programs: Debian keeps them in
// /usr/lib/postgresql/<version>/bin, off PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server programs (initdb, pg_ctl) not found")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(strings.Split(filepath.Base(filepath.Dir(binDir)), ".")[0])
	return v
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
