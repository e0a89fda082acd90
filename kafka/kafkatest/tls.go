package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSMaterial is what Heroku Kafka hands an app, for a private TLS broker:
// the CA that signed the broker's certificate (KAFKA_TRUSTED_CERT) and a
// client certificate and key the broker requires (KAFKA_CLIENT_CERT,
// KAFKA_CLIENT_CERT_KEY), all PEM.
type TLSMaterial struct {
	TrustedCert, ClientCert, ClientCertKey string
}

// StartTLSBroker starts a private broker whose only client listener is TLS
// with client authentication required, as Heroku Kafka's are. Like
// Heroku's, its certificate does not name the host clients dial
// (127.0.0.1), so only a client that checks the chain without the host
// name gets through.
func StartTLSBroker(t testing.TB) (*Broker, TLSMaterial) {
	t.Helper()
	dir := t.TempDir()
	pki, m := newTLSMaterial(t)
	caPEM := m.TrustedCert
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keystore := write("broker.pem", pki.brokerKey+pki.brokerCert+caPEM)
	truststore := write("ca.pem", caPEM)

	pair, err := tls.X509KeyPair([]byte(m.ClientCert), []byte(m.ClientCertKey))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(caPEM))
	ping := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "kafka.test.invalid", MinVersion: tls.VersionTLS12}
	b := startBroker(t, ping, func(port, cport int) string {
		return fmt.Sprintf(`listeners=SSL://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d
advertised.listeners=SSL://127.0.0.1:%d
listener.security.protocol.map=SSL:SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SSL
ssl.keystore.type=PEM
ssl.keystore.location=%s
ssl.truststore.type=PEM
ssl.truststore.location=%s
ssl.client.auth=required
ssl.endpoint.identification.algorithm=`, port, cport, port, keystore, truststore)
	})
	return b, m
}

// brokerPKI is the broker's side of a TLSMaterial.
type brokerPKI struct{ brokerCert, brokerKey string }

// NewTLSMaterial makes another CA and a client certificate it signed, to
// check that a broker of StartTLSBroker refuses them.
func NewTLSMaterial(t testing.TB) TLSMaterial {
	t.Helper()
	_, m := newTLSMaterial(t)
	return m
}

// newTLSMaterial makes a CA, a broker certificate for the host name
// kafka.test.invalid and a client certificate, all signed by the CA.
func newTLSMaterial(t testing.TB) (brokerPKI, TLSMaterial) {
	t.Helper()
	ca, caKey := newCert(t, nil, nil, "drainpipe test CA", nil, true)
	brokerCert, brokerKey := newCert(t, ca, caKey, "kafka broker", []string{"kafka.test.invalid"}, false)
	clientCert, clientKey := newCert(t, ca, caKey, "drainpipe client", nil, false)
	return brokerPKI{pemCert(brokerCert), pemKey(t, brokerKey)},
		TLSMaterial{TrustedCert: pemCert(ca), ClientCert: pemCert(clientCert), ClientCertKey: pemKey(t, clientKey)}
}

// newCert makes an ECDSA certificate signed by parent (self-signed when
// parent is nil).
func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, dns []string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dns,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// pemKey encodes a key as unencrypted PKCS#8, which Kafka's PEM key store
// reads.
func pemKey(t testing.TB, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}
