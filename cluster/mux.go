package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The multiplexed port. Every connection to a node's Raft address starts with
// a six-byte header naming what it is for, then carries that channel's own
// protocol unchanged:
//
//	'C' channel:u8 shard:u32be
//
// chanRaft carries hashicorp/raft's NetworkTransport protocol for one
// shard's group; chanControl the node-to-node requests of control.go. A node runs one listener however many
// shards it hosts; each shard's transport sees an ordinary StreamLayer.
const (
	muxMagic     = 'C'
	chanRaft     = 'r'
	muxHeaderLen = 6
	// headerTimeout is how long a new connection may take to send its
	// header before the mux closes it.
	headerTimeout = 5 * time.Second
)

// Mux accepts connections on one listener and hands each to the stream
// layer registered for its channel and shard.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	log       *slog.Logger

	mu     sync.Mutex
	layers map[uint32]*streamLayer
	closed bool
	// routing are the connections whose header is still being read: Close
	// closes them rather than wait out their header deadline.
	routing map[net.Conn]struct{}

	// dial opens connections; tests replace it to cut links.
	dial func(network, address string, timeout time.Duration) (net.Conn, error)
	// control serves connections of the control channel.
	control func(net.Conn)
	// headerTimeout bounds the wait for a header: the constant of that
	// name, which tests shorten.
	headerTimeout time.Duration

	wg sync.WaitGroup
}

// NewMux serves ln. advertise is the address peers dial to reach it.
func NewMux(ln net.Listener, advertise net.Addr, logger *slog.Logger) *Mux {
	return &Mux{
		ln:            ln,
		advertise:     advertise,
		log:           logger,
		layers:        map[uint32]*streamLayer{},
		routing:       map[net.Conn]struct{}{},
		dial:          net.DialTimeout,
		headerTimeout: headerTimeout,
	}
}

// Serve accepts connections until Close. It returns once the listener fails.
func (m *Mux) Serve() {
	m.wg.Add(1)
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("accept failed", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(conn)
		}()
	}
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// route reads a connection's header and hands it over, or closes it.
func (m *Mux) route(conn net.Conn) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		conn.Close()
		return
	}
	m.routing[conn] = struct{}{}
	m.mu.Unlock()
	_ = conn.SetReadDeadline(time.Now().Add(m.headerTimeout))
	var hdr [muxHeaderLen]byte
	_, err := io.ReadFull(conn, hdr[:])
	m.mu.Lock()
	delete(m.routing, conn)
	m.mu.Unlock()
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if hdr[0] == muxMagic && hdr[1] == chanControl && m.control != nil {
		m.control(conn)
		return
	}
	if hdr[0] != muxMagic || hdr[1] != chanRaft {
		m.log.Warn("dropping a connection with an unknown header", "remote", conn.RemoteAddr().String(), "header", fmt.Sprintf("%x", hdr))
		conn.Close()
		return
	}
	shard := binary.BigEndian.Uint32(hdr[2:])
	m.mu.Lock()
	l := m.layers[shard]
	m.mu.Unlock()
	if l == nil {
		// Not a shard this node hosts (yet, or any more).
		conn.Close()
		return
	}
	select {
	case l.accept <- conn:
	case <-l.done:
		conn.Close()
	}
}

// Layer returns the stream layer of shard, creating it on first use.
func (m *Mux) Layer(shard uint32) raft.StreamLayer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.layers[shard]; l != nil {
		return l
	}
	l := &streamLayer{mux: m, shard: shard, accept: make(chan net.Conn), done: make(chan struct{})}
	m.layers[shard] = l
	return l
}

// Close stops accepting, closes every stream layer and waits for the
// connections being routed.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	layers := m.layers
	m.layers = map[uint32]*streamLayer{}
	for conn := range m.routing {
		conn.Close() // its route returns at once
	}
	m.mu.Unlock()
	err := m.ln.Close()
	for _, l := range layers {
		l.closeOnce()
	}
	m.wg.Wait()
	return err
}

// streamLayer is one shard's view of the mux: a net.Listener of the
// connections for that shard, and a dialer that writes the shard's header.
type streamLayer struct {
	mux    *Mux
	shard  uint32
	accept chan net.Conn
	done   chan struct{}
	once   sync.Once
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close unregisters the layer; connections already handed out stay open.
func (l *streamLayer) Close() error {
	l.mux.mu.Lock()
	if l.mux.layers[l.shard] == l {
		delete(l.mux.layers, l.shard)
	}
	l.mux.mu.Unlock()
	l.closeOnce()
	return nil
}

func (l *streamLayer) closeOnce() { l.once.Do(func() { close(l.done) }) }

func (l *streamLayer) Addr() net.Addr { return l.mux.advertise }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := l.mux.dial("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	var hdr [muxHeaderLen]byte
	hdr[0], hdr[1] = muxMagic, chanRaft
	binary.BigEndian.PutUint32(hdr[2:], l.shard)
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(hdr[:]); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}
