package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// CutMode is how a cut Proxy fails its clients.
type CutMode int

const (
	// Refuse resets every new connection at once, as a closed port or a dead endpoint does.
	Refuse CutMode = iota + 1
	// Blackhole accepts new connections and never answers, as a partition or a dropped
	// packet does: clients wait for their own timeouts.
	Blackhole
)

func (m CutMode) String() string {
	switch m {
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return "open"
}

// Proxy is a loopback TCP proxy in front of one or more backends, which a test can cut. The
// API server calls Herald's webhooks through it: a cut makes the webhooks unreachable without
// touching Herald, and the backends can change as Herald's replicas restart on new ports.
type Proxy struct {
	ln net.Listener

	mu       sync.Mutex
	backends []string
	next     int
	mode     CutMode // 0: open
	conns    map[net.Conn]struct{}
	closed   bool

	forwarded, failed atomic.Int64
	wg                sync.WaitGroup
}

// StartProxy listens on addr ("127.0.0.1:0" for a free port) and forwards each connection to
// the first backend that accepts it, trying them in turn from the one after the last used.
func StartProxy(addr string, backends ...string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the proxy listens on (127.0.0.1:<port>).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the port the proxy listens on.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// SetBackends replaces the addresses connections are forwarded to. Established connections
// keep their backend.
func (p *Proxy) SetBackends(addrs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = append([]string(nil), addrs...)
}

// Cut makes the backends unreachable through the proxy: every established connection is
// closed and new ones fail as mode says, until Restore.
func (p *Proxy) Cut(mode CutMode) {
	p.mu.Lock()
	p.mode = mode
	conns := p.takeConns()
	p.mu.Unlock()
	for _, c := range conns {
		reset(c)
	}
}

// Restore forwards again; connections held by a Blackhole cut are closed.
func (p *Proxy) Restore() {
	p.mu.Lock()
	held := []net.Conn{}
	if p.mode == Blackhole {
		held = p.takeConns()
	}
	p.mode = 0
	p.mu.Unlock()
	for _, c := range held {
		reset(c)
	}
}

// Counts returns how many connections were forwarded, and how many failed (cut, or no
// backend accepted them).
func (p *Proxy) Counts() (forwarded, failed int64) { return p.forwarded.Load(), p.failed.Load() }

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := p.takeConns()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		reset(c)
	}
	p.wg.Wait()
	return err
}

// takeConns empties the connection set; p.mu is held.
func (p *Proxy) takeConns() []net.Conn {
	out := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	p.conns = map[net.Conn]struct{}{}
	return out
}

// track adds connections to the set closed by a cut; false when the proxy is closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *Proxy) handle(client net.Conn) {
	p.mu.Lock()
	mode := p.mode
	backends := append([]string(nil), p.backends...)
	start := p.next
	p.next++
	p.mu.Unlock()
	switch mode {
	case Refuse:
		p.failed.Add(1)
		reset(client)
		return
	case Blackhole:
		p.failed.Add(1)
		if !p.track(client) {
			reset(client)
		}
		return // held open, unanswered, until Restore or Close
	}
	var backend net.Conn
	for i := range backends {
		addr := backends[(start+i)%len(backends)]
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			backend = c
			break
		}
	}
	if backend == nil {
		p.failed.Add(1)
		reset(client)
		return
	}
	if !p.track(client, backend) {
		reset(client)
		reset(backend)
		return
	}
	p.forwarded.Add(1)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done
	<-done
	p.untrack(client, backend)
	client.Close()
	backend.Close()
}

// reset closes a connection with a TCP reset, so that its peer sees the failure at once.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
