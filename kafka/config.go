// Package kafka is drainpipe's scale-out journal on Apache Kafka: ingest
// processes produce each acknowledged drain batch to one topic, keyed by
// app, and aggregators consume it as a consumer group, folding each
// partition on its own and writing its aggregates, Frame-Ids and offset to
// an aggregate.PartitionSink (PostgreSQL) in one transaction.
//
// It follows Heroku Kafka's conventions: KAFKA_URL lists the brokers
// (kafka:// or kafka+ssl://), KAFKA_TRUSTED_CERT, KAFKA_CLIENT_CERT and
// KAFKA_CLIENT_CERT_KEY hold the PEM certificates for TLS, and
// KAFKA_PREFIX is put before every topic and consumer-group name (the
// multi-tenant plans require it).
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults for Config's zero fields.
const (
	DefaultTopic      = "drainpipe-drains"
	DefaultGroup      = "drainpipe-aggregate"
	DefaultPartitions = 8
	// DefaultMaxBatchBytes fits the largest drain body the server accepts
	// (server.DefaultMaxBodyBytes, 4 MiB) with room for key and headers.
	DefaultMaxBatchBytes = 5 << 20
)

// Config says how to reach Kafka and which topic and group to use.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// TLS, when not nil, is used for every connection (kafka+ssl://).
	TLS *tls.Config
	// Prefix is put before Topic and Group (Heroku's KAFKA_PREFIX).
	Prefix string
	// Topic holds the drain batches (default DefaultTopic).
	Topic string
	// Group is the aggregators' consumer group (default DefaultGroup).
	Group string
	// Partitions and Replication are used when the topic is created;
	// an existing topic is left as it is. Replication 0 or -1 means the
	// broker's default.
	Partitions  int32
	Replication int16
	// MaxBatchBytes bounds one produced record (default
	// DefaultMaxBatchBytes); the topic is created with a matching
	// max.message.bytes.
	MaxBatchBytes int32
	// ClientID names this process to the brokers (default "drainpipe").
	ClientID string
}

func (c *Config) defaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replication <= 0 {
		c.Replication = -1
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.ClientID == "" {
		c.ClientID = "drainpipe"
	}
}

// TopicName is the full topic name, prefix included.
func (c Config) TopicName() string { c.defaults(); return c.Prefix + c.Topic }

// GroupName is the full consumer-group name, prefix included.
func (c Config) GroupName() string { c.defaults(); return c.Prefix + c.Group }

// clientOpts are the options every client of c shares.
func (c *Config) clientOpts() ([]kgo.Opt, error) {
	c.defaults()
	if len(c.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured (set KAFKA_URL or --kafka-url)")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(5 * time.Second),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	return opts, nil
}

// Env holds the Heroku Kafka add-on's variables.
type Env struct {
	URL           string // KAFKA_URL
	TrustedCert   string // KAFKA_TRUSTED_CERT (PEM)
	ClientCert    string // KAFKA_CLIENT_CERT (PEM)
	ClientCertKey string // KAFKA_CLIENT_CERT_KEY (PEM)
	Prefix        string // KAFKA_PREFIX
}

// EnvFrom reads the Heroku Kafka variables through getenv (os.Getenv).
func EnvFrom(getenv func(string) string) Env {
	return Env{
		URL:           getenv("KAFKA_URL"),
		TrustedCert:   getenv("KAFKA_TRUSTED_CERT"),
		ClientCert:    getenv("KAFKA_CLIENT_CERT"),
		ClientCertKey: getenv("KAFKA_CLIENT_CERT_KEY"),
		Prefix:        getenv("KAFKA_PREFIX"),
	}
}

// Config turns the variables into a Config (brokers, TLS and prefix; the
// other fields are left zero).
func (e Env) Config() (Config, error) {
	brokers, useTLS, err := ParseURL(e.URL)
	if err != nil {
		return Config{}, err
	}
	c := Config{Brokers: brokers, Prefix: e.Prefix}
	if useTLS {
		if c.TLS, err = herokuTLS(e.TrustedCert, e.ClientCert, e.ClientCertKey); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// ParseURL parses a Heroku-style KAFKA_URL: a comma-separated list of
// kafka://host:port or kafka+ssl://host:port URLs (a bare host:port is
// taken as plain kafka://). All must use the same scheme.
func ParseURL(s string) (brokers []string, useTLS bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, false, errors.New("kafka: empty KAFKA_URL")
	}
	scheme := ""
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		sch, hostport := "kafka", part
		if i := strings.Index(part, "://"); i >= 0 {
			u, err := url.Parse(part)
			if err != nil {
				return nil, false, fmt.Errorf("kafka: bad broker URL %q: %w", part, err)
			}
			sch, hostport = u.Scheme, u.Host
		}
		if sch != "kafka" && sch != "kafka+ssl" {
			return nil, false, fmt.Errorf("kafka: broker URL %q: scheme must be kafka:// or kafka+ssl://", part)
		}
		if scheme != "" && sch != scheme {
			return nil, false, fmt.Errorf("kafka: KAFKA_URL mixes %s:// and %s:// brokers", scheme, sch)
		}
		scheme = sch
		if _, port, err := splitHostPort(hostport); err != nil || port == "" {
			return nil, false, fmt.Errorf("kafka: broker %q: want host:port", part)
		}
		brokers = append(brokers, hostport)
	}
	if len(brokers) == 0 {
		return nil, false, errors.New("kafka: KAFKA_URL names no broker")
	}
	return brokers, scheme == "kafka+ssl", nil
}

func splitHostPort(hp string) (string, string, error) {
	i := strings.LastIndexByte(hp, ':')
	if i <= 0 || i == len(hp)-1 {
		return "", "", errors.New("missing port")
	}
	return hp[:i], hp[i+1:], nil
}

// herokuTLS builds the TLS config Heroku Kafka asks for: the client
// certificate authenticates drainpipe, and the broker's certificate chain
// is checked against KAFKA_TRUSTED_CERT. Heroku's broker certificates do
// not name the broker hosts, so the chain is verified without a host name
// check (Heroku's own documentation says to do so); with no trusted
// certificate the system roots verify the host name as usual.
func herokuTLS(trusted, cert, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (cert == "") != (key == "") {
		return nil, errors.New("kafka: KAFKA_CLIENT_CERT and KAFKA_CLIENT_CERT_KEY must be set together")
	}
	if cert != "" {
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			return nil, fmt.Errorf("kafka: KAFKA_CLIENT_CERT/KAFKA_CLIENT_CERT_KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if trusted == "" {
		return cfg, nil
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(trusted)) {
		return nil, errors.New("kafka: KAFKA_TRUSTED_CERT holds no PEM certificate")
	}
	cfg.InsecureSkipVerify = true // replaced by the chain check below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("kafka: broker sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		if err != nil {
			return fmt.Errorf("kafka: broker certificate not signed by KAFKA_TRUSTED_CERT: %w", err)
		}
		return nil
	}
	return cfg, nil
}
