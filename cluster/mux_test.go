package cluster

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// startMux serves a Mux on a loopback port until the test ends, after
// configure has changed it.
func startMux(t *testing.T, configure ...func(*Mux)) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, ln.Addr(), testLogger(t))
	for _, f := range configure {
		f(m)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Serve()
	}()
	t.Cleanup(func() {
		m.Close()
		<-done
	})
	return m
}

// rawDial opens a connection to m and writes hdr (which may be short, or
// nothing at all).
func rawDial(t *testing.T, m *Mux, hdr []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", m.ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(hdr) > 0 {
		if _, err := c.Write(hdr); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func muxHeader(magic, channel byte, shard uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{magic, channel}, shard)
}

// wantClosed checks that the mux closed c: a read ends at once with EOF or
// a reset, rather than waiting for data.
func wantClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the mux kept the connection open", what)
	}
	if err == nil {
		t.Fatalf("%s: the mux sent data", what)
	}
}

// acceptOne returns the next connection the stream layer accepts.
func acceptOne(t *testing.T, l interface{ Accept() (net.Conn, error) }) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		ch <- c
	}()
	select {
	case c := <-ch:
		t.Cleanup(func() { c.Close() })
		return c
	case err := <-errc:
		t.Fatalf("accept: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the stream layer accepted nothing")
	}
	return nil
}

// wantEcho checks that bytes written at one end of a routed connection
// arrive at the other, both ways.
func wantEcho(t *testing.T, a, b net.Conn, msg string) {
	t.Helper()
	for _, p := range [][2]net.Conn{{a, b}, {b, a}} {
		if _, err := p[0].Write([]byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		_ = p[1].SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(p[1], got); err != nil || string(got) != msg {
			t.Fatalf("read %q, %v; want %q", got, err, msg)
		}
	}
}

// TestMuxRoutesAndRefuses checks the mux's routing by header: a stream
// layer's Dial reaches the same shard's layer; a connection with a header
// that is not the mux's, of an unknown channel, for a shard this node does
// not host (or no longer hosts), or cut short, is closed; and none of those
// disturbs a connection already routed, nor the next one.
func TestMuxRoutesAndRefuses(t *testing.T) {
	m := startMux(t)
	l7 := m.Layer(7)
	if l7.Addr().String() != m.ln.Addr().String() {
		t.Fatalf("layer address %v, want the listener's %v", l7.Addr(), m.ln.Addr())
	}
	out, err := l7.Dial(addrOf(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in := acceptOne(t, l7)
	wantEcho(t, out, in, "before")

	l8 := m.Layer(8)
	for _, tc := range []struct {
		name string
		hdr  []byte
	}{
		{"HTTP on the raft port", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"wrong magic", muxHeader('X', chanRaft, 7)},
		{"unknown channel", muxHeader(muxMagic, 'z', 7)},
		// This mux serves no control channel (a Node sets one).
		{"control without a server", muxHeader(muxMagic, chanControl, 7)},
		{"shard not hosted", muxHeader(muxMagic, chanRaft, 9)},
	} {
		c := rawDial(t, m, tc.hdr)
		wantClosed(t, c, tc.name)
	}
	// A header cut short, then the connection closed by its sender.
	c := rawDial(t, m, muxHeader(muxMagic, chanRaft, 7)[:3])
	c.(*net.TCPConn).CloseWrite()
	wantClosed(t, c, "a short header")

	// Nothing of that reached a layer, and the routed connection still works.
	wantEcho(t, out, in, "after")
	select {
	case c := <-l7.(*streamLayer).accept:
		t.Fatalf("a refused connection reached shard 7's layer: %v", c.RemoteAddr())
	case c := <-l8.(*streamLayer).accept:
		t.Fatalf("a refused connection reached shard 8's layer: %v", c.RemoteAddr())
	default:
	}
	// New connections are still routed, each to its own shard's layer.
	out8, err := l8.Dial(addrOf(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out8.Close()
	wantEcho(t, out8, acceptOne(t, l8), "shard 8")

	// Once a shard's layer is closed (the replica was dropped), connections
	// for it are closed; the connection it handed out stays open.
	if err := l7.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l7.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed layer: err = %v, want net.ErrClosed", err)
	}
	wantClosed(t, rawDial(t, m, muxHeader(muxMagic, chanRaft, 7)), "shard whose layer closed")
	wantEcho(t, out, in, "still open")
	// A replica opened again gets a new layer that accepts again.
	l7 = m.Layer(7)
	out7, err := l7.Dial(addrOf(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out7.Close()
	wantEcho(t, out7, acceptOne(t, l7), "reopened")
}

// TestMuxDropsSilentConnections checks that a connection that sends no
// header, or only part of one, within the header deadline is closed, and
// that the mux goes on routing the connections that do.
func TestMuxDropsSilentConnections(t *testing.T) {
	m := startMux(t, func(m *Mux) { m.headerTimeout = 300 * time.Millisecond })
	l := m.Layer(3)
	// Routed first, so that its own header deadline has passed once the
	// silent connections below have been closed for missing theirs.
	out, err := l.Dial(addrOf(m), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in := acceptOne(t, l)
	silent := rawDial(t, m, nil)
	partial := rawDial(t, m, muxHeader(muxMagic, chanRaft, 3)[:4])
	// wantClosed waits 2 s, well past the shortened deadline but well short
	// of the default one.
	wantClosed(t, silent, "a connection that sent no header")
	wantClosed(t, partial, "a connection that sent part of a header")
	m.mu.Lock()
	left := len(m.routing)
	m.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d connections still routing after their header deadline", left)
	}
	// The routed connection outlives the header deadline.
	wantEcho(t, out, in, "after the header deadline")
}

// TestMuxCloseEndsEverything checks that Close stops the listener, wakes
// a layer's Accept, closes a connection waiting to be accepted, and can be
// called again.
func TestMuxCloseEndsEverything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, ln.Addr(), testLogger(t))
	served := make(chan struct{})
	go func() {
		defer close(served)
		m.Serve()
	}()
	l := m.Layer(1)
	// A connection for shard 1 that nobody accepts: routing waits with it.
	waiting := rawDial(t, m, muxHeader(muxMagic, chanRaft, 1))
	// A connection that has sent no header yet: Close must not wait out
	// its header deadline (headerTimeout, longer than the bound below).
	silent := rawDial(t, m, nil)
	waitFor(t, "the silent connection to be routing", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		for conn := range m.routing {
			if conn.RemoteAddr().String() == silent.LocalAddr().String() {
				return true
			}
		}
		return false
	})
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case <-closed:
	case <-time.After(headerTimeout - time.Second):
		t.Fatal("Close did not return: it waits for a connection that sends no header")
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	wantClosed(t, waiting, "a connection waiting to be accepted")
	wantClosed(t, silent, "a connection that sent no header")
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: err = %v, want net.ErrClosed", err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Close")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func addrOf(m *Mux) raft.ServerAddress { return raft.ServerAddress(m.ln.Addr().String()) }
