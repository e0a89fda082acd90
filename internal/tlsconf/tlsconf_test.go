package tlsconf

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/internal/tlsconf/tlstest"
)

// writeCert writes a self-signed certificate with key as PEM files in
// dir and returns their paths and a pool trusting it.
func writeCert(tb testing.TB, dir, name string, key crypto.Signer) (string, string, *x509.CertPool) {
	tb.Helper()
	c, pool := tlstest.SelfSigned(tb, key)
	cf, kf := tlstest.WritePEM(tb, dir, name, c)
	return cf, kf, pool
}

// handshake runs one TLS handshake over an in-memory connection and
// returns the client's view of it. The server then writes one byte and
// the client reads it, which makes the client take in the session tickets
// the server sent at the end of the handshake (TLS 1.3).
func handshake(tb testing.TB, srv, cli *tls.Config) tls.ConnectionState {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(a, srv)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		errc <- err
	}()
	c := tls.Client(b, cli)
	if err := c.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return c.ConnectionState()
}

// TestTLSPrefersECDSAAndResumes: with an RSA and an ECDSA certificate
// given (RSA first), a modern client gets the ECDSA P-256 one, a client
// that only speaks RSA suites still gets the RSA one, and a second
// connection resumes the session instead of a full handshake.
func TestTLSPrefersECDSAAndResumes(t *testing.T) {
	dir := t.TempDir()
	rc, rk, _ := writeCert(t, dir, "rsa", tlstest.RSAKey(t))
	ec, ek, pool := writeCert(t, dir, "ecdsa", tlstest.ECDSAKey(t))
	cfg, err := Load(rc+","+ec, rk+","+ek)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(mustRead(t, rc)) // trust both
	if cfg.GetCertificate != nil || cfg.GetConfigForClient != nil || cfg.SessionTicketsDisabled {
		t.Fatal("handshakes must use the certificates parsed at start, with tickets on")
	}
	for _, c := range cfg.Certificates {
		if c.Leaf == nil {
			t.Fatal("a certificate was not parsed at load")
		}
	}
	cli := &tls.Config{ServerName: tlstest.ServerName, RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	st := handshake(t, cfg, cli)
	if alg := st.PeerCertificates[0].PublicKeyAlgorithm; alg != x509.ECDSA {
		t.Fatalf("a modern client got a %v certificate, want ECDSA", alg)
	}
	if st.DidResume {
		t.Fatal("first handshake resumed")
	}
	if st2 := handshake(t, cfg, cli); !st2.DidResume {
		t.Fatal("second handshake did not resume the session")
	}
	old := &tls.Config{ServerName: tlstest.ServerName, RootCAs: pool, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	if alg := handshake(t, cfg, old).PeerCertificates[0].PublicKeyAlgorithm; alg != x509.RSA {
		t.Fatalf("an RSA-only client got a %v certificate", alg)
	}
	if _, err := Load(rc+","+ec, rk); err == nil {
		t.Fatal("mismatched certificate and key lists accepted")
	}
}

func mustRead(tb testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkTLSHandshake measures server handshakes per second with an
// ECDSA P-256 and an RSA-2048 certificate, full and resumed, over an
// in-memory connection (the cost is the server's and client's crypto,
// not the network). Each op is one whole handshake, both sides on this
// machine's cores.
func BenchmarkTLSHandshake(b *testing.B) {
	for _, k := range []struct {
		name string
		key  func(testing.TB) crypto.Signer
	}{{"ecdsa-p256", tlstest.ECDSAKey}, {"rsa-2048", tlstest.RSAKey}} {
		dir := b.TempDir()
		cf, kf, pool := writeCert(b, dir, k.name, k.key(b))
		srv, err := Load(cf, kf)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"full", "resumed"} {
			b.Run(k.name+"/"+mode, func(b *testing.B) {
				cli := &tls.Config{ServerName: tlstest.ServerName, RootCAs: pool}
				if mode == "resumed" {
					cli.ClientSessionCache = tls.NewLRUClientSessionCache(8)
					handshake(b, srv, cli)
				}
				cpu0 := cpuTime()
				for b.Loop() {
					st := handshake(b, srv, cli)
					if st.DidResume != (mode == "resumed") {
						b.Fatalf("DidResume = %v in %s mode", st.DidResume, mode)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
				// CPU time is what a handshake costs, whatever else runs on
				// the machine: handshakes per CPU-second (client + server).
				b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "handshakes/cpu-s")
			})
		}
	}
}

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
