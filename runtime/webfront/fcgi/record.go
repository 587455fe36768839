// Package fcgi is a FastCGI client (the web server's side of FastCGI
// 1.0, the responder role): it sends one HTTP request's parameters and
// body to an application server such as php-fpm and reads the CGI
// response back, streaming both ways and treating everything the
// application sends as untrusted.
//
// The standard library's net/http/fcgi is the other side (an
// application server), so byzd needs its own client. One request uses
// one connection (FCGI_KEEP_CONN is not set): a response that breaks
// the protocol then costs nothing but its own connection, and over a
// unix socket a connection costs microseconds beside the script.
package fcgi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// Record types (FastCGI 1.0, section 8).
const (
	typeBeginRequest    = 1
	typeAbortRequest    = 2
	typeEndRequest      = 3
	typeParams          = 4
	typeStdin           = 5
	typeStdout          = 6
	typeStderr          = 7
	typeData            = 8
	typeGetValues       = 9
	typeGetValuesResult = 10
	typeUnknownType     = 11
)

const (
	version1      = 1
	roleResponder = 1
	headerLen     = 8
	// maxContent is the most a record can carry.
	maxContent = 65535
	// requestID is the only request a connection carries.
	requestID = 1
)

// Protocol statuses of FCGI_END_REQUEST.
const (
	statusRequestComplete = 0
	statusCantMpxConn     = 1
	statusOverloaded      = 2
	statusUnknownRole     = 3
)

var (
	// ErrMalformed is returned for an answer that breaks the protocol or
	// the CGI response format: a bad record header, an unexpected record
	// type, headers that do not parse or are too large, a bad Status.
	ErrMalformed = errors.New("fcgi: malformed answer from the application")
	// ErrTruncated is returned when the application closed the
	// connection before it ended the request.
	ErrTruncated = errors.New("fcgi: the application closed the connection before ending the request")
	// ErrOverloaded is returned when the application refused the request
	// because it is busy (FCGI_OVERLOADED): worth a 503 and a retry.
	ErrOverloaded = errors.New("fcgi: the application is overloaded")
	// ErrRefused is returned when the application refused the request
	// for another reason (it cannot multiplex, it does not know the role).
	ErrRefused = errors.New("fcgi: the application refused the request")
	// ErrParamTooLarge is returned for a parameter whose name and value
	// do not fit one record (php-fpm does not join pairs across records).
	ErrParamTooLarge = errors.New("fcgi: a parameter is larger than one record")
)

// header is a record's fixed 8-byte header.
type header struct {
	version       uint8
	typ           uint8
	id            uint16
	contentLength uint16
	paddingLength uint8
}

func (h header) put(b []byte) {
	b[0], b[1] = h.version, h.typ
	binary.BigEndian.PutUint16(b[2:], h.id)
	binary.BigEndian.PutUint16(b[4:], h.contentLength)
	b[6], b[7] = h.paddingLength, 0
}

func parseHeader(b []byte) header {
	return header{version: b[0], typ: b[1], id: binary.BigEndian.Uint16(b[2:]),
		contentLength: binary.BigEndian.Uint16(b[4:]), paddingLength: b[6]}
}

// appendRecord appends one record of type typ carrying content (at most
// maxContent bytes), padded to a multiple of 8 as the specification
// recommends.
func appendRecord(dst []byte, typ uint8, content []byte) []byte {
	pad := uint8((8 - len(content)%8) % 8)
	var h [headerLen]byte
	header{version: version1, typ: typ, id: requestID, contentLength: uint16(len(content)), paddingLength: pad}.put(h[:])
	dst = append(dst, h[:]...)
	dst = append(dst, content...)
	var zeros [8]byte
	return append(dst, zeros[:pad]...)
}

// Param is one CGI/1.1 meta-variable.
type Param struct{ Name, Value string }

// appendLength appends a name-value length: one byte below 128, else
// four with the top bit set.
func appendLength(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// paramsRecords encodes params as FCGI_PARAMS records followed by the
// empty record that ends the stream. Each pair stays within one record.
func paramsRecords(params []Param) ([]byte, error) {
	var out, content, pair []byte
	for _, p := range params {
		pair = appendLength(pair[:0], len(p.Name))
		pair = appendLength(pair, len(p.Value))
		pair = append(append(pair, p.Name...), p.Value...)
		if len(pair) > maxContent {
			return nil, fmt.Errorf("%w: %s is %d bytes", ErrParamTooLarge, p.Name, len(p.Value))
		}
		if len(content)+len(pair) > maxContent {
			out = appendRecord(out, typeParams, content)
			content = content[:0]
		}
		content = append(content, pair...)
	}
	if len(content) > 0 {
		out = appendRecord(out, typeParams, content)
	}
	return appendRecord(out, typeParams, nil), nil
}

// beginRequest is the FCGI_BEGIN_REQUEST record for a responder that
// closes the connection when it is done (flags 0: no FCGI_KEEP_CONN).
func beginRequest() []byte {
	body := []byte{0, roleResponder, 0, 0, 0, 0, 0, 0}
	return appendRecord(nil, typeBeginRequest, body)
}

// readFull reads exactly len(b) bytes, calling a clean EOF before the
// first byte ErrTruncated too: within a request, the application may
// not stop between records either.
func readFull(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		return streamErr(err)
	}
	return nil
}

// streamErr names the end of the connection inside a request: a close
// (EOF) or a reset (the application died, or closed with our request
// unread).
func streamErr(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrTruncated
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w (%v)", ErrTruncated, err)
	}
	return err
}
