// Package tlsconf builds the HTTPS server configuration that every
// drainpipe process serving TLS shares (serve --tls-cert, --tls-key).
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Load parses the certificates and keys once, at start, and returns the
// server configuration. certFiles and keyFiles are comma-separated lists
// of the same length (one pair per certificate: an ECDSA P-256 one and an
// RSA one for older clients, say).
//
// What the handshakes then do, and why:
//   - ECDSA certificates come first: crypto/tls serves the first
//     certificate the client supports, and an ECDSA P-256 signature costs
//     the server far less than an RSA-2048 one (BenchmarkTLSHandshake);
//   - key exchange is crypto/tls's default order (hybrid post-quantum
//     X25519MLKEM768, then X25519, then P-256);
//   - the parsed certificates are shared read-only by every handshake: no
//     GetCertificate callback, no cache, no lock on the handshake path (a
//     shared, locked certificate cache once made another TLS front end's
//     handshakes several times slower);
//   - session resumption stays on (TLS 1.3 tickets and TLS 1.2 session
//     tickets, with crypto/tls's rotating ticket keys), so a sender that
//     reconnects skips the certificate signature.
func Load(certFiles, keyFiles string) (*tls.Config, error) {
	if certFiles == "" || keyFiles == "" {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	certs, keys := strings.Split(certFiles, ","), strings.Split(keyFiles, ",")
	if len(certs) != len(keys) {
		return nil, fmt.Errorf("TLS: %d certificate files but %d key files; give one key per certificate, in the same order", len(certs), len(keys))
	}
	var pairs []tls.Certificate
	for i := range certs {
		cert, err := tls.LoadX509KeyPair(strings.TrimSpace(certs[i]), strings.TrimSpace(keys[i]))
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s: %w", certs[i], err)
		}
		pairs = append(pairs, cert)
	}
	sort.SliceStable(pairs, func(i, j int) bool { return isECDSA(pairs[i]) && !isECDSA(pairs[j]) })
	return &tls.Config{
		Certificates: pairs,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

func isECDSA(c tls.Certificate) bool {
	_, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	return ok
}
