package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func testCA(t *testing.T, name string, notAfter time.Time, isCA bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func names(t *testing.T, bundle []byte) []string {
	t.Helper()
	var out []string
	for _, der := range certsOf(bundle) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.Subject.CommonName)
	}
	return out
}

func TestTrustBundle(t *testing.T) {
	now := time.Now()
	later := now.Add(24 * time.Hour)
	ca1, ca2, ca3, ca4 := testCA(t, "ca1", later, true), testCA(t, "ca2", later, true), testCA(t, "ca3", later, true), testCA(t, "ca4", later, true)
	expired := testCA(t, "expired", now.Add(-time.Hour), true)
	leaf := testCA(t, "leaf", later, false)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	cases := []struct {
		name            string
		newCA, existing []byte
		want            []string
	}{
		{"first injection", ca1, nil, []string{"ca1"}},
		{"rotation keeps the previous CA", ca2, ca1, []string{"ca2", "ca1"}},
		{"already injected is unchanged", ca2, cat(ca2, ca1), []string{"ca2", "ca1"}},
		{"expired CAs drop out", ca2, cat(ca1, expired), []string{"ca2", "ca1"}},
		{"an expired previous CA drops out", ca2, cat(expired), []string{"ca2"}},
		{"non-CA certificates drop out", ca2, cat(leaf, ca1), []string{"ca2", "ca1"}},
		{"only the current and the previous CA", ca4, cat(ca3, ca2, ca1), []string{"ca4", "ca3"}},
		{"a second rotation drops the oldest", ca3, cat(ca2, ca1), []string{"ca3", "ca2"}},
		{"an expired previous CA is not replaced by an older one", ca3, cat(expired, ca1), []string{"ca3"}},
		{"garbage in the old bundle is ignored", ca1, []byte("not pem"), []string{"ca1"}},
	}
	for _, c := range cases {
		got := TrustBundle(c.newCA, c.existing, now)
		if g := names(t, got); len(g) != len(c.want) || !equal(g, c.want) {
			t.Errorf("%s: bundle %v, want %v", c.name, g, c.want)
		}
		if again := TrustBundle(c.newCA, got, now); !bytes.Equal(again, got) {
			t.Errorf("%s: not a fixed point: applying it again changed the bundle", c.name)
		}
	}
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}
