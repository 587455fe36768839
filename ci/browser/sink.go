package browser

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sink is the HTTP proxy that the browser sends every request for a host
// beyond loopback to. It answers each with 403 and records its request line,
// so a page that wants the network fails to load instead of reaching out.
type sink struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []string
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.refuse(c)
		}()
	}
}

func (s *sink) refuse(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if line = strings.TrimSpace(line); line != "" {
		s.mu.Lock()
		s.seen = append(s.seen, line)
		s.mu.Unlock()
	}
	if err != nil {
		return
	}
	const body = "blocked: the test browser reaches loopback addresses only\n"
	c.Write([]byte("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body))
}

func (s *sink) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *sink) close() {
	s.ln.Close()
	s.wg.Wait()
}
