package inetd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// acceptResult runs l.Accept in a goroutine.
func acceptResult(l net.Listener) <-chan error {
	ch := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
			err = errors.New("Accept returned a second connection")
		}
		ch <- err
	}()
	return ch
}

func wantErrClosed(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after %s = %v, want net.ErrClosed", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Accept still blocked 10s after %s", what)
	}
}

func wantBlocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("Accept returned %v %s, want it blocked", err, what)
	default:
	}
}

func TestConnListenerReturnsConnOnceThenWaitsForClose(t *testing.T) {
	client, server := tcpPair(t)
	l := ConnListener(server)
	if l.Addr().String() != server.LocalAddr().String() {
		t.Errorf("Addr() = %v, want %v", l.Addr(), server.LocalAddr())
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("first Accept: %v", err)
	}
	if c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("accepted RemoteAddr() = %v, want %v", c.RemoteAddr(), client.LocalAddr())
	}
	second := acceptResult(l)
	// The connection works while the second Accept waits.
	if _, err := client.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("read through accepted conn = %q, %v, want \"ping\\n\"", line, err)
	}
	wantBlocked(t, second, "while the connection is open")
	if err := c.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	wantErrClosed(t, second, "the connection closed")
	wantErrClosed(t, acceptResult(l), "the connection closed, called again")
	if err := l.Close(); err != nil {
		t.Errorf("listener Close() after the connection closed = %v, want nil", err)
	}
	// The peer sees the end of the connection.
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read after Close = %d, %v, want EOF", n, err)
	}
}

func TestConnListenerCloseBeforeAccept(t *testing.T) {
	client, server := tcpPair(t)
	l := ConnListener(server)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	wantErrClosed(t, acceptResult(l), "closing the listener before accepting")
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read = %d, %v, want EOF: an unaccepted connection is closed with the listener", n, err)
	}
}

func TestConnListenerCloseAfterAcceptKeepsSession(t *testing.T) {
	client, server := tcpPair(t)
	l := ConnListener(server)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	second := acceptResult(l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	wantErrClosed(t, second, "closing the listener")
	// Like closing a real listener, this leaves the session alone.
	if _, err := c.Write([]byte("still here\n")); err != nil {
		t.Fatalf("Write after listener Close: %v", err)
	}
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "still here\n" {
		t.Errorf("peer read %q, %v, want \"still here\\n\"", line, err)
	}
}

// TestConnListenerServeLoop runs the accept loop every server library has
// (go-smtp's Serve returns the accept error) with implicit TLS around the
// one-shot listener: the session sees a *tls.Conn and the loop returns once
// it is over.
func TestConnListenerServeLoop(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeCert(t, certFile, keyFile)
	conf, err := Config{CertFile: certFile, KeyFile: keyFile}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	rawClient, server := tcpPair(t)
	l := tls.NewListener(ConnListener(server), conf)

	served := make(chan error, 1)
	sawTLS := make(chan bool, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				served <- err
				return
			}
			go func() {
				defer c.Close()
				_, ok := c.(*tls.Conn)
				sawTLS <- ok
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "echo "+line)
			}()
		}
	}()
	client := tls.Client(rawClient, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(client, "hi\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "echo hi\n" {
		t.Fatalf("client read %q, %v, want \"echo hi\\n\"", line, err)
	}
	if !<-sawTLS {
		t.Error("the server did not get a *tls.Conn")
	}
	wantErrClosed(t, served, "the session ended")
}

func TestSessionsCloseAll(t *testing.T) {
	s := newSessions()
	client1, server1 := tcpPair(t)
	_, server2 := tcpPair(t)
	c1, c2 := s.add(server1), s.add(server2)
	if n := s.count(); n != 2 {
		t.Fatalf("count() = %d, want 2", n)
	}
	c2.Close()
	if n := s.count(); n != 1 {
		t.Fatalf("count() after one Close = %d, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.wait(ctx) // returns although a session is open: ctx is done
	if n := s.closeAll(); n != 1 {
		t.Errorf("closeAll() = %d, want 1", n)
	}
	if _, err := c1.Write([]byte("x")); err == nil {
		t.Error("Write on a session after closeAll succeeded")
	}
	client1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client1.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read after closeAll = %v, want EOF", err)
	}
	s.wait(context.Background()) // returns: no session open
	// A connection accepted after closeAll is closed at once.
	client3, server3 := tcpPair(t)
	s.add(server3)
	client3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client3.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read of a connection added after closeAll = %v, want EOF", err)
	}
}

func TestSessionsWaitReturnsWhenLastCloses(t *testing.T) {
	s := newSessions()
	_, server := tcpPair(t)
	c := s.add(server)
	done := make(chan struct{})
	go func() {
		s.wait(context.Background())
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("wait returned while a session was open")
	default:
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("wait still blocked 10s after the last session closed")
	}
}

func TestTrackedListenerCloseTwice(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &trackedListener{Listener: inner, s: newSessions()}
	if err := l.Close(); err != nil {
		t.Errorf("first Close() = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil (go-smtp's Shutdown would report it)", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}
