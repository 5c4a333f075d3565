package e2e

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/selfsigned"
)

// stsCert makes a self-signed certificate for names, adds it to the PEM
// bundle roots, and returns it as a tls.Config.
func stsCert(t *testing.T, roots *[]byte, names ...string) *tls.Config {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Generate(names, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	*roots = append(*roots, certPEM...)
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// stsTwoServers starts SMTP servers with STARTTLS on 127.0.0.1 and
// 127.0.0.2 with the same port, as two MX hosts reached through
// etc/smtp-port.
func stsTwoServers(t *testing.T, a, b *tls.Config) (*smtptest.Server, *smtptest.Server, string) {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		l.Close()
		l2, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err != nil {
			continue
		}
		l2.Close()
		return smtptest.Start(t, smtptest.Options{Listen: "127.0.0.1:" + port, TLS: a}),
			smtptest.Start(t, smtptest.Options{Listen: "127.0.0.2:" + port, TLS: b}), port
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil, ""
}

func TestMTASTSEnforce(t *testing.T) {
	var roots []byte
	// good.test's MX has a certificate for its name; bad.test's MX has
	// one from a trusted issuer, but for another name.
	goodMX, badMX, port := stsTwoServers(t, stsCert(t, &roots, "mx.good.test"), stsCert(t, &roots, "other.test"))
	var mu sync.Mutex
	policyMX := map[string]string{"good.test": "mx.good.test", "bad.test": "mx.bad.test", "testing.test": "mx.bad.test"}
	policies := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, ok := strings.CutPrefix(r.Host, "mta-sts.")
		mu.Lock()
		mxName := policyMX[domain]
		mu.Unlock()
		if !ok || mxName == "" || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		mode := "enforce"
		if domain == "testing.test" {
			mode = "testing"
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("version: STSv1\r\nmode: " + mode + "\r\nmx: " + mxName + "\r\nmax_age: 86400\r\n"))
	}))
	policies.TLS = stsCert(t, &roots, "mta-sts.good.test", "mta-sts.bad.test", "mta-sts.testing.test")
	policies.StartTLS()
	t.Cleanup(policies.Close)
	httpsPort := strconv.Itoa(policies.Listener.Addr().(*net.TCPAddr).Port)
	dns := dnstest.Start(t,
		"good.test. MX 10 mx.good.test.", "mx.good.test. A 127.0.0.1",
		`_mta-sts.good.test. TXT "v=STSv1; id=20261122;"`, "mta-sts.good.test. A 127.0.0.1",
		"bad.test. MX 10 mx.bad.test.", "mx.bad.test. A 127.0.0.2",
		`_mta-sts.bad.test. TXT "v=STSv1; id=20261122;"`, "mta-sts.bad.test. A 127.0.0.1",
		"testing.test. MX 10 mx.bad.test.",
		`_mta-sts.testing.test. TXT "v=STSv1; id=1;"`, "mta-sts.testing.test. A 127.0.0.1",
	)
	root := sqRoot(t, "", map[string]string{
		"dns": dns.Addr + "\n", "smtp-port": port + "\n", "mta-sts-port": httpsPort + "\n", "tls-roots.pem": string(roots),
	})
	sqSend(t, root, "From: alice@example.org\nSubject: to good\n\nx\n", "-i", "-f", "alice@example.org", "a@good.test")
	sqSend(t, root, "From: alice@example.org\nSubject: to bad\n\nx\n", "-i", "-f", "alice@example.org", "b@bad.test")
	sqSend(t, root, "From: alice@example.org\nSubject: to testing\n\nx\n", "-i", "-f", "alice@example.org", "c@testing.test")
	r := startSendq(t, root)

	if m := goodMX.Wait(t, 1, 10*time.Second)[0]; !m.TLS || strings.Join(m.To, ",") != "a@good.test" {
		t.Errorf("good.test's MX got %+v, want a@good.test over TLS", m)
	}
	sqWait(t, "the deferral for bad.test", 10*time.Second, func() bool {
		return r.count(`rcpt=b@bad.test status=deferred .*MTA-STS policy of bad.test is enforce`) > 0
	})
	// testing.test's policy is in testing mode: delivered to the same MX
	// all the same, and logged.
	if m := badMX.Wait(t, 1, 10*time.Second); len(m) != 1 || strings.Join(m[0].To, ",") != "c@testing.test" {
		t.Errorf("bad.test's MX got %+v, want only c@testing.test", m)
	}
	sqWait(t, "the testing mode note", 10*time.Second, func() bool {
		return r.count(`event=mta-sts domain=testing.test note=".*\(testing\).*certificate not valid.*enforce mode would not deliver`) == 1
	})
	for _, l := range r.lines() {
		if strings.Contains(l, "rcpt=b@bad.test status=deferred") && !strings.Contains(l, "other.test, not mx.bad.test") {
			t.Errorf("the deferral does not say what is wrong with the certificate: %s", l)
		}
	}
	sqWait(t, "only the message to bad.test left in the spool", 10*time.Second, func() bool {
		ids, err := sqSpool(root).IDs()
		return err == nil && len(ids) == 1
	})
	for _, d := range []string{"good.test", "bad.test"} {
		data, err := os.ReadFile(filepath.Join(root, "cache", "mta-sts", d))
		if err != nil || !strings.HasPrefix(string(data), "id 20261122\nfetched ") || !strings.Contains(string(data), "mode: enforce") {
			t.Errorf("cache file of %s = %q, %v", d, data, err)
		}
	}

	// The domain fixes its certificate problem: it moves to the MX that
	// has a valid certificate for its name and lists it in a new policy,
	// which is fetched because its id changed.
	mu.Lock()
	policyMX["bad.test"] = "mx.good.test"
	mu.Unlock()
	dns.Set(t,
		"good.test. MX 10 mx.good.test.", "mx.good.test. A 127.0.0.1",
		"bad.test. MX 10 mx.good.test.",
		`_mta-sts.bad.test. TXT "v=STSv1; id=fixed;"`, "mta-sts.bad.test. A 127.0.0.1",
	)
	sqWait(t, "delivery to bad.test after the fix", 20*time.Second, func() bool { return len(goodMX.Messages()) == 2 })
	if m := goodMX.Messages()[1]; strings.Join(m.To, ",") != "b@bad.test" {
		t.Errorf("second message to %v, want b@bad.test", m.To)
	}
}
