// Package kafkatest gives tests a real Apache Kafka broker: the shared one
// that scripts/test starts (DRAINPIPE_TEST_KAFKA_BROKERS) with a topic name
// of their own, or a private broker in a temporary directory that a test
// may stop and start again.
//
// Without a broker the tests skip, except with CI=true, where they fail:
// CI must never pass by skipping the Kafka tests.
package kafkatest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv names the variable holding the shared broker's bootstrap
// address (host:port[,host:port]).
const BrokersEnv = "DRAINPIPE_TEST_KAFKA_BROKERS"

// missing skips the test, or fails it under CI.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("kafka broker needed under CI=true: %s (scripts/services/kafka starts one)", why)
	}
	t.Skipf("no kafka broker: %s (run scripts/services/kafka and set %s)", why, BrokersEnv)
}

// Brokers returns the shared broker's seed addresses, skipping (or, under
// CI, failing) the test when there is none or it does not answer.
func Brokers(t testing.TB) []string {
	t.Helper()
	v := os.Getenv(BrokersEnv)
	if v == "" {
		missing(t, BrokersEnv+" is not set")
	}
	seeds := strings.Split(v, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Ping(ctx, seeds); err != nil {
		missing(t, err.Error())
	}
	return seeds
}

// Ping waits until the broker answers a metadata request or ctx ends.
func Ping(ctx context.Context, seeds []string) error { return ping(ctx, seeds, nil) }

func ping(ctx context.Context, seeds []string, tlsCfg *tls.Config) error {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = cl.Ping(pctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %v does not answer: %w", seeds, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Name returns a unique name (for a topic or consumer group) beginning
// with prefix, so tests sharing one broker never see each other's data.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Broker is a private broker run by a test. Its address stays the same
// across Stop and Start.
type Broker struct {
	Addr string // host:port clients bootstrap from

	t       testing.TB
	script  string
	env     []string
	logPath string
	tls     *tls.Config // for pinging a TLS listener

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartBroker starts a private single-node broker in a temporary
// directory on free ports, and stops it when the test ends. It skips (or,
// under CI, fails) when Java or the broker's jars cannot be had.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	return startBroker(t, nil, nil)
}

// startBroker starts a private broker; extra, when not nil, returns more
// server.properties lines for its ports, and pingTLS is how to reach a
// TLS listener.
func startBroker(t testing.TB, pingTLS *tls.Config, extra func(port, controllerPort int) string) *Broker {
	t.Helper()
	script, err := scriptPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		missing(t, "java is not installed")
	}
	if os.Getenv(BrokersEnv) == "" && os.Getenv("CI") != "true" {
		// The jars come with the shared broker: without it, a local run
		// skips rather than downloading them inside a test.
		missing(t, BrokersEnv+" is not set")
	}
	dir := t.TempDir()
	ports := freePorts(t, 2)
	b := &Broker{
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), t: t, script: script, tls: pingTLS,
		logPath: filepath.Join(dir, "broker.log"),
		env: append(os.Environ(),
			"DRAINPIPE_KAFKA_DIR="+dir,
			"DRAINPIPE_KAFKA_JVM=fast",
			fmt.Sprintf("DRAINPIPE_KAFKA_PORT=%d", ports[0]),
			fmt.Sprintf("DRAINPIPE_KAFKA_CONTROLLER_PORT=%d", ports[1]),
		),
	}
	if extra != nil {
		b.env = append(b.env, "DRAINPIPE_KAFKA_EXTRA_CONFIG="+extra(ports[0], ports[1]))
	}
	t.Cleanup(func() { b.Kill() })
	b.Start()
	return b
}

// Start runs the broker (again) and waits until it answers.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		return
	}
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.mu.Unlock()
		b.t.Fatal(err)
	}
	cmd := exec.Command(b.script, "run")
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.mu.Unlock()
		b.t.Fatalf("start kafka broker: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()

	// A JVM on a busy 2-core machine can take a minute to come up; give
	// up early only when the broker exited.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := ping(ctx, []string{b.Addr}, b.tls); err != nil {
		log, _ := os.ReadFile(b.logPath)
		b.t.Fatalf("private kafka broker: %v\n%s", err, tail(string(log), 3000))
	}
}

// Stop shuts the broker down cleanly (SIGTERM), or kills it after 30 s.
func (b *Broker) Stop() { b.stop(syscall.SIGTERM, 30*time.Second) }

// Kill stops the broker at once (SIGKILL), as a crash would.
func (b *Broker) Kill() { b.stop(syscall.SIGKILL, 0) }

func (b *Broker) stop(sig syscall.Signal, grace time.Duration) {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	// The script execs java, so the process is the JVM; signal its group
	// in case anything else was started.
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Log returns the broker's log so far, for failure messages.
func (b *Broker) Log() string {
	log, _ := os.ReadFile(b.logPath)
	return string(log)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// scriptPath finds scripts/services/kafka above the working directory (go
// test runs in the package's folder).
func scriptPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "services", "kafka")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/services/kafka not found above the working directory")
		}
		dir = parent
	}
}
